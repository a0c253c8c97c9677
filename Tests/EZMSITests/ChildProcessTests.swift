import Foundation
import Testing
@testable import EZMSICore

/// ChildProcess replaced Foundation's Process, whose `run()` crashed CI intermittently (SIGSEGV while listing
/// /proc/self/fd). These tests pin what the replacement must do.
@Suite struct ChildProcessTests {
    @Test func capturesOutputErrorsAndExitCode() throws {
        let r = try Subprocess.run("/bin/sh", ["-c", "printf out; printf err >&2; exit 7"])
        #expect(r.status == 7)
        #expect(r.stdout == "out")
        #expect(r.stderr == "err")
    }

    @Test func aSignalledChildReportsTheSignal() throws {
        let r = try Subprocess.run("/bin/sh", ["-c", "kill -9 $$"])
        #expect(r.status == SIGKILL)
    }

    @Test func inputReachesStdinAndIsClosed() throws {
        let r = try Subprocess.runRaw("/bin/cat", [], input: Array("q\n".utf8))
        #expect(r.status == 0)
        #expect(r.stdout == Array("q\n".utf8))
    }

    @Test func largeOutputOnBothStreamsDoesNotDeadlock() throws {
        // 1 MiB on each stream: far beyond a pipe's 64 KiB buffer.
        let r = try Subprocess.runRaw("/bin/sh", ["-c", "head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2"])
        #expect(r.status == 0)
        #expect(r.stdout.count == 1_048_576)
        #expect(r.stderr.utf8.count == 1_048_576)
    }

    @Test func timeoutStopsTheChild() throws {
        let started = Date()
        #expect(throws: SubprocessError.self) { try Subprocess.run("/bin/sleep", ["30"], timeout: 0.5) }
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func aChildThatIgnoresSIGTERMIsKilledAfterTheTimeout() throws {
        let dir = TempDir("ignores-term")
        let marker = dir.path + "/pid"
        #expect(throws: SubprocessError.self) {
            try Subprocess.run("/bin/sh", ["-c", "trap '' TERM; echo $$ > \(marker); while :; do sleep 0.1; done"], timeout: 0.5)
        }
        let pid = try #require(Int32((try? String(contentsOfFile: marker, encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
        let deadline = Date().addingTimeInterval(10)
        while kill(pid, 0) == 0 && Date() < deadline { usleep(50_000) }
        #expect(kill(pid, 0) != 0, "the shell that ignores SIGTERM still runs")
    }

    @Test func aChildThatNeverStopsWritingStillTimesOut() throws {
        let started = Date()
        #expect(throws: SubprocessError.self) { try Subprocess.runRaw("/usr/bin/yes", [], timeout: 0.2) }
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func aMissingProgramIsAnErrorNotACrash() {
        #expect(throws: ChildProcessError.self) { try Subprocess.run("/nonexistent/program", []) }
    }

    @Test func environmentIsExactlyTheOneGiven() throws {
        let r = try Subprocess.run("/usr/bin/env", [], environment: ["ONLY": "this"])
        #expect(r.stdout == "ONLY=this\n")
    }

    /// ezmsi ignores SIGPIPE; its children must not inherit that (a shell pipeline would then spin on EPIPE).
    @Test func childrenStartWithDefaultSignalDispositions() throws {
        let previous = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, previous) }
        let r = try Subprocess.run("/bin/sh", ["-c", "grep SigIgn /proc/self/status"])
        let mask = UInt64(r.stdout.split(separator: "\t").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "", radix: 16)
        let ignored = try #require(mask, "unexpected output: \(r.stdout)")
        #expect(ignored & (1 << (UInt64(SIGPIPE) - 1)) == 0, "SIGPIPE is ignored in the child: \(r.stdout)")
    }

    /// One child's pipes must not leak into another: the reader of the first would then wait for the second.
    @Test func pipesDoNotLeakIntoOtherChildren() throws {
        let first = try ChildProcess.spawn("/bin/sleep", ["30"], stdin: .pipe, stdout: .pipe, stderr: .pipe)
        defer { first.send(SIGKILL); first.waitForExit() }
        let second = try ChildProcess.spawn("/bin/sleep", ["30"], stdout: .null, stderr: .null)
        defer { second.send(SIGKILL); second.waitForExit() }
        func link(_ path: String) -> String? { try? FileManager.default.destinationOfSymbolicLink(atPath: path) }
        let ours = Set([first.stdinFD, first.stdoutFD, first.stderrFD].compactMap { link("/proc/self/fd/\($0)") })
        #expect(ours.count == 3)
        let theirs = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(second.pid)/fd")
            .compactMap { link("/proc/\(second.pid)/fd/\($0)") }
        #expect(ours.isDisjoint(with: theirs), "\(theirs)")
    }

    /// The crash this type replaced: many launches from many threads while the descriptor table is large.
    @Test func manyConcurrentLaunchesWithManyOpenDescriptors() throws {
        let held = (0..<300).map { _ in open("/dev/null", O_RDONLY | O_CLOEXEC) }
        defer { held.forEach { close($0) } }
        let lock = NSLock()
        var failures = 0
        DispatchQueue.concurrentPerform(iterations: 400) { i in
            let r = try? Subprocess.run("/bin/sh", ["-c", "echo \(i)"])
            if r?.stdout != "\(i)\n" { lock.withLock { failures += 1 } }
        }
        #expect(failures == 0)
    }

    @Test func isRunningAndWaitForExitAgree() throws {
        let child = try ChildProcess.spawn("/bin/sleep", ["30"], stdout: .null, stderr: .null)
        #expect(child.isRunning)
        #expect(child.terminationStatus == nil)
        #expect(!child.waitForExit(timeout: 0.1))
        child.send(SIGTERM)
        #expect(child.waitForExit(timeout: 10))
        #expect(!child.isRunning)
        #expect(child.terminationStatus == SIGTERM)
        #expect(child.wasSignalled)
    }
}
