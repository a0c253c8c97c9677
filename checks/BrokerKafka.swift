import EZMSICore

/// The broker answers as Kafka, accepts the SASL credentials, and has the command's topics, with partitions.
public struct BrokerKafka: Probe {
    public let id = "broker.kafka"
    public let title = "Broker speaks Kafka, credentials and topics"
    public let rationale = """
        A port that accepts connections is not yet a broker: OpenMSIStream also needs the SASL credentials accepted \
        and its topics to exist. A missing topic makes DataFileUploadDirectory and every consumer give up after ten \
        tries; bad credentials only show as librdkafka retrying.
        """
    public let dependsOn = ["broker.reachable"]
    public var needsNetwork: Bool { true }
    public init() {}

    public var examples: [ProbeExample] {
        let upload = "DataFileUploadDirectory data --config config.config --topic_name xrd"
        return [
            ProbeExample("authenticated, topic present", expect: .pass) {
                ExampleFacts.broker(kafka: { ExampleFacts.kafkaAnswered($0, present: ["xrd"]) })
            },
            ProbeExample("topic missing", expect: .fail, code: "topic-missing") {
                ExampleFacts.broker(command: upload, kafka: { ExampleFacts.kafkaAnswered($0, present: []) })
            },
            ProbeExample("password rejected", expect: .fail, code: "sasl-rejected") {
                ExampleFacts.broker(kafka: {
                    var f = ExampleFacts.kafkaAnswered($0, present: ["xrd"])
                    f.sasl = .rejected(mechanism: "PLAIN", message: "Authentication failed: Invalid username or password")
                    f.metadata = nil
                    return f
                })
            },
            ProbeExample("SCRAM configured, PLAIN offered only", expect: .fail, code: "sasl-mechanism") {
                ExampleFacts.broker(config: ExampleFacts.goodConsumerConfig.replacingOccurrences(of: "= PLAIN", with: "= SCRAM-SHA-512"), kafka: {
                    var f = $0
                    f.apiVersions = KafkaWire.ApiVersions(errorCode: 0, ranges: [3: 0...12, 17: 0...1, 18: 0...3])
                    f.sasl = .mechanismNotOffered(mechanism: "SCRAM-SHA-512", offered: ["PLAIN"])
                    return f
                })
            },
            ProbeExample("an HTTP server on the port", expect: .fail, code: "not-kafka") {
                ExampleFacts.broker(kafka: {
                    var f = $0
                    f.stop = .notKafka(step: "ApiVersions", detail: "an HTTP answer", tlsAlert: false)
                    return f
                })
            },
            ProbeExample("no [broker] section", expect: .skip) {
                ExampleFacts.broker(config: "[producer]\nkey.serializer = StringSerializer\n")
            },
        ]
    }

    /// The broker's words, with the credentials cut out in case it echoes them.
    static func scrubbed(_ message: String?, _ s: BrokerSettings) -> String {
        guard var text = message, !text.isEmpty else { return "" }
        for secret in [s.password, s.username].compactMap({ $0 }) where secret.count >= 2 {
            text = text.replacingOccurrences(of: secret, with: "‹redacted›")
        }
        return ": \(text)"
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        let fact = facts.brokerKafka.get()
        let settings: BrokerSettings
        switch fact.settings {
        case .failure(let why): return .skip(why.reason)
        case .success(let s): settings = s
        }
        guard let server = fact.server else { return .skip("no bootstrap server is reachable (see broker.reachable)") }
        let label = server.label
        var findings: [Finding] = []
        var details: [String: String] = [:]
        let at = settings.serversLocation

        if let versions = fact.apiVersions {
            findings.append(.info("kafka-answers", "\(label) answers as Kafka (\(versions.ranges.count) APIs)"))
            details["kafka apis"] = String(versions.ranges.count)
        }
        if let sasl = fact.sasl {
            let credentials = "sasl.username and sasl.password"
            switch sasl {
            case .authenticated(let m):
                findings.append(.info("sasl-ok", "authenticated with SASL \(m)"))
            case .mechanismNotOffered(let m, let offered):
                findings.append(.fail("sasl-mechanism", "the broker does not offer sasl.mechanism \(m)\(offered.isEmpty ? "" : " (it offers \(offered.joined(separator: ", ")))")",
                                      at: at.map { Location(file: $0.file) },
                                      fix: Remediation("Set [broker] sasl.mechanism to one the broker offers\(offered.first.map { ", e.g. \($0)" } ?? "")")))
            case .rejected(let m, let message):
                findings.append(.fail("sasl-rejected", "the broker rejected \(credentials) (SASL \(m))\(Self.scrubbed(message, settings))",
                                      at: at.map { Location(file: $0.file) },
                                      fix: Remediation("Check the user name and password in the env-file (for Confluent Cloud: an API key and its secret, for this cluster)")))
            case .missingCredentials(let m):
                findings.append(.fail("sasl-no-credentials", "security.protocol \(settings.securityProtocol) with SASL \(m) needs \(credentials), and they are not set",
                                      at: at.map { Location(file: $0.file) },
                                      fix: Remediation("Add sasl.username and sasl.password to [broker] (e.g. = $CONFLUENT_USERNAME and = $CONFLUENT_PASSWORD)")))
            case .notChecked(let m, let why):
                findings.append(.warn("sasl-not-checked", "SASL \(m) not checked (\(why)); the topics were not checked either"))
            }
        }
        if let stop = fact.stop {
            findings.append(Self.finding(stop, label: label, settings: settings, at: at))
        }

        var present: [String] = []
        var missing: [String] = []
        if let metadata = fact.metadata {
            details["cluster brokers"] = String(metadata.brokers)
            for topic in fact.topics {
                let uses = topic.uses.joined(separator: "; ")
                let found = metadata.topics.first { $0.name == topic.name }
                let code = found?.errorCode ?? KafkaError.unknownTopicOrPartition
                let create = Remediation("Create the topic on the broker (Confluent Cloud: Topics → Add topic), or correct the topic name in the command",
                                         commands: ["kafka-topics.sh --bootstrap-server <bootstrap.servers> --create --topic \(ShellWords.quote(topic.name))"])
                if code == KafkaError.unknownTopicOrPartition {
                    missing.append(topic.name)
                    if topic.lookedUp {
                        findings.append(.fail("topic-missing", "topic \"\(topic.name)\" does not exist (\(uses)): OpenMSIStream would give up after ten tries",
                                              fix: create))
                    } else {
                        findings.append(.warn("topic-missing", "topic \"\(topic.name)\" does not exist (\(uses)): producing to it fails unless the broker creates topics on first use",
                                              fix: create))
                    }
                } else if code == KafkaError.topicAuthorizationFailed {
                    findings.append(.fail("topic-unauthorized", "the credentials may not describe topic \"\(topic.name)\" (\(uses))",
                                          fix: Remediation("Grant this user read/write ACLs on the topic (or use an API key that has them)")))
                } else if code != 0 && code != KafkaError.leaderNotAvailable {
                    findings.append(.fail("topic-error", "looking up topic \"\(topic.name)\" gave \(KafkaError.name(code))"))
                } else if let t = found, t.partitions.isEmpty {
                    findings.append(.fail("topic-no-partitions", "topic \"\(topic.name)\" has no partitions (\(uses)): OpenMSIStream would give up after ten tries",
                                          fix: create))
                } else if let t = found {
                    let leaderless = t.partitions.filter { $0.leader < 0 || $0.errorCode != 0 }.count
                    present.append(topic.name)
                    if leaderless > 0 || code == KafkaError.leaderNotAvailable {
                        findings.append(.warn("topic-no-leader", "\(leaderless) of \(t.partitions.count) partitions of topic \"\(topic.name)\" have no leader"))
                    } else {
                        findings.append(.info("topic-present", "topic \"\(topic.name)\" exists with \(t.partitions.count) partition\(t.partitions.count == 1 ? "" : "s") (\(uses))"))
                    }
                }
            }
        }
        var message: String
        if fact.stop != nil || fact.apiVersions == nil {
            message = "\(label) did not complete the Kafka dialogue"
        } else if case .authenticated? = fact.sasl, fact.topics.isEmpty {
            message = "Kafka answers and accepts the credentials; the command names no topic"
        } else if fact.metadata == nil {
            message = fact.topics.isEmpty ? "Kafka answers; the command names no topic" : "Kafka answers; topics not checked"
        } else if missing.isEmpty {
            message = "Kafka answers; topic\(present.count == 1 ? "" : "s") \(present.map { "\"\($0)\"" }.joined(separator: ", ")) present"
        } else {
            message = "Kafka answers; topic\(missing.count == 1 ? "" : "s") \(missing.map { "\"\($0)\"" }.joined(separator: ", ")) missing"
        }
        if case .rejected? = fact.sasl { message = "Kafka answers but rejects the credentials" }
        if case .mechanismNotOffered? = fact.sasl { message = "Kafka answers but does not offer the configured SASL mechanism" }
        return ProbeOutcome(message, findings: findings, details: details)
    }

    static func finding(_ stop: KafkaStop, label: String, settings: BrokerSettings, at: Location?) -> Finding {
        switch stop {
        case .notKafka(let step, let detail, let tlsAlert):
            let fix = tlsAlert
                ? Remediation("The server speaks TLS: set [broker] security.protocol = \(settings.usesSASL ? "SASL_SSL" : "SSL")")
                : Remediation("Check the port in bootstrap.servers: it must be the broker's Kafka listener")
            return .fail("not-kafka", "\(label) accepted the connection but answered \(step) with \(detail), not as Kafka", at: at, fix: fix)
        case .closed(let step) where step == "ApiVersions":
            return .fail("not-kafka", "\(label) closed the connection without answering ApiVersions: not a Kafka listener, or one that expects TLS",
                         at: at, fix: Remediation(settings.usesTLS ? "Check the port in bootstrap.servers"
                                                                    : "Check the port, and security.protocol (a TLS listener closes plain connections: SSL or SASL_SSL)"))
        case .closed(let step) where step == "Metadata" && !settings.usesSASL:
            return .fail("kafka-closed", "\(label) closed the connection on Metadata: the listener probably requires SASL authentication",
                         at: at, fix: Remediation("Set security.protocol = SASL_SSL (or SASL_PLAINTEXT) with sasl.mechanism, sasl.username and sasl.password"))
        case .closed(let step) where step.hasPrefix("Sasl"):
            return .fail("kafka-closed", "\(label) closed the connection during \(step): it does not accept SASL \(settings.saslMechanism ?? "")",
                         at: at, fix: Remediation("Check sasl.mechanism and security.protocol with the broker's operator"))
        case .closed(let step):
            return .fail("kafka-closed", "\(label) closed the connection during \(step)", at: at)
        case .error(let step, let code) where step == "SaslHandshake":
            return .fail("sasl-mechanism", "\(label) answered SaslHandshake for \(settings.saslMechanism ?? "") with \(KafkaError.name(code)): SASL is probably not enabled on this listener",
                         at: at, fix: Remediation("Check security.protocol with the broker's operator: a listener without SASL needs PLAINTEXT or SSL and no sasl.* settings"))
        case .timeout(let step):
            return .fail("kafka-timeout", "\(label) did not answer \(step) in time: OpenMSIStream would hang",
                         at: at, fix: Remediation("Check that this port is the broker's Kafka listener, and security.protocol"))
        case .failed(let step, let detail):
            return .fail("kafka-failed", "\(label): \(step) failed: \(detail)", at: at)
        case .error(let step, let code):
            return .fail("kafka-error", "\(label) answered \(step) with \(KafkaError.name(code))", at: at)
        }
    }
}
