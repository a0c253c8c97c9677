import Foundation

extension ExampleFacts {
    /// Example facts with canned broker facts: the settings are resolved from the example config and env-file (no I/O),
    /// each bootstrap server gets `reach(server)`, and `kafka` (if given) builds the Kafka dialogue's outcome.
    public static func broker(
        env: String = goodEnv, config: String? = goodConsumerConfig,
        command: String = "DataFileDownloadDirectory data --config config.config --topic_name xrd --consumer_group_id xrd_lab",
        reach: (BrokerServer) -> ServerReach = { ServerReach(server: $0, failure: nil, tlsVersion: "TLSv1.3") },
        kafka: ((BrokerKafkaFact) -> BrokerKafkaFact)? = nil
    ) -> Facts {
        let facts = make(command: command, env: env, config: config)
        let settings = BrokerSettingsResolver.resolve(config: facts.config.get(), envFile: facts.envFile.get(),
                                                      host: facts.environment, deployment: facts.deployment)
        let servers = (try? settings.get().servers) ?? []
        let reachFact = BrokerReachFact(settings: settings, servers: servers.map(reach))
        facts.brokerReach.set(reachFact)
        let base = BrokerKafkaFact(settings: settings, server: reachFact.servers.first { $0.failure == nil }?.server,
                                   topics: BrokerTopics.topics(for: facts.command.get()))
        facts.brokerKafka.set(kafka?(base) ?? base)
        return facts
    }

    /// A Kafka dialogue that went through: ApiVersions, SASL PLAIN when configured, and Metadata with `present` topics
    /// (two partitions each, leader 1).
    public static func kafkaAnswered(_ fact: BrokerKafkaFact, present: [String]) -> BrokerKafkaFact {
        var f = fact
        f.apiVersions = KafkaWire.ApiVersions(errorCode: 0, ranges: [3: 0...12, 17: 0...1, 18: 0...3, 36: 0...2])
        if case .success(let s) = f.settings, s.usesSASL { f.sasl = .authenticated(mechanism: s.saslMechanism ?? "PLAIN") }
        f.metadataVersion = 4
        f.metadata = KafkaWire.Metadata(brokers: 1, clusterId: "example", topics: f.topics.map { topic in
            present.contains(topic.name)
                ? KafkaWire.TopicMetadata(errorCode: 0, name: topic.name, partitions: [
                    KafkaWire.Partition(errorCode: 0, index: 0, leader: 1), KafkaWire.Partition(errorCode: 0, index: 1, leader: 1)])
                : KafkaWire.TopicMetadata(errorCode: KafkaError.unknownTopicOrPartition, name: topic.name, partitions: [])
        })
        return f
    }
}
