import Foundation

/// Builds `Facts` without I/O for probe examples and tests: every fact not given is "not gathered" and gathering it
/// would fail loudly, so an example cannot silently depend on this machine.
public enum ExampleFacts {
    public static let reachableEngine = EngineFact.reachable(
        DockerEndpoint(host: "unix:///var/run/docker.sock", context: "default", source: "default"),
        EngineInfo(serverVersion: "28.2.2", apiVersion: "1.50", os: "linux",
                   securityOptions: ["name=seccomp,profile=builtin"], dockerRootDir: "/var/lib/docker"))

    public static let officialImage = ImageInfo(
        reference: "openmsi/openmsistream:latest", id: "sha256:0123456789abcdef", repoDigests: [], user: "openmsi",
        workingDir: "/home/openmsi", entrypoint: ["bash"], cmd: [], env: ["PATH=/home/openmsi/.local/bin:/usr/bin"])

    /// The official image's user: openmsi 1000:1000, supplementary group sudo (27), no user namespace.
    public static let officialIdentity: IdentityFact = {
        let id = ContainerIdentity(uid: 1000, gid: 1000, groups: [27], source: "image user \"openmsi\"", userName: "openmsi",
                                   home: "/home/openmsi")
        return IdentityFact(container: id, host: id, mapping: .none, spec: "openmsi", fromFlag: false)
    }()

    /// A real folder in a temporary directory, built by `setup` (given its path) and audited for `identity`.
    public static func auditedFolder(need: FolderNeed, identity: ContainerIdentity = officialIdentity.host,
                                     _ setup: (String) -> Void) -> FolderFact {
        let path = FileManager.default.temporaryDirectory.path + "/ezmsi-example-\(UUID().uuidString.prefix(8))"
        mkdir(path, 0o755)
        setup(path)
        do {
            return .audited(path: path, try TreeScanner.audit(root: path, identity: identity, need: need,
                                                              options: TreeAuditOptions(threads: 1, containerPath: ProgramTable.containerDataPath)))
        } catch {
            return .failed(path: path, "\(error)")
        }
    }

    public static let goodEnv = "CONFLUENT_BOOTSTRAP_SERVERS=broker.example:9092\nCONFLUENT_USERNAME=lab\nCONFLUENT_PASSWORD=s3cretpw\n"

    public static let goodConsumerConfig = Scaffold.brokerSection + """

        [consumer]
        group.id           = create_new
        auto.offset.reset  = earliest
        enable.auto.commit = False
        key.deserializer   = StringDeserializer
        value.deserializer = DataFileChunkDeserializer

        """

    public static let goodProducerConfig = Scaffold.brokerSection + """

        [producer]
        key.serializer   = StringSerializer
        value.serializer = DataFileChunkSerializer

        """

    public static func make(
        command: String = "DataFileDownloadDirectory data --config config.config --topic_name xrd --consumer_group_id xrd_lab",
        env: String? = goodEnv, envMode: UInt32 = 0o100600,
        config: String? = goodConsumerConfig,
        cli: DockerCLIFact? = DockerCLIFact(path: "/usr/bin/docker", version: "28.2.2", error: nil),
        engine: EngineFact? = reachableEngine,
        image: ImageFact? = .present(officialImage),
        user: String? = nil, imageName: String = "openmsi/openmsistream:latest",
        folder: String? = "/srv/scans", hostEnvironment: [String: String] = [:],
        identity: IdentityFact? = ExampleFacts.officialIdentity, folderFact: FolderFact? = .notConfigured,
        configFile: String = "/lab/deploy/config.config", extraMounts: [Mount] = [], mounts: MountsFact = MountsFact(),
        customImage: CustomImageFolder? = nil
    ) -> Facts {
        let words = (try? ShellWords.split(command)) ?? []
        let deployment = Deployment(
            directory: "/lab/deploy", envFile: "/lab/deploy/openmsi.env", configFile: configFile,
            dataFolder: folder, image: imageName, user: user, extraMounts: extraMounts, command: words,
            containerName: "ezmsi-deploy", sources: [:], trackerPath: nil)
        let facts = Facts(deployment: deployment, environment: hostEnvironment, timeout: 1, gathering: .examplesOnly)
        if let cli { facts.dockerCLI.set(cli) }
        if let engine { facts.engine.set(engine) }
        if let image { facts.image.set(image) }
        if let identity { facts.identity.set(.success(identity)) }
        if let folderFact { facts.folder.set(folderFact) }
        facts.mounts.set(mounts)
        facts.customImage.set(customImage.map { .present($0) } ?? .absent(path: deployment.directory + "/" + CustomImageLinter.folderName))
        if let env {
            facts.envFile.set(.success(EnvFileFact(file: EnvFileParser.parse(bytes: Array(env.utf8), path: deployment.envFile),
                                                   mode: envMode, bytes: Array(env.utf8))))
        } else {
            facts.envFile.set(.failure(.missing(deployment.envFile)))
        }
        if let config {
            facts.config.set(.success(ConfigFileFact(file: ConfigParser.parse(text: config, path: deployment.configFile),
                                                     mode: 0o100644, uid: 1000, gid: 1000)))
        } else {
            facts.config.set(.failure(.missing(deployment.configFile)))
        }
        return facts
    }
}
