import EZMSICore

/// Every bootstrap server resolves, accepts TCP and, for SSL/SASL_SSL, completes a verified TLS handshake.
public struct BrokerReachable: Probe {
    public let id = "broker.reachable"
    public let title = "Broker reachable"
    public let rationale = """
        OpenMSIStream hangs silently at start-up when no bootstrap server answers, and librdkafka only logs TLS \
        certificate errors at debug level: the program then seems to run and never uploads anything.
        """
    public let dependsOn = ["env.file", "config.syntax"]
    public var needsNetwork: Bool { true }
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("server answers, TLS verified", expect: .pass) { ExampleFacts.broker() },
            ProbeExample("nothing listens on the port", expect: .fail, code: "server-refused") {
                ExampleFacts.broker { ServerReach(server: $0, failure: .refused) }
            },
            ProbeExample("host name does not resolve", expect: .fail, code: "server-unresolvable") {
                ExampleFacts.broker { ServerReach(server: $0, failure: .unresolvable("Name or service not known"), addresses: 0) }
            },
            ProbeExample("self-signed certificate", expect: .fail, code: "tls-self-signed") {
                ExampleFacts.broker { ServerReach(server: $0, failure: .tls(TLSFailure(kind: .selfSigned, detail: "self-signed certificate", verifyCode: 18))) }
            },
            ProbeExample("one of two servers down", expect: .warn, code: "server-refused") {
                ExampleFacts.broker(env: "CONFLUENT_BOOTSTRAP_SERVERS=a.example:9092,b.example:9092\nCONFLUENT_USERNAME=lab\nCONFLUENT_PASSWORD=s3cretpw\n") {
                    ServerReach(server: $0, failure: $0.index == 1 ? .refused : nil, tlsVersion: "TLSv1.3")
                }
            },
            ProbeExample("broker on this machine's loopback, default network", expect: .warn, code: "loopback-broker") {
                ExampleFacts.broker(env: "CONFLUENT_BOOTSTRAP_SERVERS=localhost:9092\nCONFLUENT_USERNAME=lab\nCONFLUENT_PASSWORD=s3cretpw\n")
            },
            ProbeExample("no [broker] section", expect: .skip) {
                ExampleFacts.broker(config: "[producer]\nkey.serializer = StringSerializer\n")
            },
        ]
    }

    static func fix(_ failure: ConnectFailure, _ s: BrokerSettings) -> (code: String, text: String, fix: String) {
        let servers = s.serversVariable.map { "\($0) in the env-file" } ?? "[broker] bootstrap.servers"
        switch failure {
        case .unresolvable(let why):
            return ("server-unresolvable", "its host name does not resolve (\(why))",
                    "Correct the host name in \(servers), or fix DNS on this machine")
        case .resolveTimeout(let t):
            return ("server-unresolvable", "its host name did not resolve within \(format(t)) s",
                    "Check DNS on this machine and the host name in \(servers)")
        case .refused:
            return ("server-refused", "the connection was refused: nothing listens on that port",
                    "Check the port in \(servers) and that the broker runs")
        case .timeout(let t):
            return ("server-timeout", "no answer to the connection within \(format(t)) s; OpenMSIStream would hang silently at start-up",
                    "Check the host and port in \(servers) and that no firewall drops the traffic")
        case .network(let why):
            return ("server-unreachable", "cannot connect (\(why))", "Check the network route to the broker and \(servers)")
        case .tls(let t):
            let detail = t.detail.isEmpty ? "" : " (OpenSSL: \(t.detail))"
            let ca = s.caLocation.map { "ssl.ca.location (\($0))" }
            switch t.kind {
            case .selfSigned, .selfSignedInChain, .unknownCA:
                let code = t.kind == .unknownCA ? "tls-unknown-ca" : "tls-self-signed"
                if s.caLocation != nil && s.caHostPath == nil {
                    return (code, "TLS: \(t.kind.rawValue)\(detail); verified against the system CA bundle because ssl.ca.location was not found",
                            "Make ssl.ca.location available (see ca-missing)")
                }
                return (code, "TLS: \(t.kind.rawValue)\(detail)",
                        ca.map { "\($0) does not hold the CA that signed the broker's certificate: point it at that CA" }
                            ?? "Set [broker] ssl.ca.location to the CA certificate of the broker (a file mounted into the container)")
            case .expired, .notYetValid:
                return ("tls-expired", "TLS: \(t.kind.rawValue)\(detail)", "Renew the broker's certificate, or correct this machine's clock")
            case .hostnameMismatch:
                return ("tls-hostname-mismatch", "TLS: \(t.kind.rawValue)\(detail)",
                        "Use in \(servers) a host name the certificate names")
            case .caUnusable:
                return ("tls-ca-unusable", "TLS: \(t.kind.rawValue)\(detail)", "ssl.ca.location must name a PEM certificate file")
            case .notTLS:
                return ("tls-not-tls", "the server does not speak TLS on this port\(detail)",
                        "Set security.protocol to PLAINTEXT or SASL_PLAINTEXT, or use the broker's TLS port")
            case .otherVerification:
                return ("tls-certificate", "TLS: \(t.kind.rawValue)\(detail)", "Check the broker's certificate")
            case .closed, .timeout, .handshake:
                return ("tls-handshake", "TLS: \(t.kind.rawValue)\(detail)", "Check that this port is the broker's TLS listener")
            }
        }
    }

    static func format(_ t: Double) -> String { String(format: "%.1f", t) }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        let fact = facts.brokerReach.get()
        let settings: BrokerSettings
        switch fact.settings {
        case .failure(let why): return .skip(why.reason)
        case .success(let s): settings = s
        }
        var findings: [Finding] = []
        let location = settings.serversLocation
        if settings.usesTLS, let ca = settings.caLocation {
            if settings.caHostPath == nil {
                findings.append(.fail("ca-missing", "ssl.ca.location \(ca) exists neither on a mount of the container nor on this host: librdkafka cannot start",
                                      at: location.map { Location(file: $0.file) },
                                      fix: Remediation("Mount the CA file into the container (--mount HOST:\(ca):ro) or correct ssl.ca.location")))
            } else if settings.caUnmounted {
                findings.append(.warn("ca-unmounted", "ssl.ca.location \(ca) exists on this host but is on no mount: the container will not find it",
                                      at: location.map { Location(file: $0.file) },
                                      fix: Remediation("Mount it: --mount \(ca):\(ca):ro")))
            }
        }
        let reachable = fact.servers.filter { $0.failure == nil }
        for r in fact.servers {
            if let failure = r.failure {
                let f = Self.fix(failure, settings)
                let message = "\(r.server.label): \(f.text)"
                // One reachable bootstrap server is enough for the client; the others are a warning.
                findings.append(reachable.isEmpty ? .fail(f.code, message, at: location, fix: Remediation(f.fix))
                                                  : .warn(f.code, message, at: location, fix: Remediation(f.fix)))
            } else {
                let tls = r.tlsVersion.map { ", \($0) handshake verified against \(settings.caLocation ?? "the system CA bundle")" } ?? ""
                findings.append(.info("server-reachable", "\(r.server.label) accepts connections\(tls) (\(Int(r.milliseconds.rounded())) ms)"))
            }
        }
        if settings.network != "host", let loop = fact.servers.first(where: { $0.server.isLoopback }) {
            findings.append(.warn("loopback-broker", "\(loop.server.label) is on this machine's loopback: inside a container on Docker's default network that address is the container itself",
                                  at: location, fix: Remediation("Run the container with --network host, or name the broker by an address the container can reach")))
        }
        let tlsNote = settings.usesTLS ? " (TLS)" : ""
        let message = reachable.count == fact.servers.count
            ? "\(fact.servers.count == 1 ? "the bootstrap server is" : "all \(fact.servers.count) bootstrap servers are") reachable\(tlsNote)"
            : "\(reachable.count) of \(fact.servers.count) bootstrap servers reachable\(tlsNote)"
        return ProbeOutcome(message, findings: findings,
                            details: ["security.protocol": settings.securityProtocol, "bootstrap servers": String(settings.servers.count)])
    }
}
