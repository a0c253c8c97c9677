import Foundation
import Glibc
import Testing
@testable import EZMSICore

/// The fixer against a hostile tree, deterministically: the test hooks run the attacker's move at the exact moment
/// a by-name fixer would be fooled (between the judgement and the change, and between the journal and the change).
/// The racing suite (`AdversarialTests`) does the same from another process, many times, without hooks.
@Suite(.serialized) struct FixSafetyTests {
    static let openmsi = FolderFixerTests.openmsi

    /// `renameat2(RENAME_EXCHANGE)`: the two names swap objects atomically.
    static func exchange(_ a: String, _ b: String) {
        #if arch(x86_64)
        let number = 316
        #else
        let number = 276
        #endif
        let r = a.withCString { pa in b.withCString { pb in
            Xattr.syscall6(number, Int(AT_FDCWD), Int(bitPattern: pa), Int(AT_FDCWD), Int(bitPattern: pb), 2, 0)
        } }
        precondition(r == 0, "renameat2: \(String(cString: strerror(errno)))")
    }

    static func inode(_ path: String) -> UInt64 {
        var st = stat()
        return lstat(path, &st) == 0 ? UInt64(st.st_ino) : 0
    }

    /// What `stat` + `getfacl` + the bytes say of one file, compared byte for byte.
    static func sentinel(_ path: String) throws -> String {
        try PermShell.sh("stat -c '%a %u %g %i %h %s' -- \(PermShell.quote(path)) && getfacl -p -- \(PermShell.quote(path)) && { [ ! -f \(PermShell.quote(path)) ] || sha256sum -- \(PermShell.quote(path)); }")
    }

    /// Between the walk's judgement and the change, the attacker exchanges the judged file with a file outside the
    /// folder: the outside file is not touched (a by-name change would have given it to uid 1000), the judged one
    /// is skipped and reported, for both plans.
    @Test(.enabled(if: PermShell.isRoot), arguments: FixPlanKind.allCases)
    func exchangeBeforeVerificationChangesNothingOutside(kind: FixPlanKind) throws {
        let s = TempDir("safety-exchange-\(kind.rawValue)")
        let outside = s.dir("outside", mode: 0o755)
        let secret = s.file("outside/secret", mode: 0o600, content: "root's secret")
        let root = s.dir("data", mode: 0o777)
        let judged = s.file("data/scan.csv", mode: 0o600, content: "scan")
        let before = try Self.sentinel(secret)
        FolderFixer.testHookBeforeVerify = { Self.exchange(judged, secret) }
        defer { FolderFixer.testHookBeforeVerify = nil }
        let outcome = try FolderFixer.apply(kind: kind, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                            journalDirectory: s.path + "/journals", options: FixOptions(threads: 1))
        FolderFixer.testHookBeforeVerify = nil
        // The outside object (now named data/scan.csv) is byte for byte as it was.
        #expect(try Self.sentinel(judged).replacingOccurrences(of: judged, with: secret) == before)
        #expect(outcome.replacedCount == 1 && outcome.replaced.first?.hasPrefix("scan.csv: replaced") == true, "\(outcome.replaced)")
        _ = outside
    }

    /// After the journal and before the change, the attacker exchanges names: the change still lands on the object
    /// that was judged and journaled (through its descriptor), never on the one swapped in.
    @Test(.enabled(if: PermShell.isRoot), arguments: FixPlanKind.allCases)
    func exchangeAfterJournalStillChangesTheJudgedObject(kind: FixPlanKind) throws {
        let s = TempDir("safety-late-\(kind.rawValue)")
        _ = s.dir("outside", mode: 0o755)
        let secret = s.file("outside/secret", mode: 0o600, content: "root's secret")
        let root = s.dir("data", mode: 0o777)
        let judged = s.file("data/scan.csv", mode: 0o600, content: "scan")
        let judgedInode = Self.inode(judged)
        let secretBefore = try Self.sentinel(secret)
        FolderFixer.testHookBeforeChange = { _ in Self.exchange(judged, secret) }
        defer { FolderFixer.testHookBeforeChange = nil }
        let outcome = try FolderFixer.apply(kind: kind, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                            journalDirectory: s.path + "/journals", options: FixOptions(threads: 1))
        FolderFixer.testHookBeforeChange = nil
        #expect(outcome.failedCount == 0 && outcome.replacedCount == 0, "\(outcome)")
        // The hook ran before each change: the names were exchanged an odd or even number of times; find the secret's
        // object by its inode wherever it is now, and check it is untouched.
        let secretNow = Self.inode(secret) == judgedInode ? judged : secret
        #expect(try Self.sentinel(secretNow).replacingOccurrences(of: secretNow, with: secret) == secretBefore)
        // The judged object got exactly its change.
        let judgedNow = secretNow == judged ? secret : judged
        var st = stat()
        #expect(lstat(judgedNow, &st) == 0 && UInt64(st.st_ino) == judgedInode)
        if kind == .chown { #expect(st.st_uid == 1000) } else { #expect(try FileACL.read(path: judgedNow).access.perms(.user(1000)) == [.r]) }
    }

    /// A hard link to a file outside the folder, a set-uid root file, a FIFO and a device node: none is changed,
    /// each is reported with why and what to do; undo leaves them too.
    @Test(.enabled(if: PermShell.isRoot), arguments: FixPlanKind.allCases)
    func refusesHardLinksSetuidFilesAndDevices(kind: FixPlanKind) throws {
        let s = TempDir("safety-refuse-\(kind.rawValue)")
        _ = s.dir("outside", mode: 0o700)
        let shadow = s.file("outside/shadow", mode: 0o600, content: "root:$6$…")
        let root = s.dir("data", mode: 0o755)
        try PermShell.sh("""
            set -e
            cd \(PermShell.quote(root))
            ln \(PermShell.quote(shadow)) linked-shadow
            cp /bin/true suid-root && chmod 4750 suid-root
            : > sgid && chmod 2640 sgid
            mkfifo fifo && chmod 600 fifo
            mknod null-device c 1 3 && chmod 600 null-device
            : > plain && chmod 600 plain
            """)
        let sentinels = try ["linked-shadow", "suid-root", "sgid", "fifo", "null-device"].map { try Self.sentinel(root + "/" + $0) }
        let shadowBefore = try Self.sentinel(shadow)
        let outcome = try FolderFixer.apply(kind: kind, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                            journalDirectory: s.path + "/journals")
        #expect(try ["linked-shadow", "suid-root", "sgid", "fifo", "null-device"].map { try Self.sentinel(root + "/" + $0) } == sentinels)
        #expect(try Self.sentinel(shadow) == shadowBefore)
        #expect(outcome.refusedCount == 5, "\(outcome.refused)")
        let text = outcome.refused.joined(separator: "\n")
        #expect(text.contains("linked-shadow: 2 hard links"))
        #expect(text.contains("suid-root: set-uid/set-gid file") && text.contains("sgid: set-uid/set-gid file"))
        if kind == .acl { try Self.hardLinkHintRunsAsPrinted(s) }
        let chmodHint = try #require(outcome.refused.first { $0.hasPrefix("sgid:") })
        #expect(chmodHint.contains("chmod u-s,g-s -- " + ShellWords.quote(root + "/sgid")))
        #expect(text.contains("fifo: a device, FIFO or socket") && text.contains("null-device: a device, FIFO or socket"))
        #expect(outcome.changed >= 1, "plain (and the root) still get their change")
        let undo = try FolderFixer.undo(journal: outcome.journal)
        #expect(undo.left.isEmpty && undo.skipped.isEmpty, "\(undo)")
        #expect(try Self.sentinel(shadow) == shadowBefore)
    }

    /// The hard-link hint runs as printed and finds the other link, outside the folder. On a small tmpfs of its own,
    /// since the printed find searches the whole file system the file is on.
    static func hardLinkHintRunsAsPrinted(_ s: TempDir) throws {
        let fs = s.dir("smallfs", mode: 0o755)
        try PermShell.sh("mount -t tmpfs -o size=4m,mode=755 ezmsi-test \(PermShell.quote(fs))")
        defer { _ = try? PermShell.sh("umount \(PermShell.quote(fs))") }
        try PermShell.sh("cd \(PermShell.quote(fs)) && mkdir -m 700 outside data && : > outside/shadow && chmod 600 outside/shadow && ln outside/shadow 'data/two names'")
        let outcome = try FolderFixer.apply(kind: .acl, root: fs + "/data", identity: Self.openmsi, need: .readTreeWriteRoot,
                                            journalDirectory: s.path + "/journals-smallfs")
        let hint = try #require(outcome.refused.first { $0.hasPrefix("two names:") }, "\(outcome.refused)")
        let find = try #require(hint.range(of: "find them: ").map { hint[$0.upperBound...] }?.split(separator: ";").first)
        let found = try PermShell.sh(String(find))
        #expect(found.split(separator: "\n").sorted() == [Substring(fs + "/data/two names"), Substring(fs + "/outside/shadow")],
                "\(find) printed \(found)")
    }

    /// Refused before anything is read or written, resolved first (`/usr/../etc` is `/etc`).
    @Test func systemFoldersAreRefused() throws {
        for path in ["/", "/etc", "/usr/../etc", "/etc/ssh", "/usr", "/usr/lib", "/bin", "/sbin", "/lib", "/lib64", "/boot",
                     "/dev", "/proc/self", "/sys", "/var", "/run", "/home", "/root", "/tmp", "/tmp/../etc", "/var/../usr/bin"] {
            #expect(SystemFolders.refusal(for: path) != nil, "\(path) must be refused")
        }
        for path in ["/var/lib/scans", "/run/media/ana/disk", "/home/ana/scans", "/tmp/x/scans", "/srv/scans", "/root/scans",
                     "/opt/lab/data", "/var/lib/new-folder-that-does-not-exist/data"] {
            #expect(SystemFolders.refusal(for: path) == nil, "\(path) must be accepted")
        }
        #expect(SystemFolders.refusal(for: "/home/ana", homes: ["/home/ana"]) != nil, "a home directory itself")
        #expect(SystemFolders.refusal(for: "/usr/../etc")?.resolved == "/etc")
        #expect(throws: FixError.self) {
            try FolderFixer.plan(kind: .acl, root: "/usr/../etc", identity: Self.openmsi, need: .readTreeWriteRoot)
        }
    }

    /// A command ezmsi prints for a hostile folder name (`fix`'s equivalents, `undo with:`, `docker run`) holds no raw
    /// control character, and bash gives the command exactly the original bytes.
    @Test func printedCommandsQuoteControlCharactersVisiblyAndExactly() throws {
        for name in ["scan\u{1b}[2Jnew", "a\nb::error file=x::forged", "cr\rhere", "tab\tand'quote\\x41", "c1\u{9b}31m", "plain dir"] {
            let quoted = ShellWords.quote(name)
            #expect(!quoted.unicodeScalars.contains { $0.value < 0x20 || (0x7F..<0xA0).contains($0.value) }, "\(quoted)")
            let out = try Subprocess.run("/bin/bash", ["-c", "printf %s " + quoted])
            #expect(out.stdout == name, "bash read \(quoted) as \(out.stdout.debugDescription)")
        }
    }
}
