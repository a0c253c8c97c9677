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

    /// How facts that nobody set are gathered.
    public enum Gathering: Sendable {
        /// From this machine: the docker engine, the files, the network.
        case live
        /// Not at all (probe examples): a fact the example did not set is named in `unprovided` and reads as not
        /// gathered, so an example can never depend on this machine, nor do I/O without saying so.
        case examplesOnly
    }

    /// The facts read without having been set, under `.examplesOnly` (the examples' test fails naming them).
    public var unprovided: [String] { unprovidedLog.names }
    private let unprovidedLog: UnprovidedFacts

    public init(deployment: Deployment, environment: [String: String], timeout: Double = 10, gathering: Gathering = .live) {
        self.deployment = deployment
        self.environment = environment
        self.timeout = timeout
        let log = UnprovidedFacts()
        unprovidedLog = log
        /// The live gatherer, or under `.examplesOnly` the placeholder (a "not given by the example" failure).
        func gather<T>(_ name: String, _ placeholder: @escaping (String) -> T, _ live: @escaping () -> T) -> Lazy<T> {
            guard gathering == .examplesOnly else { return Lazy(live) }
            return Lazy {
                log.add(name)
                return placeholder("the example does not give the fact \(name)")
            }
        }
        let env = environment
        let cli = gather("dockerCLI", { DockerCLIFact(path: nil, version: nil, error: $0) }) {
            DockerGatherer.cli(environment: env, timeout: timeout)
        }
        dockerCLI = cli
        let endpoint = gather("endpoint", { .failure(.invalidHost($0)) }) {
            EndpointResolver.resolve(environment: env, home: env["HOME"])
        }
        self.endpoint = endpoint
        let engine = gather("engine", { .unreachable(nil, reason: $0, cause: .other, access: nil) }) {
            DockerGatherer.engine(endpoint: endpoint.get(), cli: cli.get, environment: env, timeout: timeout)
        }
        self.engine = engine
        let image = gather("image", { .unknown($0) }) {
            DockerGatherer.image(deployment.image, engine: engine.get(), cli: cli.get, environment: env, timeout: timeout)
        }
        self.image = image
        let envFile = gather("envFile", { .failure(.unreadable(deployment.envFile, $0)) }) {
            FileReading.read(deployment.envFile).map {
                EnvFileFact(file: EnvFileParser.parse(bytes: $0.bytes, path: deployment.envFile), mode: $0.mode, bytes: $0.bytes)
            }
        }
        self.envFile = envFile
        let config = gather("config", { .failure(.unreadable(deployment.configFile, $0)) }) {
            FileReading.read(deployment.configFile).map {
                ConfigFileFact(file: ConfigParser.parse(bytes: $0.bytes, path: deployment.configFile), mode: $0.mode,
                               uid: $0.uid, gid: $0.gid)
            }
        }
        self.config = config
        // No tracker.json is no I/O, so only a recorded one must be given.
        tracker = deployment.trackerPath == nil ? Lazy { nil }
            : gather("tracker", { _ in nil }) { deployment.trackerPath.flatMap { (try? Tracker.load($0)) ?? nil } }
        let command = Lazy { ProgramArgumentParser.parse(deployment.command) }  // pure: always computed
        self.command = command
        let notConfigured: (String) -> BrokerReachFact = { BrokerReachFact(settings: .failure(BrokerNotConfigured($0)), servers: []) }
        let brokerReach = gather("brokerReach", notConfigured) {
            BrokerGatherer.reach(BrokerSettingsResolver.resolve(config: config.get(), envFile: envFile.get(), host: env,
                                                                deployment: deployment), timeout: timeout)
        }
        self.brokerReach = brokerReach
        brokerKafka = gather("brokerKafka", { BrokerKafkaFact(settings: .failure(BrokerNotConfigured($0)), server: nil, topics: []) }) {
            BrokerGatherer.kafka(brokerReach.get(), topics: BrokerTopics.topics(for: command.get()), timeout: timeout)
        }
        let identity = gather("identity", { .failure(IdentityUnavailable($0)) }) {
            FolderGatherer.identity(deployment, image: image.get(), engine: engine.get(), cli: cli.get(), environment: env,
                                    timeout: timeout)
        }
        self.identity = identity
        let folder = gather("folder", { .failed(path: deployment.dataFolder ?? "", $0) }) {
            FolderGatherer.folder(deployment, command: command.get(), identity: identity.get())
        }
        self.folder = folder
        mounts = gather("mounts", { _ in MountsFact() }) {
            MountGatherer.mounts(deployment, config: config.get(), identity: identity.get())
        }
        let customImagePath = deployment.directory + "/" + CustomImageLinter.folderName
        customImage = gather("customImage", { _ in .absent(path: customImagePath) }) {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: customImagePath, isDirectory: &isDirectory), isDirectory.boolValue else {
                return .absent(path: customImagePath)
            }
            return .present(CustomImageFolder.disk(customImagePath).snapshot())
        }
        let flag = proveFlag
        proof = gather("proof", { .notPossible($0) }) {
            ProofGatherer.prove(deployment, requested: flag.value, folder: folder.get(), engine: engine.get(),
                                cli: cli.get(), environment: env, timeout: timeout)
        }
    }

    /// The environment the container will see from the env-file (bare keys take the host's value).
    public var containerEnvironment: [String: String]? {
        guard case .success(let fact) = envFile.get() else { return nil }
        return fact.file.resolved(host: environment)
    }
}

/// The names of facts read under `.examplesOnly` without having been set.
final class UnprovidedFacts: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ name: String) { lock.lock(); if !list.contains(name) { list.append(name) }; lock.unlock() }
    var names: [String] { lock.lock(); defer { lock.unlock() }; return list }
}
