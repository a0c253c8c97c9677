import COpenSSL
import Foundation

/// One bootstrap server: resolved, connected, TLS handshake done (or where it stopped).
public struct ServerReach: Sendable {
    public var server: BrokerServer
    public var failure: ConnectFailure?
    /// How many addresses the host resolved to (0 when it did not resolve).
    public var addresses: Int
    public var tlsVersion: String?
    public var milliseconds: Double

    public init(server: BrokerServer, failure: ConnectFailure?, addresses: Int = 1, tlsVersion: String? = nil,
                milliseconds: Double = 1) {
        self.server = server
        self.failure = failure
        self.addresses = addresses
        self.tlsVersion = tlsVersion
        self.milliseconds = milliseconds
    }
}

/// `broker.reachable`'s fact: every bootstrap server probed, or why there is nothing to probe.
public struct BrokerReachFact: Sendable {
    public var settings: Result<BrokerSettings, BrokerNotConfigured>
    public var servers: [ServerReach]

    public init(settings: Result<BrokerSettings, BrokerNotConfigured>, servers: [ServerReach]) {
        self.settings = settings
        self.servers = servers
    }
}

/// How SASL went.
public enum SaslOutcome: Sendable, Equatable {
    case authenticated(mechanism: String)
    case mechanismNotOffered(mechanism: String, offered: [String])
    /// The broker rejected the credentials (its message, if it sent one).
    case rejected(mechanism: String, message: String?)
    case missingCredentials(mechanism: String)
    case notChecked(mechanism: String, reason: String)
}

/// Where the Kafka dialogue stopped.
public enum KafkaStop: Sendable, Equatable {
    /// The answer to `step` was not a Kafka response (what came back, described without content).
    case notKafka(step: String, detail: String, tlsAlert: Bool)
    case closed(step: String)
    case timeout(step: String)
    case failed(step: String, detail: String)
    /// An error code in a response.
    case error(step: String, code: Int16)
}

/// `broker.kafka`'s fact: the dialogue with the first reachable bootstrap server.
public struct BrokerKafkaFact: Sendable {
    public var settings: Result<BrokerSettings, BrokerNotConfigured>
    /// Nil when no bootstrap server was reachable.
    public var server: BrokerServer?
    public var topics: [BrokerTopic]
    public var apiVersions: KafkaWire.ApiVersions?
    public var sasl: SaslOutcome?
    public var metadataVersion: Int16?
    public var metadata: KafkaWire.Metadata?
    public var stop: KafkaStop?

    public init(settings: Result<BrokerSettings, BrokerNotConfigured>, server: BrokerServer?, topics: [BrokerTopic],
                apiVersions: KafkaWire.ApiVersions? = nil, sasl: SaslOutcome? = nil, metadataVersion: Int16? = nil,
                metadata: KafkaWire.Metadata? = nil, stop: KafkaStop? = nil) {
        self.settings = settings
        self.server = server
        self.topics = topics
        self.apiVersions = apiVersions
        self.sasl = sasl
        self.metadataVersion = metadataVersion
        self.metadata = metadata
        self.stop = stop
    }
}

/// The broker I/O. Budgets: a share of `timeout` (the probe's own `--timeout`), so the probe answers before the
/// runner's deadline.
public enum BrokerGatherer {
    static func budget(_ timeout: Double) -> Double { max(0.2, timeout * 0.8) }

    public static func reach(_ settings: Result<BrokerSettings, BrokerNotConfigured>, timeout: Double) -> BrokerReachFact {
        guard case .success(let s) = settings else { return BrokerReachFact(settings: settings, servers: []) }
        let overall = BrokerDeadline(seconds: budget(timeout))
        var results: [ServerReach] = []
        withSIGPIPEBlocked {
            for (n, server) in s.servers.enumerated() {
                // Each server gets an equal share of what is left.
                let share = overall.remaining / Double(s.servers.count - n)
                let start = DispatchTime.now()
                let opened = BrokerConnection.open(server, settings: s, deadline: overall.capped(share))
                let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
                switch opened {
                case .success(let c):
                    results.append(ServerReach(server: server, failure: nil, addresses: c.addressCount, tlsVersion: c.tlsVersion,
                                               milliseconds: ms))
                    c.close()
                case .failure(let f):
                    let resolved: Int
                    switch f {
                    case .unresolvable, .resolveTimeout: resolved = 0
                    default: resolved = 1
                    }
                    results.append(ServerReach(server: server, failure: f, addresses: resolved, milliseconds: ms))
                }
            }
        }
        return BrokerReachFact(settings: settings, servers: results)
    }

    /// ApiVersions, SASL when configured, then Metadata for `topics`, with the first server `reach` found usable.
    public static func kafka(_ reach: BrokerReachFact, topics: [BrokerTopic], timeout: Double) -> BrokerKafkaFact {
        var fact = BrokerKafkaFact(settings: reach.settings, server: nil, topics: topics)
        guard case .success(let settings) = reach.settings,
              let server = reach.servers.first(where: { $0.failure == nil })?.server else { return fact }
        fact.server = server
        let deadline = BrokerDeadline(seconds: budget(timeout))
        withSIGPIPEBlocked {
            let connection: BrokerConnection
            switch BrokerConnection.open(server, settings: settings, deadline: deadline) {
            case .success(let c): connection = c
            case .failure(let f):
                fact.stop = .failed(step: "connect", detail: "\(f)")
                return
            }
            defer { connection.close() }
            var dialogue = KafkaDialogue(connection: connection)
            do {
                let body = try dialogue.call(.apiVersions, version: 0, body: [], step: "ApiVersions")
                let versions: KafkaWire.ApiVersions
                do { versions = try KafkaWire.decodeApiVersions(body) } catch {
                    throw KafkaStop.notKafka(step: "ApiVersions", detail: "an answer that does not decode: \(error)", tlsAlert: false)
                }
                guard versions.errorCode == 0 else { throw KafkaStop.error(step: "ApiVersions", code: versions.errorCode) }
                fact.apiVersions = versions
                if settings.usesSASL {
                    fact.sasl = try sasl(&dialogue, settings: settings, versions: versions)
                    guard case .authenticated = fact.sasl else { return }
                }
                guard let version = versions.pick(.metadata, from: [4, 1]) else {
                    throw KafkaStop.failed(step: "Metadata", detail: "the broker offers no Metadata version ezmsi speaks (1 or 4)")
                }
                fact.metadataVersion = version
                guard !topics.isEmpty else { return }
                let reply = try dialogue.call(.metadata, version: version,
                                              body: KafkaWire.metadataBody(topics: topics.map(\.name), version: version), step: "Metadata")
                do { fact.metadata = try KafkaWire.decodeMetadata(reply, version: version) } catch {
                    throw KafkaStop.failed(step: "Metadata", detail: "\(error)")
                }
            } catch let stop as KafkaStop {
                fact.stop = stop
            } catch {
                fact.stop = .failed(step: "Kafka", detail: "\(error)")
            }
        }
        return fact
    }

    static func sasl(_ d: inout KafkaDialogue, settings: BrokerSettings, versions: KafkaWire.ApiVersions) throws -> SaslOutcome {
        let mechanism = settings.saslMechanism ?? "GSSAPI"
        guard let handshakeVersion = versions.pick(.saslHandshake, from: [1, 0]) else {
            throw KafkaStop.failed(step: "SaslHandshake", detail: "the broker does not offer SASL (no SaslHandshake API)")
        }
        let reply = try d.call(.saslHandshake, version: handshakeVersion, body: KafkaWire.saslHandshakeBody(mechanism), step: "SaslHandshake")
        let (error, offered) = try decoded("SaslHandshake") { try KafkaWire.decodeSaslHandshake(reply) }
        if (error == 0 || error == KafkaError.unsupportedSaslMechanism) && !offered.isEmpty && !offered.contains(mechanism) {
            return .mechanismNotOffered(mechanism: mechanism, offered: offered)
        }
        guard error == 0 else { throw KafkaStop.error(step: "SaslHandshake", code: error) }
        guard ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(mechanism) else {
            return .notChecked(mechanism: mechanism, reason: "ezmsi authenticates with PLAIN and SCRAM only")
        }
        guard let user = settings.username, let password = settings.password, !user.isEmpty else {
            return .missingCredentials(mechanism: mechanism)
        }
        // v1 handshakes wrap the tokens in SaslAuthenticate; v0 sends them raw, size-prefixed.
        let wrapped = handshakeVersion >= 1 && versions.pick(.saslAuthenticate, from: [0]) != nil
        func exchange(_ token: [UInt8]) throws -> Result<[UInt8], SaslRejected> {
            if wrapped {
                let body = try d.call(.saslAuthenticate, version: 0, body: KafkaWire.saslAuthenticateBody(token), step: "SaslAuthenticate")
                let (code, message, answer) = try decoded("SaslAuthenticate") { try KafkaWire.decodeSaslAuthenticate(body) }
                return code == 0 ? .success(answer) : .failure(SaslRejected(message: message ?? KafkaError.name(code)))
            }
            do { return .success(try d.raw(token, step: "SASL")) } catch KafkaStop.closed {
                return .failure(SaslRejected(message: nil))
            }
        }
        if mechanism == "PLAIN" {
            switch try exchange(KafkaWire.plainToken(username: user, password: password)) {
            case .success: return .authenticated(mechanism: mechanism)
            case .failure(let r): return .rejected(mechanism: mechanism, message: r.message)
            }
        }
        var scram = SCRAMClient(sha512: mechanism == "SCRAM-SHA-512", username: user, password: password)
        let serverFirst: [UInt8]
        switch try exchange(scram.clientFirst()) {
        case .success(let t): serverFirst = t
        case .failure(let r): return .rejected(mechanism: mechanism, message: r.message)
        }
        guard let final = scram.clientFinal(serverFirst: serverFirst) else {
            let text = String(decoding: serverFirst, as: UTF8.self)
            if text.hasPrefix("e=") { return .rejected(mechanism: mechanism, message: String(text.dropFirst(2))) }
            throw KafkaStop.failed(step: "SASL", detail: "the broker's SCRAM challenge is malformed")
        }
        switch try exchange(final) {
        case .success(let t):
            let text = String(decoding: t, as: UTF8.self)
            if text.hasPrefix("e=") { return .rejected(mechanism: mechanism, message: String(text.dropFirst(2))) }
            return .authenticated(mechanism: mechanism)
        case .failure(let r): return .rejected(mechanism: mechanism, message: r.message)
        }
    }

    struct SaslRejected: Error { var message: String? }

    static func decoded<T>(_ step: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw KafkaStop.failed(step: step, detail: "\(error)") }
    }
}

extension KafkaStop: Error {}

/// Requests and responses on one connection, with correlation ids.
struct KafkaDialogue {
    let connection: BrokerConnection
    var correlation: Int32 = 0

    init(connection: BrokerConnection) { self.connection = connection }

    /// Sends a request and returns the response body (after the correlation id).
    mutating func call(_ api: KafkaAPI, version: Int16, body: [UInt8], step: String) throws -> [UInt8] {
        correlation += 1
        let response = try raw(KafkaWire.request(api, version: version, correlation: correlation, body: body), step: step, framed: true)
        guard response.count >= 4 else { throw KafkaStop.notKafka(step: step, detail: "a \(response.count)-byte answer", tlsAlert: false) }
        let id = Int32(bitPattern: UInt32(response[0]) << 24 | UInt32(response[1]) << 16 | UInt32(response[2]) << 8 | UInt32(response[3]))
        guard id == correlation else {
            throw KafkaStop.notKafka(step: step, detail: "an answer for request \(id), not \(correlation)", tlsAlert: false)
        }
        return Array(response.dropFirst(4))
    }

    /// Sends bytes (already framed when `framed`, else size-prefixed here) and reads one size-prefixed answer.
    func raw(_ bytes: [UInt8], step: String, framed: Bool = false) throws -> [UInt8] {
        do {
            var out = bytes
            if !framed {
                var w = KafkaWriter()
                w.int32(Int32(bytes.count))
                out = w.bytes + bytes
            }
            try connection.send(out)
            let head = try connection.receive(4)
            let size = Int(Int32(bitPattern: UInt32(head[0]) << 24 | UInt32(head[1]) << 16 | UInt32(head[2]) << 8 | UInt32(head[3])))
            guard size >= 0, size <= KafkaWire.maxResponse else {
                let tls = head[0] == 0x15 && head[1] == 0x03   // a TLS alert record
                let http = head == Array("HTTP".utf8)
                let what = tls ? "a TLS alert" : http ? "an HTTP answer" : "bytes that are not a Kafka frame"
                throw KafkaStop.notKafka(step: step, detail: what, tlsAlert: tls)
            }
            return try connection.receive(size)
        } catch let stop as KafkaStop {
            throw stop
        } catch is ConnectionClosed {
            throw KafkaStop.closed(step: step)
        } catch is ConnectionTimedOut {
            throw KafkaStop.timeout(step: step)
        } catch {
            throw KafkaStop.failed(step: step, detail: "\(error)")
        }
    }
}

/// SCRAM-SHA-256/512 client (RFC 5802, as Kafka uses it: no channel binding, no authorization id).
struct SCRAMClient {
    let sha512: Bool
    let username: String
    let password: String
    var nonce = ""
    var clientFirstBare = ""
    var saltedPassword: [UInt8] = []
    var authMessage = ""

    init(sha512: Bool, username: String, password: String) {
        self.sha512 = sha512
        self.username = username
        self.password = password
    }

    var md: OpaquePointer? { sha512 ? ezmsi_sha512() : ezmsi_sha256() }
    var digestLength: Int { sha512 ? 64 : 32 }

    mutating func clientFirst() -> [UInt8] {
        var random = [UInt8](repeating: 0, count: 24)
        _ = RAND_bytes(&random, 24)
        nonce = Data(random).base64EncodedString()
        let name = username.replacingOccurrences(of: "=", with: "=3D").replacingOccurrences(of: ",", with: "=2C")
        clientFirstBare = "n=\(name),r=\(nonce)"
        return Array(("n,," + clientFirstBare).utf8)
    }

    func hmac(_ key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 64)
        var len: UInt32 = 0
        _ = HMAC(md, key, Int32(key.count), data, data.count, &out, &len)
        return Array(out.prefix(Int(len)))
    }

    func hash(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 64)
        var len: UInt32 = 0
        _ = EVP_Digest(data, data.count, &out, &len, md, nil)
        return Array(out.prefix(Int(len)))
    }

    /// The client-final message, or nil when the server-first message is not a valid challenge for our nonce.
    mutating func clientFinal(serverFirst: [UInt8]) -> [UInt8]? {
        let text = String(decoding: serverFirst, as: UTF8.self)
        var fields: [Character: String] = [:]
        for part in text.split(separator: ",") where part.count >= 2 && part.dropFirst().first == "=" {
            fields[part.first!] = String(part.dropFirst(2))
        }
        guard let serverNonce = fields["r"], serverNonce.hasPrefix(nonce), let saltText = fields["s"],
              let salt = Data(base64Encoded: saltText), let iterations = fields["i"].flatMap(Int32.init), iterations > 0 else { return nil }
        var salted = [UInt8](repeating: 0, count: digestLength)
        let pw = Array(password.utf8)
        let saltBytes = Array(salt)
        _ = pw.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { cp in
                PKCS5_PBKDF2_HMAC(cp.baseAddress, Int32(pw.count), saltBytes, Int32(saltBytes.count), iterations, md,
                                  Int32(digestLength), &salted)
            }
        }
        saltedPassword = salted
        let withoutProof = "c=biws,r=\(serverNonce)"
        authMessage = clientFirstBare + "," + text + "," + withoutProof
        let clientKey = hmac(salted, Array("Client Key".utf8))
        let signature = hmac(hash(clientKey), Array(authMessage.utf8))
        let proof = zip(clientKey, signature).map { $0 ^ $1 }
        return Array((withoutProof + ",p=" + Data(proof).base64EncodedString()).utf8)
    }
}
