import Foundation
import Testing
@testable import EZMSIChecks
@testable import EZMSICore

/// broker.reachable and broker.kafka against real loopback servers: a listener that is not Kafka, `openssl s_server`
/// with a self-signed certificate, a closed port, an unresolvable name, and the tansu Kafka broker.
/// With EZMSI_REQUIRE_DOCKER=1 (scripts/test) a missing openssl or tansu fails these tests instead of skipping them.
@Suite(.serialized)
struct BrokerProbeTests {
    static let tansu = ProcessInfo.processInfo.environment["EZMSI_TANSU"] ?? ""
    static let planted = (user: "planted-user-8841", password: "Planted-Passw0rd-5521")

    /// The tool's path, nil (skip) when absent, or a failure when the suite requires it.
    static func tool(_ path: String?, _ what: String) throws -> String? {
        if let path, FileManager.default.isExecutableFile(atPath: path) { return path }
        if TestDocker.required { throw TestFailure("\(what) is missing: run the suite through scripts/test") }
        print("skipping: \(what) is missing")
        return nil
    }

    static var openssl: String? { Subprocess.which("openssl", path: ProcessInfo.processInfo.environment["PATH"]) }

    static func env(_ servers: String) -> String {
        "CONFLUENT_BOOTSTRAP_SERVERS=\(servers)\nCONFLUENT_USERNAME=\(planted.user)\nCONFLUENT_PASSWORD=\(planted.password)\n"
    }

    static func config(protocol proto: String, extra: String = "") -> String {
        """
        [broker]
        bootstrap.servers = $CONFLUENT_BOOTSTRAP_SERVERS
        security.protocol = \(proto)
        \(extra)

        [producer]
        key.serializer   = StringSerializer
        value.serializer = DataFileChunkSerializer

        """
    }

    /// Runs both probes in-process on a real deployment folder (no Docker involved).
    static func probe(_ dir: TempDir, servers: String, proto: String = "PLAINTEXT", extra: String = "",
                      mounts: [Mount] = [], topic: String = "xrd", timeout: Double = 5) throws -> (reach: ProbeOutcome, kafka: ProbeOutcome?) {
        dir.write("openmsi.env", env(servers), mode: 0o600)
        dir.write("config.config", config(protocol: proto, extra: extra))
        let deployment = Deployment(
            directory: dir.path, envFile: dir.path + "/openmsi.env", configFile: dir.path + "/config.config",
            dataFolder: nil, image: "openmsi/openmsistream:latest", user: nil, extraMounts: mounts,
            command: ["DataFileUploadDirectory", "data", "--config", "config.config", "--topic_name", topic],
            containerName: "ezmsi-test", site: SiteOptions(network: "host"), sources: [:], trackerPath: nil)
        let facts = Facts(deployment: deployment, environment: [:], timeout: timeout)
        let reach = try BrokerReachable().check(facts)
        let kafka = reach.status.isFailure(strict: false) ? nil : try BrokerKafka().check(facts)
        return (reach, kafka)
    }

    static func codes(_ o: ProbeOutcome?) -> [String] { o?.findings.map(\.code) ?? [] }

    // MARK: CLI

    static func doctor(_ dir: TempDir, servers: String, proto: String = "PLAINTEXT", topic: String = "xrd",
                       extra: [String] = []) throws -> (out: ProcessOutput, report: [String: Any]) {
        var args = healthyDeployment(dir, env: env(servers))
        dir.write("config.config", config(protocol: proto))
        if let i = args.firstIndex(of: "--topic_name") { args[i + 1] = topic }
        // These tests are about the network: a default that turns the network probes off (if one exists) must not apply.
        let out = try ezmsi(["doctor", "--only", "broker.", "--format", "json", "--network", "host", "--timeout", "8"] + extra + args,
                            removing: ["EZMSI_OFFLINE"])
        let report = try decodeJSON(out.stdout)
        for secret in [planted.user, planted.password] {
            #expect(!out.stdout.contains(secret) && !out.stderr.contains(secret), "a planted secret was printed")
        }
        return (out, report)
    }

    // MARK: tests

    @Test func closedPortIsRefusedThroughTheCLI() throws {
        let port = TansuBroker.freePort()
        let dir = TempDir("broker-closed")
        let (out, report) = try Self.doctor(dir, servers: "127.0.0.1:\(port)")
        let reach = try #require(check(report, "broker.reachable"))
        #expect(reach["status"] as? String == "fail", "\(reach)")
        #expect(String(describing: reach["findings"] ?? "").contains("server-refused"), "\(reach)")
        #expect(check(report, "broker.kafka")?["status"] as? String == "blocked")
        #expect(out.status == 1)
        // The server is named by position and port, never by its address (it comes from the env-file).
        #expect(!out.stdout.contains("127.0.0.1"), "\(out.stdout)")
        #expect(out.stdout.contains("server 1 of 1 (port \(port))"), "\(out.stdout)")
    }

    @Test func offlineSkipsBothProbes() throws {
        let dir = TempDir("broker-offline")
        let (_, report) = try Self.doctor(dir, servers: "nonexistent.invalid:9092", extra: ["--offline"])
        for id in ["broker.reachable", "broker.kafka"] {
            #expect(check(report, id)?["status"] as? String == "skip", "\(id): \(String(describing: check(report, id)))")
        }
    }

    @Test func unresolvableNameIsNamed() throws {
        let dir = TempDir("broker-nxdomain")
        let result = try Self.probe(dir, servers: "nonexistent.invalid:9092")
        #expect(result.reach.status == .fail)
        #expect(Self.codes(result.reach) == ["server-unresolvable"], "\(result.reach.findings)")
        #expect(!result.reach.findings.map(\.message).joined().contains("nonexistent"))
    }

    @Test func noBrokerSectionSkips() throws {
        let dir = TempDir("broker-none")
        dir.write("openmsi.env", Self.env("b:1"), mode: 0o600)
        dir.write("config.config", "[producer]\nkey.serializer = StringSerializer\n")
        let deployment = Deployment(
            directory: dir.path, envFile: dir.path + "/openmsi.env", configFile: dir.path + "/config.config",
            dataFolder: nil, image: "x", user: nil, extraMounts: [], command: ["UploadDataFile", "f"],
            containerName: "x", sources: [:], trackerPath: nil)
        let facts = Facts(deployment: deployment, environment: [:], timeout: 2)
        #expect(try BrokerReachable().check(facts).status == .skip)
        #expect(try BrokerKafka().check(facts).status == .skip)
    }

    @Test("a listener that is not Kafka", arguments: ["garbage", "close"])
    func notKafka(_ behaviour: String) throws {
        let server = try GarbageServer(reply: behaviour == "garbage" ? Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8) : [])
        defer { server.stop() }
        let dir = TempDir("broker-garbage")
        let result = try Self.probe(dir, servers: "127.0.0.1:\(server.port)")
        #expect(result.reach.status == .pass, "\(result.reach.findings)")
        let kafka = try #require(result.kafka)
        #expect(kafka.status == .fail)
        #expect(Self.codes(kafka).contains("not-kafka"), "\(kafka.findings)")
        // TLS against it: the handshake fails, named.
        let tls = try Self.probe(TempDir("broker-garbage-tls"), servers: "127.0.0.1:\(server.port)", proto: "SSL")
        #expect(tls.reach.status == .fail)
        #expect(Self.codes(tls.reach).allSatisfy { $0.hasPrefix("tls-") }, "\(tls.reach.findings)")
    }

    @Test func selfSignedCertificateIsNamedAndPassesWithItsCA() throws {
        guard let openssl = try Self.tool(Self.openssl, "openssl") else { return }
        let certs = TempDir("broker-certs")
        let gen = try Subprocess.run(openssl, [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", certs.path + "/key.pem", "-out", certs.path + "/cert.pem",
            "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"], timeout: 60)
        try #require(gen.status == 0, "\(gen.stderr)")
        let server = try TLSServer.start(openssl: openssl, cert: certs.path + "/cert.pem", key: certs.path + "/key.pem")
        defer { server.stop() }

        // Verified against the system CA bundle: self-signed, named.
        let plain = try Self.probe(TempDir("tls-a"), servers: "localhost:\(server.port)", proto: "SSL")
        #expect(plain.reach.status == .fail)
        #expect(Self.codes(plain.reach) == ["tls-self-signed"], "\(plain.reach.findings)")
        #expect(plain.reach.findings.first?.message.contains("self-signed") == true)

        // ssl.ca.location names the certificate (inside the container, through a mount): the handshake passes.
        let mount = Mount(host: certs.path, container: "/home/openmsi/certs", readOnly: true)
        let trusted = try Self.probe(TempDir("tls-b"), servers: "localhost:\(server.port)", proto: "SSL",
                                     extra: "ssl.ca.location = /home/openmsi/certs/cert.pem", mounts: [mount])
        #expect(trusted.reach.status == .pass, "\(trusted.reach.findings)")
        #expect(trusted.reach.findings.contains { $0.code == "server-reachable" && $0.message.contains("TLS") })

        // The certificate names localhost, not 127.0.0.1.
        let mismatch = try Self.probe(TempDir("tls-c"), servers: "127.0.0.1:\(server.port)", proto: "SSL",
                                      extra: "ssl.ca.location = /home/openmsi/certs/cert.pem", mounts: [mount])
        #expect(Self.codes(mismatch.reach) == ["tls-hostname-mismatch"], "\(mismatch.reach.findings)")

        // Plain Kafka against the TLS port: reachable, but the answer is not Kafka.
        let cleartext = try Self.probe(TempDir("tls-d"), servers: "localhost:\(server.port)")
        #expect(cleartext.reach.status == .pass)
        #expect(Self.codes(cleartext.kafka).contains("not-kafka"), "\(String(describing: cleartext.kafka?.findings))")
    }

    /// A certificate signed by a CA the client trusts, but outside its validity: `openssl ca` can set both dates
    /// (`req -x509` cannot back-date).
    @Test(arguments: [("expired", "20200101000000Z", "20200102000000Z", "certificate expired"),
                      ("not-yet-valid", "20990101000000Z", "20990102000000Z", "not yet valid")])
    func certificateOutsideItsValidityIsNamed(_ name: String, _ start: String, _ end: String, _ words: String) throws {
        guard let openssl = try Self.tool(Self.openssl, "openssl") else { return }
        let certs = TempDir("broker-\(name)")
        let p = certs.path
        func run(_ args: [String]) throws {
            let r = try Subprocess.run("/bin/sh", ["-c", "cd \(ShellWords.quote(p)) && exec \"$@\"", "sh", openssl] + args, timeout: 60)
            try #require(r.status == 0, "openssl \(args.first ?? ""): \(r.stderr)")
        }
        try run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
                 "-subj", "/CN=ezmsi test CA"])
        try run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=localhost",
                 "-addext", "subjectAltName=DNS:localhost"])
        certs.write("index.txt", "")
        certs.write("serial", "01\n")
        certs.write("ca.cnf", """
            [ca]
            default_ca = test
            [test]
            database = index.txt
            serial = serial
            new_certs_dir = .
            default_md = sha256
            policy = any
            copy_extensions = copy
            [any]
            commonName = supplied

            """)
        try run(["ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "leaf.csr",
                 "-out", "cert.pem", "-startdate", start, "-enddate", end, "-notext"])
        let server = try TLSServer.start(openssl: openssl, cert: p + "/cert.pem", key: p + "/key.pem")
        defer { server.stop() }
        let mount = Mount(host: p, container: "/home/openmsi/certs", readOnly: true)
        let outcome = try Self.probe(TempDir("tls-\(name)"), servers: "localhost:\(server.port)", proto: "SSL",
                                     extra: "ssl.ca.location = /home/openmsi/certs/ca.pem", mounts: [mount])
        #expect(outcome.reach.status == .fail)
        #expect(Self.codes(outcome.reach) == ["tls-expired"], "\(outcome.reach.findings)")
        #expect(outcome.reach.findings.first?.message.contains(words) == true, "\(outcome.reach.findings)")
    }

    @Test func tansuTopicPresentPassesAndAbsentFailsThroughTheCLI() throws {
        guard let tansu = try Self.tool(Self.tansu.isEmpty ? nil : Self.tansu, "EZMSI_TANSU (tansu)") else { return }
        let broker = try TansuBroker.start(binary: tansu)
        defer { broker.stop() }
        let create = try Subprocess.run(tansu, ["topic", "create", "--broker", "tcp://\(broker.address)", "--partitions", "2", "xrd"], timeout: 30)
        try #require(create.status == 0, "\(create.stderr)")

        let (out, report) = try Self.doctor(TempDir("tansu-present"), servers: broker.address)
        let reach = try #require(check(report, "broker.reachable"))
        let kafka = try #require(check(report, "broker.kafka"))
        #expect(reach["status"] as? String == "pass", "\(reach)")
        #expect(kafka["status"] as? String == "pass", "\(kafka)")
        #expect((kafka["message"] as? String)?.contains("\"xrd\" present") == true, "\(kafka)")
        #expect(out.status == 0, "\(out.stdout)")

        let (missingOut, missingReport) = try Self.doctor(TempDir("tansu-absent"), servers: broker.address, topic: "no_such_topic")
        let missing = try #require(check(missingReport, "broker.kafka"))
        #expect(missing["status"] as? String == "fail", "\(missing)")
        let text = String(describing: missing)
        #expect(text.contains("topic-missing") && text.contains("no_such_topic") && text.contains("ten tries"), "\(text)")
        #expect(missingOut.status == 1)

        // Looking the topic up did not create it.
        let list = try Subprocess.run(tansu, ["topic", "list", "--broker", "tcp://\(broker.address)"], timeout: 30)
        #expect(!list.stdout.contains("no_such_topic"), "\(list.stdout)")
    }

    @Test func tansuSaslProblemsAreNamedWithoutPrintingCredentials() throws {
        guard let tansu = try Self.tool(Self.tansu.isEmpty ? nil : Self.tansu, "EZMSI_TANSU (tansu)") else { return }
        let sasl = "sasl.username = $CONFLUENT_USERNAME\nsasl.password = $CONFLUENT_PASSWORD\nsasl.mechanism = "
        func assertNoSecrets(_ o: ProbeOutcome) {
            let text = o.findings.map { $0.message + ($0.remediation?.text ?? "") }.joined(separator: "\n") + o.message
            #expect(!text.contains(Self.planted.user) && !text.contains(Self.planted.password), "\(text)")
        }
        // A listener without SASL, configured with SASL PLAIN.
        let open = try TansuBroker.start(binary: tansu)
        defer { open.stop() }
        let plain = try #require(try Self.probe(TempDir("tansu-sasl-a"), servers: open.address, proto: "SASL_PLAINTEXT", extra: sasl + "PLAIN").kafka)
        #expect(plain.status == .fail)
        #expect(Self.codes(plain).contains("sasl-mechanism"), "\(plain.findings)")
        assertNoSecrets(plain)

        // A listener that requires SCRAM: the planted user is unknown to it, and the SCRAM exchange says so.
        let secured = try Self.startTansu(tansu, extra: ["--authentication"])
        defer { secured.stop() }
        let scram = try #require(try Self.probe(TempDir("tansu-sasl-b"), servers: secured.address, proto: "SASL_PLAINTEXT",
                                                extra: sasl + "SCRAM-SHA-512").kafka)
        #expect(scram.status == .fail)
        #expect(Self.codes(scram).contains("sasl-rejected"), "\(scram.findings)")
        #expect(scram.findings.contains { $0.message.contains("SCRAM-SHA-512") })
        assertNoSecrets(scram)

        // The same listener without SASL configured: it closes the connection on Metadata, which names SASL.
        let none = try #require(try Self.probe(TempDir("tansu-sasl-c"), servers: secured.address).kafka)
        #expect(none.status == .fail)
        #expect(none.findings.contains { $0.code == "kafka-closed" && $0.message.contains("SASL") }, "\(none.findings)")
    }

    /// tansu with extra arguments (TansuBroker.start takes none); stopped with SIGKILL like TansuBroker.
    static func startTansu(_ binary: String, extra: [String]) throws -> TansuWithOptions {
        for _ in 0..<5 {
            let port = TansuBroker.freePort()
            let url = "tcp://127.0.0.1:\(port)"
            let p = try ChildProcess.spawn(binary, ["broker", "--listener-url", url, "--advertised-listener-url", url,
                                                    "--storage-engine", "memory://tansu/"] + extra, stdout: .null, stderr: .null)
            for _ in 0..<100 {
                if !p.isRunning { break }
                if TansuBroker.canConnect(port) { return TansuWithOptions(process: p, address: "127.0.0.1:\(port)") }
                usleep(100_000)
            }
            p.send(SIGKILL)
            p.waitForExit()
        }
        throw TestFailure("tansu did not start")
    }

    // MARK: pure parts

    @Test func settingsExpandVariablesLikePython() {
        #expect(BrokerSettingsResolver.expandVars("$A", ["A": "x"]) == "x")
        #expect(BrokerSettingsResolver.expandVars("${A}:9092", ["A": "x"]) == "x:9092")
        #expect(BrokerSettingsResolver.expandVars("$B", ["A": "x"]) == "$B")
        #expect(BrokerSettingsResolver.expandVars("$A$B", ["A": "x"]) == "x$B")
        let servers = try? BrokerSettingsResolver.parseServers("SASL_SSL://a.example:9093, [::1]:9092,b").get()
        #expect(servers?.map(\.host) == ["a.example", "::1", "b"])
        #expect(servers?.map(\.port) == [9093, 9092, 9092])
        #expect(servers?.last?.label == "server 3 of 3 (port 9092)")
        #expect((try? BrokerSettingsResolver.parseServers("a:notaport").get()) == nil)
    }

    @Test func topicsFollowTopicNamePropagation() {
        func names(_ command: [String]) -> [String] { BrokerTopics.topics(for: ProgramArgumentParser.parse(command)).map(\.name) }
        #expect(names(["DataFileUploadDirectory", "d", "--topic_name", "xrd"]) == ["xrd"])
        #expect(names(["DataFileUploadDirectory", "d", "--producer_topic_name", "up"]) == ["up", "test"])
        #expect(names(["DataFileDownloadDirectory", "d"]) == ["test"])
        #expect(names(["UploadDataFile", "f", "--topic_name", "one"]) == ["one"])
        #expect(names(["ManageService", "s", "start"]) == [])
        let upload = BrokerTopics.topics(for: ProgramArgumentParser.parse(["DataFileUploadDirectory", "d", "--topic_name", "xrd"]))
        #expect(upload.first?.lookedUp == true)
    }

    @Test func wireRoundTrips() throws {
        let request = KafkaWire.request(.metadata, version: 4, correlation: 7, body: KafkaWire.metadataBody(topics: ["xrd"], version: 4))
        var r = KafkaReader(request)
        #expect(try r.int32() == Int32(request.count - 4))
        #expect(try r.int16() == 3)
        #expect(try r.int16() == 4)
        #expect(try r.int32() == 7)
        #expect(try r.string() == "ezmsi")
        #expect(try r.array { try $0.string() } == ["xrd"])
        #expect(try r.bool() == false)
        #expect(r.remaining == 0)
        // A response: no brokers, one unknown topic.
        var w = KafkaWriter()
        w.int32(0); w.array([Int]()) { _, _ in }; w.string("c"); w.int32(1)
        w.array([0]) { w, _ in w.int16(3); w.string("xrd"); w.bool(false); w.array([Int]()) { _, _ in } }
        let metadata = try KafkaWire.decodeMetadata(w.bytes, version: 4)
        #expect(metadata.topics == [KafkaWire.TopicMetadata(errorCode: 3, name: "xrd", partitions: [])])
        #expect(throws: KafkaDecodeError.self) { try KafkaWire.decodeApiVersions([0, 0, 0x7f, 0xff, 0xff, 0xff]) }
        #expect(KafkaWire.plainToken(username: "u", password: "p") == [0, 117, 0, 112])
    }

    @Test func scramClientProofMatchesRFC7677() {
        // RFC 7677 §3 test vector (SCRAM-SHA-256, user "user", password "pencil").
        var client = SCRAMClient(sha512: false, username: "user", password: "pencil")
        _ = client.clientFirst()
        client.nonce = "rOprNGfwEbeRWgbNEkqO"
        client.clientFirstBare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
        let final = client.clientFinal(serverFirst: Array("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".utf8))
        #expect(final.map { String(decoding: $0, as: UTF8.self) }
                == "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    }
}

/// A tansu broker started with options; SIGKILL stops it (it ignores SIGTERM).
final class TansuWithOptions {
    let process: ChildProcess
    let address: String

    init(process: ChildProcess, address: String) {
        self.process = process
        self.address = address
    }

    func stop() {
        process.send(SIGKILL)
        process.waitForExit()
    }
}

/// A loopback TCP server that is not Kafka: it accepts, sends `reply` (maybe nothing) and closes.
final class GarbageServer: @unchecked Sendable {
    let fd: Int32
    let port: UInt16
    private let stopped = NSLock()
    private var done = false

    init(reply: [UInt8]) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else { throw TestFailure("cannot listen: \(String(cString: strerror(errno)))") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        port = UInt16(bigEndian: addr.sin_port)
        let listener = fd
        Thread.detachNewThread { [self] in
            while true {
                let c = accept(listener, nil, nil)
                if c < 0 { return }
                // Read what the client sends first, so that closing does not reset the connection before the reply.
                var buffer = [UInt8](repeating: 0, count: 512)
                var tv = timeval(tv_sec: 1, tv_usec: 0)
                setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                _ = recv(c, &buffer, buffer.count, 0)
                if !reply.isEmpty { _ = send(c, reply, reply.count, Int32(MSG_NOSIGNAL)) }
                close(c)
                if isDone { return }
            }
        }
    }

    private var isDone: Bool { stopped.lock(); defer { stopped.unlock() }; return done }

    func stop() {
        stopped.lock(); done = true; stopped.unlock()
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

/// `openssl s_server` on a free loopback port.
final class TLSServer {
    let process: ChildProcess
    let port: UInt16

    private init(process: ChildProcess, port: UInt16) {
        self.process = process
        self.port = port
    }

    static func start(openssl: String, cert: String, key: String) throws -> TLSServer {
        for _ in 0..<5 {
            let port = TansuBroker.freePort()
            // stdin is a pipe kept open: s_server stops at EOF on stdin.
            let p = try ChildProcess.spawn(openssl, ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", cert, "-key", key, "-quiet"],
                                           stdin: .pipe, stdout: .null, stderr: .null)
            let server = TLSServer(process: p, port: port)
            for _ in 0..<50 {
                if !p.isRunning { break }
                if TansuBroker.canConnect(port) { return server }
                usleep(100_000)
            }
            server.stop()
        }
        throw TestFailure("openssl s_server did not start")
    }

    func stop() {
        process.send(SIGKILL)
        process.waitForExit()
    }
}
