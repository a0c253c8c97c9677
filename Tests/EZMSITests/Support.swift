import Foundation
import Testing
@testable import EZMSICore

/// Paths and helpers shared by the tests.
enum Repo {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static var binary: String {
        // The ezmsi built together with this test bundle (whatever --scratch-path), else the default build folder.
        if let bundle = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let sibling = (bundle as NSString).deletingLastPathComponent + "/ezmsi"
            if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
        }
        for candidate in [".build/debug/ezmsi", ".build/x86_64-unknown-linux-gnu/debug/ezmsi", ".build/aarch64-unknown-linux-gnu/debug/ezmsi"] {
            let path = root + "/" + candidate
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return root + "/.build/debug/ezmsi"
    }
}

/// The real Docker engine started by scripts/test. With EZMSI_REQUIRE_DOCKER=1 (set by scripts/test and CI) a missing
/// daemon fails the tests instead of skipping them, so these tests cannot pass vacuously.
/// The one helper for it: every suite reaches the daemon through here.
enum TestDocker {
    /// `EZMSI_TEST_DOCKER_HOST`, else the socket scripts/test starts the daemon on.
    static var host: String? {
        let env = ProcessInfo.processInfo.environment
        if let h = env["EZMSI_TEST_DOCKER_HOST"], !h.isEmpty { return h }
        let socket = "/tmp/ezmsi-ci/docker.sock"
        var st = stat()
        if stat(socket, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK { return "unix://" + socket }
        return nil
    }
    static let image = ProcessInfo.processInfo.environment["EZMSI_FIXTURE_IMAGE"] ?? "openmsi/openmsistream:latest"
    static var required: Bool { ProcessInfo.processInfo.environment["EZMSI_REQUIRE_DOCKER"] == "1" }
    static var available: Bool { host != nil || required }

    /// This process's environment with DOCKER_HOST set to the test daemon.
    static var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        if let host { env["DOCKER_HOST"] = host }
        return env
    }

    static var cli: String { Subprocess.which("docker", path: ProcessInfo.processInfo.environment["PATH"]) ?? "/usr/bin/docker" }

    /// Runs the docker CLI against the test daemon.
    static func run(_ args: [String], extraEnv: [String: String] = [:], timeout: Double = 120) throws -> ProcessOutput {
        guard host != nil else {
            throw TestFailure("no test docker daemon (EZMSI_TEST_DOCKER_HOST unset, /tmp/ezmsi-ci/docker.sock missing): run the suite through scripts/test")
        }
        var env = environment
        for (k, v) in extraEnv { env[k] = v }
        return try Subprocess.run(cli, args, environment: env, timeout: timeout)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Runs the built ezmsi binary. `prefix` (a program and its arguments) runs it instead, with the ezmsi command line
/// appended: e.g. `["/bin/bash", "-c", "ulimit -n 1024 && exec \"$@\"", "bash"]`.
func ezmsi(_ args: [String], env extra: [String: String] = [:], removing: [String] = [], cwd: String? = nil,
           asUser uid: UInt32? = nil, prefix: [String] = [], timeout: Double = 60) throws -> ProcessOutput {
    var env = ProcessInfo.processInfo.environment
    if let host = TestDocker.host { env["DOCKER_HOST"] = host }
    env["NO_COLOR"] = nil
    // The example broker (broker.example) does not exist: network probes are tested on their own (BrokerProbeTests
    // pass removing: ["EZMSI_OFFLINE"]).
    env["EZMSI_OFFLINE"] = "1"
    for key in removing { env[key] = nil }
    for (k, v) in extra { env[k] = v }
    var executable = Repo.binary
    var arguments = args
    if let uid {
        arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--", executable] + args
        executable = "/usr/bin/setpriv"
    }
    if let cwd {
        arguments = ["-c", "cd \(ShellWords.quote(cwd)) && exec \"$@\"", "sh", executable] + arguments
        executable = "/bin/sh"
    }
    if let wrapper = prefix.first {
        arguments = Array(prefix.dropFirst()) + [executable] + arguments
        executable = wrapper
    }
    return try Subprocess.run(executable, arguments, environment: env, timeout: timeout)
}

/// A temporary folder under /tmp (0755, so every test uid can reach into it), removed at the end of the test with
/// whatever a test left in it (mounts are unmounted, immutable flags cleared). The one scratch-folder helper.
final class TempDir {
    let path: String
    init(_ name: String = "t") {
        var template = Array("/tmp/ezmsi-test-\(name)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template)
        chmod(path, 0o755)
    }

    deinit {
        if geteuid() == 0 {
            _ = try? PermShell.run("/bin/sh", ["-c", "grep -o ' \(path)[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l; chattr -R -i \(path) 2>/dev/null; rm -rf \(path)"])
        } else {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// A file made by this process (root in the suite) with `mode`; the parent must exist.
    @discardableResult
    func file(_ relative: String, mode: mode_t = 0o644, content: String = "") -> String {
        let p = path + "/" + relative
        let fd = open(p, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "create \(p): \(String(cString: strerror(errno)))")
        if !content.isEmpty { _ = content.withCString { Glibc.write(fd, $0, strlen($0)) } }
        close(fd)
        chmod(p, mode)
        return p
    }

    /// A directory with `mode`; the parent must exist.
    @discardableResult
    func dir(_ relative: String, mode: mode_t = 0o755) -> String {
        let p = path + "/" + relative
        Glibc.mkdir(p, 0o700)
        chmod(p, mode)
        return p
    }

    func symlink(_ relative: String, to target: String) {
        Glibc.symlink(target, path + "/" + relative)
    }

    @discardableResult
    func write(_ name: String, _ content: String, mode: Int = 0o644) -> String {
        write(name, bytes: Array(content.utf8), mode: mode)
    }

    @discardableResult
    func write(_ name: String, bytes: [UInt8], mode: Int = 0o644) -> String {
        let p = path + "/" + name
        try? FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
        chmod(p, mode_t(mode))
        return p
    }

    func mkdir(_ name: String, mode: Int = 0o755) -> String {
        let p = path + "/" + name
        try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        chmod(p, mode_t(mode))
        return p
    }
}

/// A complete, healthy upload deployment in a temp folder (data folder included).
func healthyDeployment(_ dir: TempDir, env: String = ExampleFacts.goodEnv) -> [String] {
    dir.write("openmsi.env", env, mode: 0o600)
    dir.write("config.config", ExampleFacts.goodProducerConfig)
    // Healthy means usable by the image's user: the data folder belongs to openmsi (1000).
    chown(dir.mkdir("data"), 1000, 1000)
    chown(dir.write("data/scan.csv", "1,2,3\n"), 1000, 1000)
    return ["--deployment", dir.path, "--folder", dir.path + "/data", "--",
            "DataFileUploadDirectory", "data", "--config", "config.config", "--topic_name", "xrd"]
}

func decodeJSON(_ text: String) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw TestFailure("not a JSON object: \(text.prefix(200))")
    }
    return object
}

func check(_ report: [String: Any], _ id: String) -> [String: Any]? {
    (report["checks"] as? [[String: Any]])?.first { $0["id"] as? String == id }
}

/// The forms in which a secret could leak, each computed independently of ezmsi: the value, its base64 (standard
/// and URL-safe, padded or not), its URL encoding, and the SHA-256 (from coreutils' sha256sum) in every 8-hex-digit
/// window (the old `sha256 XXXXXXXX` fingerprints were its prefix).
enum SecretForms {
    nonisolated(unsafe) static var sha256Cache: [String: String] = [:]
    static let lock = NSLock()

    static func sha256(_ value: String) throws -> String {
        lock.lock(); defer { lock.unlock() }
        if let known = sha256Cache[value] { return known }
        let out = try Subprocess.run("/bin/sh", ["-c", "printf '%s' \"$1\" | sha256sum", "sh", value])
        let hex = String(out.stdout.prefix(64))
        guard hex.count == 64 else { throw TestFailure("sha256sum failed: \(out.stderr)") }
        sha256Cache[value] = hex
        return hex
    }

    static func forms(_ secret: String) throws -> [(String, String)] {
        var forms: [(String, String)] = [("plain", secret)]
        let b64 = Data(secret.utf8).base64EncodedString()
        let unpadded = b64.replacingOccurrences(of: "=", with: "")
        forms.append(("base64", unpadded))
        forms.append(("base64url", unpadded.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")))
        // URL encoding as Python's urllib.parse.quote(safe="") writes it, and with every non-alphanumeric escaped.
        let unreserved = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
        for (name, allowed) in [("url-encoded", unreserved), ("url-encoded-all", CharacterSet.alphanumerics)] {
            if let url = secret.addingPercentEncoding(withAllowedCharacters: allowed), url != secret { forms.append((name, url)) }
        }
        let hex = Array(try sha256(secret))
        for start in 0...(hex.count - 8) { forms.append(("sha256[\(start)...]", String(hex[start..<start + 8]))) }
        return forms
    }

    /// The names of the forms of `secret` found in `text`.
    static func leaks(_ secret: String, in text: String) throws -> [String] {
        try forms(secret).filter { text.contains($0.1) }.map(\.0)
    }
}
