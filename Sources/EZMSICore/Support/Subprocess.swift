import Foundation

/// The result of running a program to completion.
public struct ProcessOutput: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public enum Subprocess {
    /// Runs `executable` with `arguments`, waiting at most `timeout` seconds.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           timeout: Double = 10) throws -> ProcessOutput {
        let raw = try runRaw(executable, arguments, environment: environment, timeout: timeout)
        return ProcessOutput(status: raw.status, stdout: String(decoding: raw.stdout, as: UTF8.self), stderr: raw.stderr)
    }

    /// Like `run`, but keeps stdout as bytes (e.g. a tar stream). `input`, if given, is written to the child's stdin
    /// (then closed); otherwise stdin is /dev/null.
    public static func runRaw(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                              input: [UInt8]? = nil,
                              timeout: Double = 10) throws -> (status: Int32, stdout: [UInt8], stderr: String) {
        let deadline = Date().addingTimeInterval(timeout)
        let child = try ChildProcess.spawn(executable, arguments, environment: environment,
                                           stdin: input == nil ? .null : .pipe)
        if let input {
            // Small inputs only (a line for `q`): larger ones would need writing while draining.
            child.writeToStdin(input)
            child.closeStdin()
        }
        var out: [UInt8] = [], err: [UInt8] = []
        let drained = child.drainOutput(until: deadline, stdout: &out, stderr: &err)
        guard drained, child.waitForExit(timeout: max(0, deadline.timeIntervalSinceNow)),
              let status = child.terminationStatus else {
            // SIGTERM first (docker forwards it to nothing and exits cleanly); SIGKILL later for one that ignores it.
            child.send(SIGTERM)
            DispatchQueue.global().asyncAfter(deadline: .now() + 2) { child.send(SIGKILL) }
            throw SubprocessError.timedOut(executable, timeout)
        }
        return (status, out, String(decoding: err, as: UTF8.self))
    }

    /// Finds a program on PATH like `execvp` does.
    public static func which(_ name: String, path: String?) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        for dir in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = dir.isEmpty ? name : "\(dir)/\(name)"
            var st = stat()
            if stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }
}

public enum SubprocessError: Error, CustomStringConvertible {
    case timedOut(String, Double)
    public var description: String {
        switch self {
        case let .timedOut(exe, t): return "\(exe) did not finish within \(t) s"
        }
    }
}

/// A mutable cell handed to exactly one writer thread; read after the DispatchGroup wait.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
