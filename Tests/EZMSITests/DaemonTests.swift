import Foundation
import Testing
@testable import EZMSICore

/// docker.daemon and docker.image against real sockets: the test daemon, a missing socket, a stale socket, a socket
/// that accepts and never answers, and permission denied for an unprivileged uid.
@Suite(.enabled(if: TestDocker.available))
struct DaemonTests {
    func doctor(_ dir: TempDir, host: String?, extra: [String] = [], asUser: UInt32? = nil, env: [String: String] = [:]) throws -> (ProcessOutput, [String: Any]) {
        var environment = env
        if let host { environment["DOCKER_HOST"] = host }
        let out = try ezmsi(["doctor", "--format", "json"] + extra + healthyDeployment(dir), env: environment, asUser: asUser)
        return (out, try decodeJSON(out.stdout))
    }

    @Test func healthyDeploymentPassesAgainstTheRealDaemon() throws {
        let dir = TempDir("healthy")
        let (out, report) = try doctor(dir, host: TestDocker.host)
        #expect(out.status == 0, "\(out.stdout)")
        #expect(check(report, "docker.daemon")?["status"] as? String == "pass")
        let image = try #require(check(report, "docker.image"))
        #expect(image["status"] as? String == "pass")
        let details = image["details"] as? [String: String] ?? [:]
        #expect(details["user"] == "openmsi")
        #expect(details["entrypoint"] == "[\"bash\"]")
        #expect(details["workingDir"] == "/home/openmsi")
    }

    @Test func noSocketFileMeansDaemonNotRunningAndBlocksTheImage() throws {
        let dir = TempDir("nosock")
        let (out, report) = try doctor(dir, host: "unix://\(dir.path)/nothing.sock")
        #expect(out.status == 1)
        let daemon = try #require(check(report, "docker.daemon"))
        #expect(daemon["status"] as? String == "fail")
        #expect(ConfigParserDifferentialTests.codes(report).contains("daemon-not-running"))
        #expect(check(report, "docker.image")?["status"] as? String == "blocked")
        #expect(check(report, "docker.image")?["blockedBy"] as? [String] == ["docker.daemon"])
    }

    @Test func staleSocketMeansDaemonDown() throws {
        let dir = TempDir("stale")
        let path = dir.path + "/stale.sock"
        // Bind a socket and close it without unlinking: the file stays, nobody listens.
        close(try boundSocket(path))
        let (_, report) = try doctor(dir, host: "unix://" + path)
        #expect(ConfigParserDifferentialTests.codes(report).contains("daemon-stale-socket"))
    }

    @Test func socketThatNeverAnswersEndsWithinTheTimeout() throws {
        let dir = TempDir("hang")
        let path = dir.path + "/hang.sock"
        let fd = try boundSocket(path)
        listen(fd, 16)   // the kernel accepts connections; nobody ever reads or answers
        defer { close(fd) }
        let start = Date()
        let (out, report) = try doctor(dir, host: "unix://" + path, extra: ["--timeout", "1"])
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed < 4, "took \(elapsed) s")
        #expect(out.status == 1)
        let status = check(report, "docker.daemon")?["status"] as? String
        #expect(status == "fail" || status == "error")
        #expect(check(report, "env.file")?["status"] as? String == "pass", "other probes still finish")
    }

    @Test func permissionDeniedForAnUnprivilegedUser() throws {
        let host = try #require(TestDocker.host)
        let socketPath = String(host.dropFirst("unix://".count))
        var st = stat()
        #expect(stat(socketPath, &st) == 0)
        #expect(st.st_mode & 0o006 == 0, "the test socket must not be world-accessible")
        let dir = TempDir("denied")
        _ = healthyDeployment(dir)
        chmod(dir.path, 0o755)
        chmod(dir.path + "/openmsi.env", 0o644)   // readable by the unprivileged uid
        let out = try ezmsi(["doctor", "--format", "json", "--only", "docker.daemon"] + healthyDeployment(dir).prefix(4),
                            env: ["DOCKER_HOST": host, "HOME": "/tmp"], asUser: 65534)
        let report = try decodeJSON(out.stdout)
        let codes = ConfigParserDifferentialTests.codes(report)
        #expect(codes.contains("docker-group-missing") || codes.contains("docker-group-relogin"), "\(out.stdout)")
    }

    @Test func missingImageFailsWithAPullFix() throws {
        let dir = TempDir("noimage")
        let (out, report) = try doctor(dir, host: TestDocker.host, extra: ["--image", "openmsi/openmsistream:does-not-exist"])
        #expect(out.status == 1)
        let image = try #require(check(report, "docker.image"))
        #expect(image["status"] as? String == "fail")
        let fixes = image["fixes"] as? [[String: Any]] ?? []
        #expect((fixes.first?["commands"] as? [String]) == ["docker pull openmsi/openmsistream:does-not-exist"])
    }

    @Test func theRecipeImageNameIsFlagged() throws {
        let dir = TempDir("typo")
        let (_, report) = try doctor(dir, host: TestDocker.host, extra: ["--image", "openmsi/image"])
        #expect(ConfigParserDifferentialTests.codes(report).contains("image-name-typo"))
    }
}

/// A unix socket bound at `path` (not listening).
func boundSocket(_ path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in raw.copyBytes(from: Array(path.utf8)); raw[path.utf8.count] = 0 }
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    guard rc == 0 else { throw TestFailure("bind \(path): errno \(errno)") }
    return fd
}

/// Endpoint resolution follows the docker CLI's order.
struct EndpointTests {
    @Test func dockerHostBeatsContext() {
        let r = EndpointResolver.resolve(environment: ["DOCKER_HOST": "unix:///x.sock", "DOCKER_CONTEXT": "other"], home: "/nonexistent")
        #expect((try? r.get())?.host == "unix:///x.sock")
        #expect((try? r.get())?.source == "DOCKER_HOST")
    }

    @Test func defaultSocket() {
        let r = EndpointResolver.resolve(environment: ["DOCKER_CONFIG": "/nonexistent"], home: "/nonexistent")
        #expect((try? r.get())?.host == "unix:///var/run/docker.sock")
    }

    @Test func contextStoreIsReadLikeTheCLI() throws {
        let dir = TempDir("ctx")
        // The CLI's directory name: SHA-256 of the context name, from coreutils (the oracle), not from ezmsi.
        let hash = String(try Subprocess.run("/bin/sh", ["-c", "printf lab | sha256sum"]).stdout.prefix(64))
        #expect(hash.count == 64)
        dir.write("contexts/meta/\(hash)/meta.json", #"{"Name":"lab","Metadata":{},"Endpoints":{"docker":{"Host":"unix:///run/lab.sock","SkipTLSVerify":false}}}"#)
        dir.write("config.json", #"{"currentContext":"lab"}"#)
        let viaConfig = try EndpointResolver.resolve(environment: ["DOCKER_CONFIG": dir.path], home: nil).get()
        #expect(viaConfig.host == "unix:///run/lab.sock")
        #expect(viaConfig.source == "config.json currentContext")
        let viaEnv = try EndpointResolver.resolve(environment: ["DOCKER_CONFIG": dir.path, "DOCKER_CONTEXT": "lab"], home: nil).get()
        #expect(viaEnv.source == "DOCKER_CONTEXT")
        let missing = EndpointResolver.resolve(environment: ["DOCKER_CONFIG": dir.path, "DOCKER_CONTEXT": "gone"], home: nil)
        guard case .failure(.contextNotFound(let name, _)) = missing else { Issue.record("expected contextNotFound"); return }
        #expect(name == "gone")
    }

    @Test func sha256MatchesCoreutils() throws {
        let out = try Subprocess.run("/bin/sh", ["-c", "printf ezctx | sha256sum"])
        #expect(out.stdout.hasPrefix(Digests.sha256Hex(Array("ezctx".utf8)) + " "))
    }
}
