import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`.
///
/// Why not Foundation's `Process`: on Linux (Swift 6.3.1) `Process.run()` crashes intermittently with a buffer
/// over-read while it lists `/proc/self/fd` (swift-corelibs-foundation PR #5472); CI hit it as a SIGSEGV inside
/// `Process.run()`. This type does what ezmsi needs and no more: pipes or /dev/null for the three standard streams,
/// an environment, a timeout, and a reaper that never polls.
public final class ChildProcess: @unchecked Sendable {
    /// Where one of the child's standard streams goes.
    public enum Stream: Sendable { case inherit, null, pipe }

    public let pid: pid_t
    /// Our ends of the pipes asked for (write end for stdin, read ends for stdout and stderr); -1 otherwise.
    public private(set) var stdinFD: Int32
    public let stdoutFD: Int32
    public let stderrFD: Int32

    /// Readable (at EOF) once the child has been reaped: the reaper thread closes the write end.
    private let exitNoticeFD: Int32
    private let lock = NSLock()
    private var rawStatus: Int32?

    private static let spawnLock = NSLock()

    /// Starts `executable` (an absolute path) with `arguments`. `environment` nil inherits ours.
    public static func spawn(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                             stdin: Stream = .null, stdout: Stream = .pipe, stderr: Stream = .pipe) throws -> ChildProcess {
        var opened: [Int32] = []   // every descriptor we made, closed on failure
        func makePipe() throws -> (read: Int32, write: Int32) {
            var fds: [Int32] = [-1, -1]
            guard pipe(&fds) == 0 else { throw ChildProcessError.system("pipe", errno) }
            opened += fds
            // Close-on-exec: a pipe must not leak into another child, or that child would hold it open and our
            // reader would wait for the wrong process. (pipe2 is not visible to Swift; the spawn lock closes the
            // window between pipe and fcntl.)
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            return (fds[0], fds[1])
        }
        spawnLock.lock()
        defer { spawnLock.unlock() }
        do {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            var parentEnds: [Int32] = [-1, -1, -1]
            var childEnds: [Int32] = []
            for (target, stream) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
                switch stream {
                case .inherit: break
                case .null:
                    posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
                case .pipe:
                    let p = try makePipe()
                    let (ours, theirs) = target == 0 ? (p.write, p.read) : (p.read, p.write)
                    parentEnds[Int(target)] = ours
                    childEnds.append(theirs)
                    // dup2 clears O_CLOEXEC on the target descriptor; the original closes at exec.
                    posix_spawn_file_actions_adddup2(&actions, theirs, target)
                }
            }
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            // The child starts with default signal dispositions and an empty mask: ezmsi ignores SIGPIPE, and an
            // ignored SIGPIPE would otherwise be inherited across exec.
            var defaults = sigset_t(), empty = sigset_t()
            sigfillset(&defaults)
            sigemptyset(&empty)
            posix_spawnattr_setsigdefault(&attributes, &defaults)
            posix_spawnattr_setsigmask(&attributes, &empty)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

            let argv = ([executable] + arguments).map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            let envStrings = (environment ?? ProcessInfo.processInfo.environment)
                .sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { envStrings.forEach { free($0) } }

            var pid: pid_t = 0
            let rc = argv.withUnsafeBufferPointer { av in
                envStrings.withUnsafeBufferPointer { ev in
                    posix_spawn(&pid, executable, &actions, &attributes, av.baseAddress!, ev.baseAddress!)
                }
            }
            guard rc == 0 else { throw ChildProcessError.launch(executable, rc) }
            for fd in childEnds { close(fd) }
            opened.removeAll { childEnds.contains($0) }

            let notice = try makePipe()
            let child = ChildProcess(pid: pid, stdin: parentEnds[0], stdout: parentEnds[1], stderr: parentEnds[2],
                                     exitNoticeFD: notice.read)
            child.startReaper(noticeWriteFD: notice.write)
            return child
        } catch {
            for fd in opened { close(fd) }
            throw error
        }
    }

    private init(pid: pid_t, stdin: Int32, stdout: Int32, stderr: Int32, exitNoticeFD: Int32) {
        self.pid = pid
        self.stdinFD = stdin
        self.stdoutFD = stdout
        self.stderrFD = stderr
        self.exitNoticeFD = exitNoticeFD
    }

    deinit {
        for fd in [stdinFD, stdoutFD, stderrFD, exitNoticeFD] where fd >= 0 { close(fd) }
    }

    /// One thread per child, blocked in waitpid: no SIGCHLD handler, no polling, and it always reaps.
    private func startReaper(noticeWriteFD: Int32) {
        let pid = self.pid
        let thread = Thread { [self] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            lock.withLock { rawStatus = status }
            close(noticeWriteFD)
        }
        thread.stackSize = 64 * 1024
        thread.start()
    }

    /// Waits at most `timeout` seconds (nil: forever); true once the child has exited.
    @discardableResult
    public func waitForExit(timeout: Double? = nil) -> Bool {
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        while true {
            let remaining = deadline.map { max(0, Int32(($0.timeIntervalSinceNow * 1000).rounded(.up))) } ?? -1
            var fd = pollfd(fd: exitNoticeFD, events: Int16(POLLIN), revents: 0)
            let ready = poll(&fd, 1, remaining)
            if ready > 0 { return lock.withLock { rawStatus != nil } || waitUntilRecorded() }
            if ready == 0 { return false }
            if errno != EINTR { return false }
        }
    }

    /// The notice is closed just after the status is stored; this covers the instant between.
    private func waitUntilRecorded() -> Bool {
        while lock.withLock({ rawStatus == nil }) { usleep(100) }
        return true
    }

    public var isRunning: Bool { !waitForExit(timeout: 0) }

    /// The exit code, or the signal number if a signal ended it (as Foundation's `terminationStatus`); nil while
    /// it runs.
    public var terminationStatus: Int32? {
        guard let raw = lock.withLock({ rawStatus }) else { return nil }
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : signal
    }

    /// Whether a signal ended it.
    public var wasSignalled: Bool {
        guard let raw = lock.withLock({ rawStatus }) else { return false }
        return raw & 0x7f != 0
    }

    /// Sends `signal` unless the child has already been reaped (its pid could be reused).
    public func send(_ signal: Int32) {
        lock.withLock { if rawStatus == nil { kill(pid, signal) } }
    }

    /// Writes all of `bytes` to the child's stdin; false if it closed its end.
    @discardableResult
    public func writeToStdin(_ bytes: [UInt8]) -> Bool {
        guard stdinFD >= 0 else { return false }
        // A child that already closed stdin must give EPIPE, not kill a caller that has not ignored SIGPIPE.
        return withSIGPIPEBlocked {
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { write(stdinFD, $0.baseAddress, $0.count) }
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }
    }

    /// Closes our end of stdin, so the child reads EOF.
    public func closeStdin() {
        if stdinFD >= 0 { close(stdinFD); stdinFD = -1 }
    }

    /// Reads stdout and stderr to EOF together (so a chatty child never blocks on a full pipe), until `deadline`.
    /// Returns whether both reached EOF.
    public func drainOutput(until deadline: Date, stdout out: inout [UInt8], stderr err: inout [UInt8]) -> Bool {
        var open = [stdoutFD, stderrFD].filter { $0 >= 0 }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            // Checked first: a child that writes without pause would otherwise keep poll ready past the deadline.
            guard deadline.timeIntervalSinceNow > 0 else { return false }
            let remaining = Int32(max(0, (deadline.timeIntervalSinceNow * 1000).rounded(.up)))
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), remaining)
            if ready == 0 { return false }
            if ready < 0 { if errno == EINTR { continue }; return false }
            for entry in fds where entry.revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    if entry.fd == stdoutFD { out += buffer[0..<n] } else { err += buffer[0..<n] }
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    open.removeAll { $0 == entry.fd }
                }
            }
        }
        return true
    }
}

public enum ChildProcessError: Error, CustomStringConvertible {
    case system(String, Int32)
    case launch(String, Int32)
    public var description: String {
        switch self {
        case let .system(call, code): return "\(call) failed: \(String(cString: strerror(code)))"
        case let .launch(exe, code): return "cannot start \(exe): \(String(cString: strerror(code)))"
        }
    }
}
