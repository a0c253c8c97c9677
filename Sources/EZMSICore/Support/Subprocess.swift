import Foundation

/// The result of running a program to completion.
public struct ProcessOutput: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public enum Subprocess {
    private static let launchLock = NSLock()

    /// Runs `executable` with `arguments`, waiting at most `timeout` seconds.
    /// Uses a termination handler and a semaphore: `waitUntilExit()` in corelibs-foundation polls the run loop in
    /// 50 ms slices, which would dominate the doctor's run time.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           timeout: Double = 10) throws -> ProcessOutput {
        let raw = try runRaw(executable, arguments, environment: environment, timeout: timeout)
        return ProcessOutput(status: raw.status, stdout: String(decoding: raw.stdout, as: UTF8.self), stderr: raw.stderr)
    }

    /// Like `run`, but keeps stdout as bytes (e.g. a tar stream).
    public static func runRaw(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                              timeout: Double = 10) throws -> (status: Int32, stdout: [UInt8], stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        // Launches are serialised: concurrent Process.run() calls from many threads have crashed corelibs-foundation
        // (seen once, SIGSEGV inside run()); the children still run in parallel.
        try launchLock.withLock { try process.run() }
        // Drain both pipes concurrently so a chatty child never blocks on a full pipe.
        let group = DispatchGroup()
        let outData = Box(Data()), errData = Box(Data())
        DispatchQueue.global().async(group: group) { outData.value = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { errData.value = err.fileHandleForReading.readDataToEndOfFile() }
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            throw SubprocessError.timedOut(executable, timeout)
        }
        _ = group.wait(timeout: .now() + 5)
        return (process.terminationStatus, [UInt8](outData.value), String(decoding: errData.value, as: UTF8.self))
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
