import EZMSICore
import Foundation

/// The keys of the config are what the program needs and what librdkafka (and kafka-python) accept.
public struct ConfigKeys: Probe {
    public let id = "config.keys"
    public let title = "Config keys and values"
    public let rationale = """
        librdkafka rejects unknown properties at startup, kafka-python rejects many [broker] keys, a missing \
        serializer makes every upload fail, and several settings are silently overridden by OpenMSIStream.
        """
    public let dependsOn: [String] = []
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("consumer config for DataFileDownloadDirectory", expect: .pass) { ExampleFacts.make() },
            ProbeExample("typo in a librdkafka key", expect: .fail, code: "unknown-property") {
                ExampleFacts.make(config: ExampleFacts.goodConsumerConfig.replacingOccurrences(of: "auto.offset.reset", with: "auto.offset.rest"))
            },
            ProbeExample("consumer config used for an upload", expect: .fail, code: "section-missing") {
                ExampleFacts.make(command: "DataFileUploadDirectory data --config config.config")
            },
            ProbeExample("kafka-python rejects ssl.key.location in [broker]", expect: .fail, code: "kafka-python-rejects") {
                ExampleFacts.make(config: ExampleFacts.goodConsumerConfig.replacingOccurrences(
                    of: "[consumer]", with: "ssl.key.location = /k.pem\n\n[consumer]"))
            },
            ProbeExample("numeric group.id", expect: .fail, code: "numeric-group-id") {
                ExampleFacts.make(config: ExampleFacts.goodConsumerConfig.replacingOccurrences(of: "group.id           = create_new", with: "group.id = 123"))
            },
            ProbeExample("empty client.id", expect: .warn, code: "empty-client-id") {
                ExampleFacts.make(config: ExampleFacts.goodConsumerConfig + "client.id =\n")
            },
            ProbeExample("a literal sasl.password instead of $CONFLUENT_PASSWORD", expect: .warn, code: "literal-secret") {
                ExampleFacts.make(config: ExampleFacts.goodConsumerConfig.replacingOccurrences(
                    of: "sasl.password     = $CONFLUENT_PASSWORD", with: "sasl.password     = hunter2-in-the-file"))
            },
            ProbeExample("a literal S3 secret key", expect: .warn, code: "literal-secret") {
                ExampleFacts.make(command: "S3TransferStreamProcessor xrd-bucket --config config.config --topic_name xrd --consumer_group_id xrd_lab",
                                  config: ExampleFacts.goodConsumerConfig + Self.s3Section.replacingOccurrences(
                                    of: "secret_key_id = $SECRET_KEY_ID", with: "secret_key_id = wJalrXUtnFEMI-literal"))
            },
            ProbeExample("S3 keys referenced as $NAME", expect: .pass) {
                ExampleFacts.make(command: "S3TransferStreamProcessor xrd-bucket --config config.config --topic_name xrd --consumer_group_id xrd_lab",
                                  config: ExampleFacts.goodConsumerConfig + Self.s3Section)
            },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        guard case .success(let fact) = facts.config.get() else { return .skip("the config file could not be read (see config.syntax)") }
        let config = fact.file
        let path = config.path
        let parsed = facts.command.get()
        let program = parsed.program
        var findings: [Finding] = []
        func at(_ line: Int?) -> Location { Location(file: path, line: line) }

        // Sections and exact values the program needs.
        if let program {
            for name in program.requiredSections where config.section(name) == nil {
                findings.append(.fail("section-missing", "\(program.name) needs a [\(name)] section", at: at(nil),
                                      fix: Remediation("Add [\(name)]; `ezmsi init DIR --program \(program.name)` writes a complete example")))
            }
            for need in program.requiredValues where config.section(need.section) != nil {
                let option = config.section(need.section)?.option(need.key)
                guard let option else {
                    findings.append(.fail("serializer-missing", "[\(need.section)] needs \(need.key) = \(need.value) for \(program.name)",
                                          at: at(config.section(need.section)?.line),
                                          fix: Remediation("Add the line `\(need.key) = \(need.value)` to [\(need.section)]")))
                    continue
                }
                if option.raw != need.value {
                    let known = ProgramTable.serializers + ProgramTable.deserializers
                    let hint = known.contains(option.raw) ? "" : (closest(option.raw, in: known).map { " (did you mean \($0)?)" } ?? "")
                    findings.append(.fail("serializer-wrong", "[\(need.section)] \(need.key) must be \(need.value) for \(program.name)\(hint)",
                                          evidence: Evidence(expected: need.value, actual: option.raw), at: at(option.line),
                                          fix: Remediation("Write `\(need.key) = \(need.value)`")))
                }
            }
        }

        // librdkafka properties, section by section (keys of [DEFAULT] reach all three).
        let clientScope: [String: KafkaProperty.Scope] = ["broker": .both, "producer": .producer, "consumer": .consumer]
        for (sectionName, scope) in clientScope.sorted(by: { $0.key < $1.key }) {
            guard let section = config.section(sectionName) else { continue }
            for option in section.options + config.defaults.filter({ d in section.option(d.key) == nil }) {
                if isOpenMSIStreamKey(option.key, section: sectionName) { continue }
                let value = config.value(sectionName, option.key).flatMap { try? $0.get() } ?? option.raw
                findings += judgeProperty(option, value: value, section: sectionName, scope: scope, path: path)
                if sectionName == "broker", program?.brokerKeysFeedKafkaPython == true,
                   KafkaProperties.kafkaPythonName(for: option.key) == nil, !KafkaProperties.lookup(option.key).isEmpty {
                    findings.append(.fail("kafka-python-rejects",
                                          "[broker] \(option.key) is passed to kafka-python's KafkaAdminClient by \(program!.name), which rejects it (Unrecognized configs)",
                                          at: at(option.line), fix: Remediation("Move \(option.key) to [producer] or [consumer], where only librdkafka reads it")))
                }
            }
        }

        // Consumer settings OpenMSIStream treats specially.
        if let consumer = config.section("consumer"), program.map({ $0.role == .consumer || $0.role == .processor }) ?? true {
            let groupFlag = parsed.options["consumer_group_id"]
            if let option = consumer.option("group.id") {
                if Double(option.raw) != nil {
                    findings.append(.fail("numeric-group-id", "group.id = \(option.raw) is numeric: OpenMSIStream turns it into a float and crashes",
                                          at: at(option.line), fix: Remediation("Use a name with a letter, e.g. group.id = lab_\(option.raw)")))
                } else if option.raw.lowercased() != "create_new", groupFlag == nil, program != nil {
                    findings.append(.warn("group-id-overridden", "group.id = \(option.raw) is ignored: without --consumer_group_id every start uses a new random group",
                                          at: at(option.line), fix: Remediation("Pass the group on the command line", commands: ["… --consumer_group_id \(ShellWords.quote(option.raw))"])))
                } else if let groupFlag, groupFlag != option.raw, option.raw.lowercased() != "create_new" {
                    findings.append(.info("group-id-flag", "--consumer_group_id \(groupFlag) replaces group.id = \(option.raw)", at: at(option.line)))
                }
            }
            let commit = consumer.option("enable.auto.commit")
            if commit?.raw.lowercased() != "false", program?.role == .consumer || program?.role == .processor {
                findings.append(.warn("auto-commit", "enable.auto.commit should be False: otherwise OpenMSIStream warns that at-least-once delivery is not guaranteed",
                                      at: at(commit?.line ?? consumer.line), fix: Remediation("Add `enable.auto.commit = False` to [consumer]")))
            }
            if let reset = consumer.option("auto.offset.reset") {
                if reset.raw == "none" {
                    findings.append(.warn("offset-reset-none", "auto.offset.reset = none is deleted by OpenMSIStream: librdkafka's default (latest) applies",
                                          at: at(reset.line), fix: Remediation("Write earliest or latest explicitly")))
                } else if reset.raw == "earliest", (groupFlag ?? "create_new").lowercased() == "create_new",
                          program?.role == .consumer || program?.role == .processor {
                    findings.append(.warn("reread-on-restart", "auto.offset.reset = earliest with a new group on every start: each restart re-reads the whole topic",
                                          at: at(reset.line), fix: Remediation("Pass a fixed --consumer_group_id NAME so restarts resume")))
                }
            }
            if let instance = consumer.option("group.instance.id"), Int(parsed.value("n_threads") ?? "2") ?? 2 > 1 {
                findings.append(.warn("shared-instance-id", "group.instance.id = \(instance.raw) is shared by all \(parsed.value("n_threads") ?? "2") consumer threads; Kafka fences duplicates",
                                      at: at(instance.line), fix: Remediation("Remove group.instance.id, or run with --n_threads 1 and one container")))
            }
        }
        for section in config.sections where clientScope[section.name] != nil {
            if let clientID = section.option("client.id"), clientID.raw.isEmpty {
                findings.append(.warn("empty-client-id", "client.id is empty (the recipe's placeholder): the broker cannot tell clients apart",
                                      at: at(clientID.line), fix: Remediation("Set client.id to a name for this instrument, e.g. client.id = xrd-lab-1")))
            }
        }

        // Credentials belong in the env-file: the config is mounted into the container, copied into custom images and
        // attached to tickets. The value itself is never shown.
        for secret in Secrets.literalSecrets(in: config) {
            findings.append(.warn("literal-secret",
                                  "[\(secret.section)] \(secret.key) holds a literal credential (not $NAME): it sits in the config file, which is mounted into the container, copied into a custom image and shared with it",
                                  at: at(secret.line),
                                  fix: Remediation("Move it to the env-file and write $NAME: add \(secret.suggestedVariable)=… to \((facts.deployment.envFile as NSString).lastPathComponent) and write `\(secret.key) = $\(secret.suggestedVariable)`")))
        }

        findings += judgeS3(config, program: program, path: path)
        findings += judgeHeartbeatAndLog(config, path: path)
        findings += judgeKafkaCrypto(config, path: path)

        let problems = findings.filter { $0.severity != .info }.count
        return ProbeOutcome(problems == 0 ? "keys fit \(program?.name ?? "OpenMSIStream")" : "\(problems) problem\(problems == 1 ? "" : "s") with keys",
                            findings: findings)
    }

    static let s3Section = """

        [s3]
        access_key_id = $ACCESS_KEY_ID
        secret_key_id = $SECRET_KEY_ID
        endpoint_url  = https://s3.example.org
        region        = us-east-1

        """

    /// Keys OpenMSIStream consumes itself before librdkafka sees the section.
    private func isOpenMSIStreamKey(_ key: String, section: String) -> Bool {
        if key == "node_id" { return true }
        if section == "producer" { return key == "key.serializer" || key == "value.serializer" }
        if section == "consumer" { return key == "key.deserializer" || key == "value.deserializer" }
        return false
    }

    private func judgeProperty(_ option: ConfigOption, value: String, section: String, scope: KafkaProperty.Scope,
                               path: String) -> [Finding] {
        let at = Location(file: path, line: option.line)
        let candidates = KafkaProperties.lookup(option.key)
        guard let property = candidates.first(where: { $0.applies(to: scope) }) ?? candidates.first else {
            let suggestions = KafkaProperties.suggestions(for: option.key, scope: scope)
            let hint = suggestions.isEmpty ? "" : " — did you mean \(suggestions.joined(separator: " or "))?"
            return [.fail("unknown-property", "[\(section)] \(option.key) is not a librdkafka property\(hint)",
                          evidence: Evidence(expected: "a property of librdkafka 2.13–2.15", actual: option.key), at: at,
                          fix: Remediation(suggestions.first.map { "Rename it to \($0)" } ?? "Delete the line"))]
        }
        var findings: [Finding] = []
        if !property.settableFromFile {
            findings.append(.fail("not-settable", "[\(section)] \(option.key) is set through librdkafka's API, not a config file", at: at,
                                  fix: Remediation("Delete the line")))
        }
        if !property.applies(to: scope) {
            findings.append(.warn("wrong-client", "[\(section)] \(option.key) is a \(property.scope.rawValue) property; this client ignores it with a warning",
                                  at: at, fix: Remediation("Move it to [\(property.scope.rawValue)]")))
        }
        if property.deprecated {
            findings.append(.warn("deprecated-property", "[\(section)] \(option.key) is deprecated in librdkafka", at: at,
                                  fix: Remediation("See librdkafka's CONFIGURATION.md for its replacement")))
        }
        if !(section == "consumer" && option.key == "auto.offset.reset" && value == "none"),
           !Secrets.isSecretKey(option.key), let problem = property.problem(with: value) {
            findings.append(.fail("invalid-value", "[\(section)] \(option.key) = \(value): \(problem)",
                                  evidence: Evidence(expected: property.range.isEmpty ? property.type : property.range, actual: value),
                                  at: at, fix: Remediation("Use a value librdkafka accepts")))
        }
        return findings
    }

    private func judgeS3(_ config: ConfigFile, program: ProgramSpec?, path: String) -> [Finding] {
        let keys = ["access_key_id", "secret_key_id", "endpoint_url", "region"]
        guard let s3 = config.section("s3") else { return [] }
        var findings: [Finding] = []
        for key in keys where s3.option(key) == nil {
            findings.append(.fail("s3-key-missing", "[s3] needs \(key) (S3TransferStreamProcessor fails late with KeyError)",
                                  at: Location(file: path, line: s3.line), fix: Remediation("Add `\(key) = $\(key.uppercased())`")))
        }
        for option in s3.options where !keys.contains(option.key) {
            findings.append(.warn("s3-key-unknown", "[s3] \(option.key) is not read (only \(keys.joined(separator: ", ")))",
                                  at: Location(file: path, line: option.line), fix: Remediation("Delete the line")))
        }
        if program != nil, program?.name != "S3TransferStreamProcessor" {
            findings.append(.info("s3-unused", "[s3] is read only by S3TransferStreamProcessor", at: Location(file: path, line: s3.line)))
        }
        return findings
    }

    private func judgeHeartbeatAndLog(_ config: ConfigFile, path: String) -> [Finding] {
        var findings: [Finding] = []
        for name in ["heartbeat", "log"] {
            guard let section = config.section(name) else { continue }
            let prefer = section.option("prefer.separate.producer")
            let others = section.options.filter { !["prefer.separate.producer", "max.logs.per.message", "log.level"].contains($0.key) }
            if prefer == nil, let first = others.first {
                findings.append(.warn("unused-\(name)-keys", "[\(name)] keys are used only with prefer.separate.producer = True",
                                      at: Location(file: path, line: first.line), fix: Remediation("Add `prefer.separate.producer = True` or delete the keys")))
            }
            if let prefer, ["false", "no", "off"].contains(prefer.raw.lowercased()) {
                findings.append(.warn("truthy-false", "prefer.separate.producer = \(prefer.raw) counts as true (a non-empty string)",
                                      at: Location(file: path, line: prefer.line), fix: Remediation("Delete the line to turn it off (or write 0)")))
            }
            if name == "log", let level = section.option("log.level"),
               !["CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET"].contains(level.raw) {
                findings.append(.fail("log-level", "log.level = \(level.raw) is not an uppercase level name (INFO, WARNING, …)",
                                      at: Location(file: path, line: level.line), fix: Remediation("Write log.level = \(level.raw.uppercased().isEmpty ? "INFO" : level.raw.uppercased())")))
            }
            for option in section.options where (ProgramTable.serializers + ProgramTable.deserializers).contains(option.raw) {
                findings.append(.fail("serializer-in-\(name)", "[\(name)] \(option.key) = \(option.raw): serializers are not replaced in [\(name)]",
                                      at: Location(file: path, line: option.line), fix: Remediation("Delete the line")))
            }
        }
        return findings
    }

    private func judgeKafkaCrypto(_ config: ConfigFile, path: String) -> [Finding] {
        guard let section = config.section("kafkacrypto") else { return [] }
        var findings: [Finding] = []
        if let file = section.option("config_file") {
            let value = file.raw
            if !value.hasPrefix("/"), !value.hasPrefix("file#/"), let first = value.first, "file#".contains(first) {
                findings.append(.fail("kafkacrypto-path-mangled", "config_file = \(value): OpenMSIStream strips leading f, i, l, e and # characters from relative paths",
                                      at: Location(file: path, line: file.line), fix: Remediation("Use an absolute path inside the container")))
            } else if !value.hasPrefix("/"), !value.hasPrefix("file#/") {
                findings.append(.warn("kafkacrypto-relative", "config_file = \(value) is relative to the container's working directory",
                                      at: Location(file: path, line: file.line), fix: Remediation("Use an absolute path on a mount")))
            }
        } else if section.option("node_id") == nil {
            findings.append(.fail("kafkacrypto-empty", "[kafkacrypto] needs node_id or config_file",
                                  at: Location(file: path, line: section.line), fix: Remediation("Add node_id = <your node> (see ProvisionNode)")))
        }
        if let node = section.option("node_id") {
            findings.append(.info("kafkacrypto-node", "node \(node.raw): its directory must be mounted and writable by the container (KafkaCrypto rewrites its files)",
                                  at: Location(file: path, line: node.line)))
        }
        return findings
    }

    private func closest(_ word: String, in list: [String]) -> String? {
        list.min { Levenshtein.distance(word, $0) < Levenshtein.distance(word, $1) }
            .flatMap { Levenshtein.distance(word, $0) <= 4 ? $0 : nil }
    }
}
