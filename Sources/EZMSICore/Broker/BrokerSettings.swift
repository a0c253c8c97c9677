import Foundation

/// One entry of `bootstrap.servers`. Its host is secret when it comes from the env-file, and `bootstrap.servers` is a
/// secret config key either way (see `Secrets`), so reports name it by position and port only: `server 1 of 2 (port 9092)`.
public struct BrokerServer: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// 1-based position in `bootstrap.servers`.
    public var index: Int
    public var count: Int

    public init(host: String, port: Int, index: Int, count: Int) {
        self.host = host
        self.port = port
        self.index = index
        self.count = count
    }

    public var label: String { "server \(index) of \(count) (port \(port))" }

    /// `localhost`, 127.0.0.0/8 or ::1: inside a container on Docker's default network that is the container itself.
    public var isLoopback: Bool {
        let h = host.lowercased()
        return h == "localhost" || h.hasSuffix(".localhost") || h.hasPrefix("127.") || h == "::1" || h == "0:0:0:0:0:0:0:1"
    }
}

/// The effective `[broker]` settings, as OpenMSIStream hands them to librdkafka: configparser interpolation, then
/// `$VAR` expansion from the container's environment (the env-file), for values that start with `$`.
public struct BrokerSettings: Sendable {
    public var servers: [BrokerServer]
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (upper-cased; librdkafka's default is PLAINTEXT).
    public var securityProtocol: String
    /// The SASL mechanism (upper-cased; librdkafka's default is GSSAPI). Nil unless the protocol uses SASL.
    public var saslMechanism: String?
    public var username: String?
    public var password: String?
    /// `ssl.ca.location` as written (after expansion), the path the program sees in the container.
    public var caLocation: String?
    /// Where that file is on this host (through the deployment's mounts, else the same path), if it exists.
    public var caHostPath: String?
    /// The CA file exists on this host but is on no mount, so the container will not find it.
    public var caUnmounted: Bool
    /// `ssl.endpoint.identification.algorithm` is not `none`: the certificate must name the host.
    public var checkHostname: Bool
    /// The config file and line of `bootstrap.servers`.
    public var serversLocation: Location?
    /// The env-file variable `bootstrap.servers` expands, if any (`CONFLUENT_BOOTSTRAP_SERVERS`).
    public var serversVariable: String?
    /// Docker `--network` of the deployment (`host` lets a container reach the host's loopback).
    public var network: String?

    public var usesTLS: Bool { securityProtocol == "SSL" || securityProtocol == "SASL_SSL" }
    public var usesSASL: Bool { securityProtocol.hasPrefix("SASL_") }

    public static let protocols = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
}

/// Why the broker cannot be probed (the probes then skip with this reason).
public struct BrokerNotConfigured: Error, Sendable, Equatable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

public enum BrokerSettingsResolver {
    /// Python's `os.path.expandvars`: `$name` and `${name}` replaced when set, left as written when not.
    public static func expandVars(_ text: String, _ env: [String: String]) -> String {
        guard text.contains("$") else { return text }
        let chars = Array(text)
        var out = ""
        var i = 0
        func isWord(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || c == "_") }
        while i < chars.count {
            guard chars[i] == "$", i + 1 < chars.count else { out.append(chars[i]); i += 1; continue }
            var j = i + 1
            var name = ""
            if chars[j] == "{" {
                guard let close = chars[(j + 1)...].firstIndex(of: "}") else { out.append(chars[i]); i += 1; continue }
                name = String(chars[(j + 1)..<close])
                j = close + 1
            } else {
                while j < chars.count, isWord(chars[j]) { name.append(chars[j]); j += 1 }
                if name.isEmpty { out.append(chars[i]); i += 1; continue }
            }
            if let value = env[name] { out += value } else { out += String(chars[i..<j]) }
            i = j
        }
        return out
    }

    /// `[broker] key` as OpenMSIStream reads it. Nil when absent; a failure names why it cannot be used.
    static func value(_ key: String, config: ConfigFile, env: [String: String]) -> Result<String, BrokerNotConfigured>? {
        guard let got = config.value("broker", key) else { return nil }
        switch got {
        case .failure(let f):
            return .failure(BrokerNotConfigured("[broker] \(key) cannot be read (\(f.kind)); see config.syntax"))
        case .success(let raw):
            let text = raw.trimmingCharacters(in: .whitespaces)
            guard text.hasPrefix("$") else { return .success(text) }
            let expanded = expandVars(text, env)
            if expanded == text {
                return .failure(BrokerNotConfigured("[broker] \(key) = \(text) names a variable the env-file does not set (see env.credentials)"))
            }
            return .success(expanded)
        }
    }

    /// `host:port`, `[v6]:port`, an optional `PROTO://` prefix; the port defaults to 9092 like librdkafka's.
    public static func parseServers(_ text: String) -> Result<[BrokerServer], BrokerNotConfigured> {
        let entries = text.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init).filter { !$0.isEmpty }
        guard !entries.isEmpty else { return .failure(BrokerNotConfigured("[broker] bootstrap.servers is empty")) }
        var servers: [BrokerServer] = []
        for (n, var entry) in entries.enumerated() {
            if let scheme = entry.range(of: "://") { entry = String(entry[scheme.upperBound...]) }
            var host = entry
            var port = 9092
            if entry.hasPrefix("["), let close = entry.firstIndex(of: "]") {
                host = String(entry[entry.index(after: entry.startIndex)..<close])
                let rest = entry[entry.index(after: close)...]
                if rest.hasPrefix(":") {
                    guard let p = Int(rest.dropFirst()) else { return .failure(badPort(n + 1, entries.count)) }
                    port = p
                }
            } else if let colon = entry.lastIndex(of: ":"), entry.firstIndex(of: ":") == colon {
                host = String(entry[..<colon])
                guard let p = Int(entry[entry.index(after: colon)...]) else { return .failure(badPort(n + 1, entries.count)) }
                port = p
            }
            guard !host.isEmpty, (1...65535).contains(port) else { return .failure(badPort(n + 1, entries.count)) }
            servers.append(BrokerServer(host: host, port: port, index: n + 1, count: entries.count))
        }
        return .success(servers)
    }

    /// `CONFLUENT_BOOTSTRAP_SERVERS` of `$CONFLUENT_BOOTSTRAP_SERVERS` or `${CONFLUENT_BOOTSTRAP_SERVERS}`.
    static func variableName(_ value: Result<String, InterpolationFailure>?) -> String? {
        guard case .success(let raw)? = value, raw.hasPrefix("$") else { return nil }
        var body = raw.dropFirst()
        if body.hasPrefix("{") { body = body.dropFirst() }
        let name = String(body.prefix { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
        return name.isEmpty ? nil : name
    }

    private static func badPort(_ index: Int, _ count: Int) -> BrokerNotConfigured {
        BrokerNotConfigured("entry \(index) of \(count) in [broker] bootstrap.servers is not host:port (see config.keys)")
    }

    /// The effective settings of a deployment, or why there are none.
    public static func resolve(config: Result<ConfigFileFact, FileProblem>, envFile: Result<EnvFileFact, FileProblem>,
                               host: [String: String], deployment: Deployment) -> Result<BrokerSettings, BrokerNotConfigured> {
        guard case .success(let configFact) = config else { return .failure(BrokerNotConfigured("the config file could not be read (see config.syntax)")) }
        let file = configFact.file
        guard let section = file.section("broker") else { return .failure(BrokerNotConfigured("the config has no [broker] section")) }
        let env: [String: String]
        if case .success(let e) = envFile { env = e.file.resolved(host: host) } else { env = [:] }
        func get(_ key: String) throws -> String? {
            switch value(key, config: file, env: env) {
            case nil: return nil
            case .success(let v)?: return v
            case .failure(let e)?: throw e
            }
        }
        do {
            guard let serversText = try get("bootstrap.servers") else {
                return .failure(BrokerNotConfigured("[broker] has no bootstrap.servers"))
            }
            let servers = try parseServers(serversText).get()
            let proto = (try get("security.protocol") ?? "PLAINTEXT").uppercased()
            guard BrokerSettings.protocols.contains(proto) else {
                return .failure(BrokerNotConfigured("[broker] security.protocol \(proto) is not one of \(BrokerSettings.protocols.joined(separator: ", ")) (see config.keys)"))
            }
            var caLocation = try get("ssl.ca.location")
            if caLocation?.lowercased() == "probe" || caLocation?.isEmpty == true { caLocation = nil }
            var caHost: String?
            var unmounted = false
            if let ca = caLocation {
                if let mapped = deployment.hostPath(forContainerPath: ca)?.host, FileManager.default.fileExists(atPath: mapped) {
                    caHost = mapped
                } else if ca.hasPrefix("/"), FileManager.default.fileExists(atPath: ca) {
                    caHost = ca
                    unmounted = true
                }
            }
            let identification = (try get("ssl.endpoint.identification.algorithm"))?.lowercased()
            return .success(BrokerSettings(
                servers: servers, securityProtocol: proto,
                saslMechanism: proto.hasPrefix("SASL_") ? (try get("sasl.mechanism") ?? (try get("sasl.mechanisms")) ?? "GSSAPI").uppercased() : nil,
                username: try get("sasl.username"), password: try get("sasl.password"),
                caLocation: caLocation, caHostPath: caHost, caUnmounted: unmounted,
                checkHostname: identification != "none",
                serversLocation: Location(file: file.path, line: section.option("bootstrap.servers")?.line),
                serversVariable: variableName(file.value("broker", "bootstrap.servers")),
                network: deployment.site.network))
        } catch let e as BrokerNotConfigured {
            return .failure(e)
        } catch {
            return .failure(BrokerNotConfigured("\(error)"))
        }
    }
}

/// A topic the command reads or writes, and why.
public struct BrokerTopic: Sendable, Equatable {
    public var name: String
    /// e.g. `the topic DataFileUploadDirectory produces to`.
    public var uses: [String]
    /// Looked up by a consumer group at start-up (`list_topics`): a missing topic stops the program after ten tries.
    public var lookedUp: Bool

    public init(name: String, uses: [String], lookedUp: Bool) {
        self.name = name
        self.uses = uses
        self.lookedUp = lookedUp
    }
}

public enum BrokerTopics {
    /// The topics of an OpenMSIStream command, with `--topic_name` propagated to `--consumer_topic_name` and
    /// `--producer_topic_name` where those are unset or still `test` (reference/openmsistream.md §1.1, §1.2).
    public static func topics(for command: ParsedCommand) -> [BrokerTopic] {
        guard let program = command.program, program.readsConfig, program.requiredSections.contains("broker") else { return [] }
        let name = program.name
        func propagated(_ option: String) -> String {
            if let v = command.options[option], v != "test" { return v }
            return command.options["topic_name"] ?? command.options[option] ?? "test"
        }
        var list: [BrokerTopic] = []
        func add(_ topic: String, _ use: String, lookedUp: Bool) {
            if let i = list.firstIndex(where: { $0.name == topic }) {
                list[i].uses.append(use)
                list[i].lookedUp = list[i].lookedUp || lookedUp
            } else {
                list.append(BrokerTopic(name: topic, uses: [use], lookedUp: lookedUp))
            }
        }
        switch program.role {
        case .producer where program.startsConsumerGroup:
            add(propagated("producer_topic_name"), "the topic \(name) produces to", lookedUp: false)
            add(propagated("consumer_topic_name"), "the topic \(name)'s consumer group looks up at start-up", lookedUp: true)
        case .producer:
            add(command.value("topic_name") ?? "test", "the topic \(name) produces to", lookedUp: false)
        case .consumer, .processor:
            add(command.value("topic_name") ?? "test", "the topic \(name) consumes", lookedUp: true)
        default:
            return []
        }
        if program.option(named: "heartbeat_topic_name") != nil, let t = command.options["heartbeat_topic_name"] {
            add(t, "the heartbeat topic", lookedUp: false)
        }
        if program.option(named: "log_topic_name") != nil, let t = command.options["log_topic_name"] {
            add(t, "the log topic", lookedUp: false)
        }
        return list
    }
}
