/// THE table of OpenMSIStream programs (v1.8.7): their arguments, the config sections and serializers they need,
/// and what they read and write on disk. Every probe, the argument parser, `ezmsi init` and the hand-off read it.
/// Adding a program is adding one entry to `ProgramTable.all`.
/// Source: reference/openmsistream.md §1–3 and the `-h` output of each program.

/// How argparse checks one value (the type callbacks of OpenMSIStream and openmsitoolbox).
public enum ArgumentType: Sendable, Equatable {
    case string
    case flag
    case path                 // pathlib.Path, no existence check
    case existingFile
    case existingDirectory
    case createDirectory      // created at parse time (parents too)
    case configPath
    case loggerLevel
    case positiveInt          // int >= 1
    case int
    case nonNegativeFloat
    case powerOfTwo
    case regex
    case choice([String])
    case bucketName
    case json
}

public struct ProgramArgument: Sendable, Equatable {
    public var name: String
    public var type: ArgumentType
    public var defaultValue: String?

    public init(_ name: String, _ type: ArgumentType, default defaultValue: String? = nil) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
    }
}

/// What a program needs from the folder its first positional names (issue 3 builds on this).
public enum FolderNeed: String, Sendable, Codable {
    /// r+x on every directory, r on every file, w+x on the root to create `LOGS/` (DataFileUploadDirectory).
    case readTreeWriteRoot = "read-tree-write-root"
    /// w+x on the folder and every subdirectory, or on the parent if missing (DataFileDownloadDirectory).
    case writeTree = "write-tree"
    /// r on the file, w+x on its directory for `UploadDataFile.log` (UploadDataFile).
    case readFileWriteParent = "read-file-write-parent"
    case none
}

public enum ProgramRole: String, Sendable, Codable {
    case producer, consumer, processor, tool, service
}

public struct ProgramSpec: Sendable {
    public var name: String
    public var role: ProgramRole
    public var summary: String
    public var positionals: [ProgramArgument]
    public var options: [ProgramArgument]
    /// Sections the program cannot work without.
    public var requiredSections: [String]
    /// Sections it reads when present.
    public var optionalSections: [String]
    /// Exact `section → key → value` the program needs (serializers, deserializers).
    public var requiredValues: [(section: String, key: String, value: String)]
    /// `[broker]` keys also go to kafka-python's KafkaAdminClient (DataFileUploadDirectory and every consumer).
    public var brokerKeysFeedKafkaPython: Bool
    public var folderNeed: FolderNeed
    /// Reads a config file at all (ProvisionNode and ReproduceUndecryptableMessages do not read ours).
    public var readsConfig: Bool
    /// Needs a terminal (`-it`).
    public var interactive: Bool

    /// The file the program appends its log to, relative to its folder (reference/openmsistream.md §3); its folder's
    /// first component is created by the program when it is a subfolder (DataFileUploadDirectory's `LOGS/`).
    public var logFile: String? = nil
    /// A producer that also starts a consumer group looking up `consumer_topic_name` at start-up (DataFileUploadDirectory).
    public var startsConsumerGroup = false

    public func option(named name: String) -> ProgramArgument? { options.first { $0.name == name } }

    /// The folder `logFile` is in (nil: the program's folder itself).
    public var logFolder: String? {
        guard let logFile, let slash = logFile.lastIndex(of: "/") else { return nil }
        return String(logFile[..<slash])
    }

    /// `logFile`'s name.
    public var logFileName: String? { logFile.map { String($0.split(separator: "/").last ?? Substring($0)) } }

    public var configDefault: String { option(named: "config")?.defaultValue ?? "test" }
}

public enum ProgramTable {
    // Option groups, in the order argparse prints them.
    static let logger: [ProgramArgument] = [
        .init("logger_stream_level", .loggerLevel, default: "info"),
        .init("logger_file_path", .path),
        .init("logger_file_level", .loggerLevel, default: "warning"),
    ]
    static let config: [ProgramArgument] = [.init("config", .configPath, default: "test")]
    static let topic: [ProgramArgument] = [.init("topic_name", .string, default: "test")]
    static let groups: [ProgramArgument] = [
        .init("consumer_topic_name", .string, default: "test"),
        .init("consumer_group_id", .string, default: "create_new"),
        .init("producer_topic_name", .string, default: "test"),
        .init("treat_undecryptable_as_plaintext", .flag),
        .init("max_wait_per_decrypt", .nonNegativeFloat, default: "5.0"),
        .init("max_initial_wait_per_decrypt", .nonNegativeFloat, default: "60.0"),
        .init("update_seconds", .int, default: "300"),
    ]
    static let heartbeatsAndLogs: [ProgramArgument] = [
        .init("heartbeat_topic_name", .string),
        .init("heartbeat_program_id", .string),
        .init("heartbeat_interval_secs", .nonNegativeFloat, default: "900"),
        .init("log_topic_name", .string),
        .init("log_program_id", .string),
        .init("log_interval_secs", .nonNegativeFloat, default: "60"),
    ]
    static let threads: [ProgramArgument] = [.init("n_threads", .positiveInt, default: "2")]
    static let mode: ProgramArgument = .init("mode", .choice(["memory", "disk", "both"]), default: "memory")
    static let downloadRegex: ProgramArgument = .init("download_regex", .regex)

    static let consumerSections = ["broker", "consumer"]
    static let consumerValues: [(section: String, key: String, value: String)] = [
        ("consumer", "key.deserializer", "StringDeserializer"),
        ("consumer", "value.deserializer", "DataFileChunkDeserializer"),
    ]
    static let producerValues: [(section: String, key: String, value: String)] = [
        ("producer", "key.serializer", "StringSerializer"),
        ("producer", "value.serializer", "DataFileChunkSerializer"),
    ]

    public static let all: [ProgramSpec] = [
        ProgramSpec(
            name: "UploadDataFile", role: .producer, summary: "Upload one file to a topic, then exit",
            positionals: [.init("filepath", .existingFile)],
            options: logger + config + topic + [.init("chunk_size", .powerOfTwo, default: "524288")] + threads,
            requiredSections: ["broker", "producer"], optionalSections: ["kafkacrypto"],
            requiredValues: producerValues, brokerKeysFeedKafkaPython: false,
            folderNeed: .readFileWriteParent, readsConfig: true, interactive: false),
        ProgramSpec(
            name: "DataFileUploadDirectory", role: .producer, summary: "Watch a folder and upload new files",
            positionals: [.init("upload_dir", .existingDirectory)],
            options: logger + config + topic + groups + heartbeatsAndLogs + [
                .init("upload_regex", .regex, default: "^((?!(\\.|.*.log))).*$"),
                .init("chunk_size", .powerOfTwo, default: "524288"),
                .init("queue_max_size", .positiveInt, default: "500"),
                .init("upload_existing", .flag),
                .init("watchdog_lag_time", .int, default: "3"),
                .init("use_polling_observer", .flag),
            ] + threads,
            requiredSections: ["broker", "producer"], optionalSections: ["heartbeat", "log", "kafkacrypto", "consumer"],
            requiredValues: producerValues, brokerKeysFeedKafkaPython: true,
            folderNeed: .readTreeWriteRoot, readsConfig: true, interactive: false,
            logFile: "LOGS/DataFileUploadDirectory.log", startsConsumerGroup: true),
        ProgramSpec(
            name: "DataFileDownloadDirectory", role: .consumer, summary: "Reconstruct files from a topic into a folder",
            positionals: [.init("output_dir", .createDirectory)],
            options: logger + config + topic + groups + heartbeatsAndLogs + [downloadRegex] + threads,
            requiredSections: consumerSections, optionalSections: ["producer", "heartbeat", "log", "kafkacrypto"],
            requiredValues: consumerValues, brokerKeysFeedKafkaPython: true,
            folderNeed: .writeTree, readsConfig: true, interactive: false,
            logFile: "DataFileDownloadDirectory.log"),
        ProgramSpec(
            name: "S3TransferStreamProcessor", role: .processor, summary: "Copy files from a topic to an S3 bucket",
            positionals: [.init("bucket_name", .bucketName)],
            options: logger + topic + groups + heartbeatsAndLogs + [downloadRegex, mode,
                .init("output_dir", .path, default: "S3TransferStreamProcessor_output")] + threads
                + [.init("config", .configPath, default: "test_s3_transfer")],
            requiredSections: consumerSections + ["s3"], optionalSections: ["producer", "heartbeat", "log", "kafkacrypto"],
            requiredValues: consumerValues, brokerKeysFeedKafkaPython: true,
            folderNeed: .none, readsConfig: true, interactive: false),
        ProgramSpec(
            name: "GirderUploadStreamProcessor", role: .processor, summary: "Upload files from a topic to Girder",
            positionals: [.init("girder_api_url", .string), .init("girder_api_key", .string)],
            options: logger + config + topic + groups + heartbeatsAndLogs + [downloadRegex, mode,
                .init("girder_root_folder_id", .string), .init("collection_name", .string),
                .init("girder_root_folder_path", .string), .init("metadata", .json), .init("replace_existing", .flag),
                .init("output_dir", .path, default: "GirderUploadStreamProcessor_output")] + threads,
            requiredSections: consumerSections, optionalSections: ["producer", "heartbeat", "log", "kafkacrypto"],
            requiredValues: consumerValues, brokerKeysFeedKafkaPython: true,
            folderNeed: .none, readsConfig: true, interactive: false),
        ProgramSpec(
            name: "InstallService", role: .service, summary: "Install a program as a systemd/Windows service (host only)",
            positionals: [], options: [], requiredSections: [], optionalSections: [], requiredValues: [],
            brokerKeysFeedKafkaPython: false, folderNeed: .none, readsConfig: false, interactive: true),
        ProgramSpec(
            name: "ManageService", role: .service, summary: "Start, stop or remove an installed service (host only)",
            positionals: [.init("service_name", .string),
                          .init("run_mode", .choice(["start", "status", "stop", "remove", "stop_and_remove", "reinstall",
                                                     "stop_and_reinstall", "stop_and_restart"]))],
            options: [.init("remove_env_vars", .flag), .init("remove_install_args", .flag), .init("remove_nssm", .flag)],
            requiredSections: [], optionalSections: [], requiredValues: [],
            brokerKeysFeedKafkaPython: false, folderNeed: .none, readsConfig: false, interactive: false),
        ProgramSpec(
            name: "ProvisionNode", role: .tool, summary: "Provision a KafkaCrypto node (interactive, needs network)",
            positionals: [],
            options: [.init("mode", .choice(["simple", "online"]), default: "simple"), .init("script-path", .path, default: ".")],
            requiredSections: [], optionalSections: [], requiredValues: [],
            brokerKeysFeedKafkaPython: false, folderNeed: .none, readsConfig: false, interactive: true),
        ProgramSpec(
            name: "ReproduceUndecryptableMessages", role: .tool, summary: "Re-produce saved undecryptable messages",
            positionals: [.init("config", .existingFile), .init("encrypted_messages_dir", .existingDirectory)],
            options: [], requiredSections: [], optionalSections: [], requiredValues: [],
            brokerKeysFeedKafkaPython: false, folderNeed: .none, readsConfig: false, interactive: false),
    ]

    public static func program(named name: String) -> ProgramSpec? { all.first { $0.name == name } }

    /// The program with this folder need (each tree need belongs to one program).
    public static func program(withNeed need: FolderNeed) -> ProgramSpec? { all.first { $0.folderNeed == need } }

    /// DataFileUploadDirectory's log folder and file, DataFileDownloadDirectory's log file (the folder-proof script and
    /// the tree rules name them).
    static var uploadLogFolder: String { program(withNeed: .readTreeWriteRoot)!.logFolder! }
    static var uploadLogName: String { program(withNeed: .readTreeWriteRoot)!.logFileName! }
    static var downloadLogName: String { program(withNeed: .writeTree)!.logFileName! }

    /// Section names OpenMSIStream reads anywhere; any other section is never read.
    public static let knownSections = ["broker", "producer", "consumer", "heartbeat", "log", "kafkacrypto", "s3"]

    /// Serializer class names OpenMSIStream replaces by instances (case-sensitive).
    public static let serializers = ["StringSerializer", "IntegerSerializer", "DoubleSerializer", "DataFileChunkSerializer"]
    public static let deserializers = ["StringDeserializer", "IntegerDeserializer", "DoubleDeserializer",
                                       "DataFileChunkDeserializer"]

    /// Environment variables that crash OpenMSIStream 1.7.0–1.8.7 at import when set at all.
    public static let crashingVariables: [(name: String, affects: String)] = [
        ("OPENMSISTREAM_CONFIG_FILE_DIR", "every OpenMSIStream program"),
        ("OPENMSISTREAM_SERVICES_WORKING_DIR", "InstallService and ManageService"),
    ]

    /// The credentials the EZOpenMSIStream recipe puts in openmsi.env.
    public static let recipeCredentials = ["CONFLUENT_BOOTSTRAP_SERVERS", "CONFLUENT_USERNAME", "CONFLUENT_PASSWORD"]

    /// Image facts of the official image (docker/openmsistream/Dockerfile).
    public static let officialImage = "openmsi/openmsistream"
    public static let imageHome = "/home/openmsi"
    public static let imageUID: UInt32 = 1000
    public static let containerDataPath = "/home/openmsi/data"
    public static let containerConfigPath = "/home/openmsi/config.config"
}
