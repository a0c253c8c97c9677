/// One librdkafka configuration property (the table is generated from librdkafka's CONFIGURATION.md).
public struct KafkaProperty: Sendable {
    public enum Level: String, Sendable { case global, topic }
    public enum Scope: String, Sendable { case both, consumer, producer }

    public var name: String
    public var level: Level
    public var scope: Scope
    public var type: String
    public var range: String
    public var defaultValue: String
    public var deprecated: Bool
    public var alias: Bool

    /// Properties set through callbacks ("see dedicated API") cannot be set from a config file.
    public var settableFromFile: Bool { type != "see dedicated API" }

    public func applies(to client: Scope) -> Bool { scope == .both || scope == client }

    /// The allowed values of an enum or boolean property.
    public var choices: [String]? {
        guard type == "enum value" || type == "boolean" else { return nil }
        return range.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// Checks a value as librdkafka's `rd_kafka_conf_set` would, as far as a file can tell.
    /// OpenMSIStream turns numeric strings into floats first (`100` → `100.0`); librdkafka accepts those.
    public func problem(with value: String) -> String? {
        if value.hasPrefix("$") { return nil }   // resolved from the environment at run time
        switch type {
        case "boolean":
            let ok = ["true", "false", "t", "f", "1", "0", "yes", "no", "y", "n", "on", "off"]
            return ok.contains(value.lowercased()) || Double(value) != nil ? nil : "expects true or false"
        case "enum value":
            guard let choices else { return nil }
            // librdkafka compares enum names case-insensitively (SASL_SSL is sasl_ssl).
            return choices.contains(where: { $0.lowercased() == value.lowercased() }) ? nil : "expects one of \(choices.joined(separator: ", "))"
        case "integer", "float":
            guard let number = Double(value) else { return "expects a number" }
            let parts = range.components(separatedBy: "..").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            if parts.count == 2, let lo = parts[0], let hi = parts[1], number < lo || number > hi {
                return "must be between \(range)"
            }
            return nil
        default:
            return nil
        }
    }
}

public enum KafkaProperties {
    static let byName: [String: [KafkaProperty]] = Dictionary(grouping: KafkaProperty.table, by: \.name)

    public static func lookup(_ name: String) -> [KafkaProperty] { byName[name] ?? [] }

    /// The closest property names, for "did you mean".
    public static func suggestions(for name: String, scope: KafkaProperty.Scope, limit: Int = 3) -> [String] {
        let candidates = KafkaProperty.table.filter { $0.applies(to: scope) && $0.settableFromFile && !$0.deprecated }
        let threshold = max(2, name.count / 4)
        var scored: [(name: String, distance: Int)] = []
        for candidate in Set(candidates.map { $0.name }) {
            let d = Levenshtein.distance(name, candidate)
            if d <= threshold { scored.append((candidate, d)) }
        }
        scored.sort { $0.distance != $1.distance ? $0.distance < $1.distance : $0.name < $1.name }
        return scored.prefix(limit).map { $0.name }
    }

    /// kafka-python `KafkaAdminClient` accepts these keys (after OpenMSIStream's translation of `[broker]` keys).
    static let kafkaPythonAdminKeys: Set<String> = [
        "bootstrap_servers", "client_id", "request_timeout_ms", "connections_max_idle_ms", "reconnect_backoff_ms",
        "reconnect_backoff_max_ms", "max_in_flight_requests_per_connection", "receive_buffer_bytes",
        "send_buffer_bytes", "socket_options", "sock_chunk_bytes", "sock_chunk_buffer_count", "retry_backoff_ms",
        "metadata_max_age_ms", "security_protocol", "ssl_context", "ssl_check_hostname", "ssl_cafile",
        "ssl_certfile", "ssl_keyfile", "ssl_password", "ssl_crlfile", "api_version", "api_version_auto_timeout_ms",
        "selector", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password", "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name", "sasl_oauth_token_provider", "metrics_enabled", "metrics_num_samples",
        "metrics_sample_window_ms", "metric_reporters", "kafka_client",
    ]

    /// OpenMSIStream's translation of a `[broker]` key for kafka-python (consumer_group.py), or nil when rejected.
    public static func kafkaPythonName(for key: String) -> String? {
        let translated: String
        switch key {
        case "ssl.ca.location": translated = "ssl_cafile"
        case "ssl.endpoint.identification.algorithm": translated = "ssl_check_hostname"
        case "sasl.username": translated = "sasl_plain_username"
        case "sasl.password": translated = "sasl_plain_password"
        default: translated = key.replacingOccurrences(of: ".", with: "_")
        }
        return kafkaPythonAdminKeys.contains(translated) ? translated : nil
    }
}

public enum Levenshtein {
    public static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
