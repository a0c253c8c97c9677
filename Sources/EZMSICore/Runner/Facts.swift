import Foundation

/// The env-file as read from disk.
public struct EnvFileFact: Sendable {
    public var file: EnvFile
    public var mode: UInt32
    /// The bytes as read, for readers with other rules (Compose's dotenv).
    public var bytes: [UInt8]

    public init(file: EnvFile, mode: UInt32, bytes: [UInt8]) {
        self.file = file
        self.mode = mode
        self.bytes = bytes
    }
}

/// The config file as read from disk.
public struct ConfigFileFact: Sendable {
    public var file: ConfigFile
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32

    public init(file: ConfigFile, mode: UInt32, uid: UInt32, gid: UInt32) {
        self.file = file
        self.mode = mode
        self.uid = uid
        self.gid = gid
    }
}

/// The deployment's optional `custom_image/` folder (the Docker build context), read once.
public enum CustomImageFact {
    /// There is none (it is optional: the official image is used).
    case absent(path: String)
    case present(CustomImageFolder)
}

/// Everything the probes judge, gathered once and lazily: the first probe that needs a fact gathers it, the others
/// wait for the same value. Gatherers are the only code that does I/O; probes are pure functions of these facts.
public final class Facts: @unchecked Sendable {
    public let deployment: Deployment
    /// The host environment ezmsi (and so the docker CLI) runs with.
    public let environment: [String: String]
    public let timeout: Double

    public let dockerCLI: Lazy<DockerCLIFact>
    public let endpoint: Lazy<Result<DockerEndpoint, EndpointError>>
    public let engine: Lazy<EngineFact>
    public let image: Lazy<ImageFact>
    public let envFile: Lazy<Result<EnvFileFact, FileProblem>>
    public let config: Lazy<Result<ConfigFileFact, FileProblem>>
    public let command: Lazy<ParsedCommand>
    /// tracker.json, already validated by the resolver (nil: there is none).
    public let tracker: Lazy<Tracker?>
    /// The container's uid/gid/groups, resolved from the image's own /etc/passwd and mapped to host ids.
    public let identity: Lazy<Result<IdentityFact, IdentityUnavailable>>
    /// The program's folder, audited for that identity.
    public let folder: Lazy<FolderFact>
    /// `custom_image/` in the deployment folder, every file read.
    public let customImage: Lazy<CustomImageFact>
    /// The config file, the other mounts and the KafkaCrypto node directories, for that identity.
    public let mounts: Lazy<MountsFact>
    /// `--prove`: what a real container could do in the folder.
    public let proof: Lazy<ProofFact>
    /// The `[broker]` bootstrap servers resolved, connected, TLS handshake done (broker.reachable).
    public let brokerReach: Lazy<BrokerReachFact>
    /// The Kafka dialogue with the first reachable server: ApiVersions, SASL, Metadata of the command's topics.
    public let brokerKafka: Lazy<BrokerKafkaFact>
    /// Set before running the probes to let `folder.prove` start a container.
    public var proveRequested: Bool {
        get { proveFlag.value }
        set { proveFlag.value = newValue }
    }
    private let proveFlag = Box(false)

    public init(deployment: Deployment, environment: [String: String], timeout: Double = 10) {
        self.deployment = deployment
        self.environment = environment
        self.timeout = timeout
        let env = environment
        let cli = Lazy { DockerGatherer.cli(environment: env, timeout: timeout) }
        dockerCLI = cli
        let endpoint = Lazy { EndpointResolver.resolve(environment: env, home: env["HOME"]) }
        self.endpoint = endpoint
        let engine = Lazy { DockerGatherer.engine(endpoint: endpoint.get(), cli: cli.get, environment: env, timeout: timeout) }
        self.engine = engine
        image = Lazy { DockerGatherer.image(deployment.image, engine: engine.get(), cli: cli.get, environment: env,
                                            timeout: timeout) }
        envFile = Lazy {
            FileReading.read(deployment.envFile).map {
                EnvFileFact(file: EnvFileParser.parse(bytes: $0.bytes, path: deployment.envFile), mode: $0.mode, bytes: $0.bytes)
            }
        }
        config = Lazy {
            FileReading.read(deployment.configFile).map {
                ConfigFileFact(file: ConfigParser.parse(bytes: $0.bytes, path: deployment.configFile), mode: $0.mode,
                               uid: $0.uid, gid: $0.gid)
            }
        }
        tracker = Lazy { deployment.trackerPath.flatMap { (try? Tracker.load($0)) ?? nil } }
        let command = Lazy { ProgramArgumentParser.parse(deployment.command) }
        self.command = command
        let (configFact, envFileFact) = (config, envFile)
        let brokerReach = Lazy { BrokerGatherer.reach(BrokerSettingsResolver.resolve(
            config: configFact.get(), envFile: envFileFact.get(), host: env, deployment: deployment), timeout: timeout) }
        self.brokerReach = brokerReach
        brokerKafka = Lazy { BrokerGatherer.kafka(brokerReach.get(), topics: BrokerTopics.topics(for: command.get()), timeout: timeout) }
        let image = self.image
        let identity = Lazy { FolderGatherer.identity(deployment, image: image.get(), engine: engine.get(), cli: cli.get(),
                                                      environment: env, timeout: timeout) }
        self.identity = identity
        let folder = Lazy { FolderGatherer.folder(deployment, command: command.get(), identity: identity.get()) }
        self.folder = folder
        mounts = Lazy { MountGatherer.mounts(deployment, config: configFact.get(), identity: identity.get()) }
        customImage = Lazy {
            let folder = deployment.directory + "/" + CustomImageLinter.folderName
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
                return .absent(path: folder)
            }
            return .present(CustomImageFolder.disk(folder).snapshot())
        }
        let flag = proveFlag
        proof = Lazy { ProofGatherer.prove(deployment, requested: flag.value, folder: folder.get(), engine: engine.get(),
                                           cli: cli.get(), environment: env, timeout: timeout) }
    }

    /// The environment the container will see from the env-file (bare keys take the host's value).
    public var containerEnvironment: [String: String]? {
        guard case .success(let fact) = envFile.get() else { return nil }
        return fact.file.resolved(host: environment)
    }
}
