import Foundation
import Glibc
import Testing
@testable import EZMSICore

/// The fixer on real trees (root, /tmp on ext4 with ACLs): plan = apply, the audit and a real process of the identity
/// agree afterwards, a second apply changes nothing, undo restores a byte-identical dump, also after a kill.
@Suite(.serialized) struct FolderFixerTests {
    static let openmsi = ContainerIdentity(uid: 1000, gid: 1000, groups: [27], source: "image user openmsi")

    // MARK: Helpers

    /// `permission_matrix.py dump`: type, owner, group, mode (with special bits), size, link target, access and default
    /// ACL decoded from the raw attributes, for every entry; never follows symlinks.
    static func dump(_ root: String) throws -> String {
        let out = try Subprocess.run("/usr/bin/env", ["python3", Repo.root + "/Tests/Oracles/permission_matrix.py", "dump", root],
                                     timeout: 300)
        guard out.status == 0 else { throw PermTestError("dump failed: \(out.stderr)") }
        return out.stdout
    }

    static func journalDirectory(_ s: TempDir) -> String { s.path + "/journals" }

    /// Lines of a journal as JSON objects (with Foundation, independently of the fixer's own parser).
    static func journalObjects(_ path: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try text.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// The state records of a journal with their paths rebuilt from the directory records (`in` + `name`), as
    /// `"path"` (UTF-8 names; `nameHex` ones get `"pathHex"` of their own name).
    static func journalRecords(_ lines: [[String: Any]]) -> [[String: Any]] {
        var directories: [Int: String] = [0: ""]
        for l in lines where l["dir"] != nil {
            let parent = directories[l["in"] as? Int ?? -1] ?? "?"
            let name = l["name"] as? String ?? "?"
            directories[l["dir"] as! Int] = parent.isEmpty ? name : parent + "/" + name
        }
        return lines.filter { $0["type"] != nil }.map { r in
            var r = r
            if r["in"] is NSNull { r["path"] = "."; return r }
            let parent = directories[r["in"] as? Int ?? -1] ?? "?"
            if let name = r["name"] as? String { r["path"] = parent.isEmpty ? name : parent + "/" + name }
            if let hex = r["nameHex"] as? String { r["pathHex"] = hex }
            return r
        }
    }

    /// What the identity can really do, as a process with its ids (setpriv): list every directory, read every file
    /// (upload) or create in every directory (download). Returns the failures.
    static func realCheck(_ root: String, need: FolderNeed, identity: ContainerIdentity = openmsi) throws -> String {
        let q = PermShell.quote(root)
        let script: String
        switch need {
        case .readTreeWriteRoot:
            script = """
                fail=0
                find \(q) -xdev -type d -exec sh -c 'for d; do ls -- "$d" >/dev/null || { echo "cannot list $d"; exit 1; }; done' sh {} + || fail=1
                find \(q) -xdev -type f -exec sh -c 'for f; do head -c 1 -- "$f" >/dev/null || { echo "cannot read $f"; exit 1; }; done' sh {} + || fail=1
                touch \(q)/.ezmsi-probe && rm \(q)/.ezmsi-probe || { echo "cannot create in root"; fail=1; }
                if [ -d \(q)/LOGS ]; then touch \(q)/LOGS/.probe && rm \(q)/LOGS/.probe || { echo "cannot create in LOGS"; fail=1; }; fi
                if [ -f \(q)/LOGS/DataFileUploadDirectory.log ]; then : >> \(q)/LOGS/DataFileUploadDirectory.log || { echo "cannot append log"; fail=1; }; fi
                exit $fail
                """
        default:
            script = """
                fail=0
                find \(q) -xdev -type d -exec sh -c 'for d; do ls -- "$d" >/dev/null && touch -- "$d/.ezmsi-probe" && rm -- "$d/.ezmsi-probe" || { echo "cannot list or create in $d"; exit 1; }; done' sh {} + || fail=1
                if [ -f \(q)/DataFileDownloadDirectory.log ]; then : >> \(q)/DataFileDownloadDirectory.log || { echo "cannot append log"; fail=1; }; fi
                exit $fail
                """
        }
        let out = try PermShell.asIdentity(identity, script: script)
        return out.status == 0 ? "" : out.stdout + out.stderr
    }

    /// An upload tree with most of what can go wrong: existing ACLs and masks, default ACLs, setgid and sticky
    /// directories, entries the uid owns, mode 000 files, a masked-out ACL, group entries, hard links, odd names,
    /// symlinks to an outside file and directory, a FIFO.
    static func makeUploadTree(_ s: TempDir) throws -> (root: String, outside: String) {
        let outside = s.dir("outside", mode: 0o700)
        s.file("outside/secret", mode: 0o600, content: "secret")
        let root = s.dir("upload", mode: 0o750)
        try PermShell.sh("""
            set -e
            cd \(PermShell.quote(root))
            mkdir -m 2770 a && chgrp 1000 a
            printf data > a/f1 && chgrp 0 a/f1 && chmod 640 a/f1
            printf data > a/linked && chmod 644 a/linked && ln a/linked a/linked-2
            : > a/f000 && chmod 000 a/f000
            mkdir -p a/b/c/d/e && echo deep > a/b/c/d/e/f.txt && chmod 600 a/b/c/d/e/f.txt && chmod 700 a/b/c
            mkdir -m 300 owned && chown 1000:1000 owned && : > owned/x && chown 1000:1000 owned/x && chmod 200 owned/x
            : > owned/y && chmod 604 owned/y
            mkdir -m 1777 sticky && : > sticky/f && chown 1001:1001 sticky/f && chmod 600 sticky/f
            mkdir -m 750 masked && setfacl -m u:1000:r-x masked && chmod g= masked
            : > masked/f && setfacl -m u:1001:rwx,g::rw- masked/f && chmod 600 masked/f
            mkdir -m 755 grp && setfacl -m g:27:r-- grp && : > grp/f && chgrp 27 grp/f && chmod 640 grp/f
            mkdir -m 755 minimaldefault && setfacl -d -m o::r-x minimaldefault
            mkdir -m 755 inherits && setfacl -d -m u:1000:r-x inherits && : > inherits/ok && chmod 644 inherits/ok
            mkdir -m 755 LOGS && : > LOGS/DataFileUploadDirectory.log && chmod 644 LOGS/DataFileUploadDirectory.log
            : > LOGS/uploaded_to_xrd.csv && chmod 600 LOGS/uploaded_to_xrd.csv
            : > 'we"ird
            name.csv' && chmod 600 'we"ird
            name.csv'
            : > "$(printf 'bad\\377name.csv')" && chmod 600 "$(printf 'bad\\377name.csv')"
            mkfifo pipe && chmod 600 pipe
            ln -s ../outside/secret link_out
            ln -s ../outside link_dir_out
            ln -s \(PermShell.quote(outside + "/secret")) link_out_abs
            ln -s a/f1 link_in
            setfacl -m u:1001:rwx,m::r-x . && setfacl -d -m u:1001:rwx .
            """)
        try PermShell.sh("setfacl -m u:1000:rw- \(PermShell.quote(outside + "/secret"))")  // an ACL to keep intact too
        return (root, outside)
    }

    // MARK: Upload, ACL plan

    @Test(.enabled(if: PermShell.isRoot)) func uploadACLFixThenUndo() throws {
        let s = TempDir("fix-upload")
        let (root, outside) = try Self.makeUploadTree(s)
        let before = try Self.dump(root)
        let outsideBefore = try Self.dump(outside)
        let need = FolderNeed.readTreeWriteRoot
        let auditBefore = try TreeScanner.audit(root: root, identity: Self.openmsi, need: need)
        #expect(!auditBefore.isClean)
        #expect(try !Self.realCheck(root, need: need).isEmpty)

        let plan = try FolderFixer.plan(kind: .acl, root: root, identity: Self.openmsi, need: need)
        #expect(!plan.willCreateRoot && plan.kind == .acl && plan.uid == 1000 && plan.gid == 1000)
        #expect(plan.entriesToChange == plan.directoriesToChange + plan.filesToChange)
        #expect(plan.directoriesToChange == 12)  // every directory but `inherits` lacks the default entry
        #expect(plan.ownerModeChanges == 2)  // owned/ and owned/x: owner bits, not a named entry
        #expect(plan.privilege.hasPrefix("root (sudo): "), "\(plan.privilege)")
        #expect(plan.unscannableCount == 0)
        #expect(plan.refusedCount == 1 && plan.refused.first?.hasPrefix("pipe: a device, FIFO or socket") == true, "\(plan.refused)")
        #expect(plan.commands.contains { $0.contains("setfacl") && $0.contains("u:1000:r-x,d:u:1000:r-x") })
        #expect(try Self.dump(root) == before, "plan must not write")

        let outcome = try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: need,
                                            journalDirectory: Self.journalDirectory(s))
        #expect(outcome.changed == plan.entriesToChange)
        #expect(outcome.directoriesChanged == plan.directoriesToChange && outcome.filesChanged == plan.filesToChange)
        #expect(outcome.failedCount == 0, "\(outcome.failures)")
        #expect(!outcome.journal.isEmpty && FileManager.default.fileExists(atPath: outcome.journal))

        // The audit and a real process agree: clean.
        let audit = try TreeScanner.audit(root: root, identity: Self.openmsi, need: need)
        #expect(audit.isClean, "\(audit.unusable) \(audit.examples)")
        #expect(try Self.realCheck(root, need: need) == "")
        // Outside the tree nothing moved (the symlinks were not followed).
        #expect(try Self.dump(outside) == outsideBefore)

        // Exact changes where it matters.
        let acls = { (p: String) throws -> PathACLs in try FileACL.read(path: root + "/" + p) }
        #expect(try acls("masked/f").access.text == "u::rw-,u:1000:r--,u:1001:rwx,g::rw-,m::r--,o::---")  // mask raised by r only
        #expect(try acls("owned/x").mode & 0o777 == 0o600 && acls("owned/x").origin == .modeBits)
        #expect(try acls("owned").mode & 0o7777 == 0o700)
        #expect(try acls("a").mode & 0o7777 == 0o2770, "setgid kept")
        #expect(try acls("sticky").mode & 0o7777 == 0o1777 && acls("sticky").origin == .modeBits, "sticky: only a default ACL")
        #expect(try acls("sticky").defaultACL?.text == "u::rwx,u:1000:r-x,g::rwx,m::rwx,o::rwx")
        #expect(try acls("grp/f").origin == .modeBits, "readable through group 27: untouched")
        #expect(try acls("owned/y").origin == .modeBits, "readable through other: untouched")
        #expect(try acls(".").access.perms(.user(1000)) == .rwx && acls(".").defaultACL?.perms(.user(1000)) == [.r, .x])
        #expect(try acls("LOGS").defaultACL?.perms(.user(1000)) == .rwx)
        #expect(try acls("LOGS/DataFileUploadDirectory.log").access.perms(.user(1000)) == [.r, .w])
        // Every directory inherits.
        for dir in try PermShell.sh("cd \(PermShell.quote(root)) && find . -type d").split(separator: "\n") {
            let d = try FileACL.read(path: root + "/" + dir).defaultACL
            #expect(d?.perms(.user(1000))?.isSuperset(of: [.r, .x]) == true, "\(dir): \(d?.text ?? "none")")
        }
        // Files the host adds later inherit the grant.
        try PermShell.sh("cd \(PermShell.quote(root)) && umask 077 && echo new > a/b/new.csv && mkdir a/newdir && echo n > a/newdir/g.csv")
        #expect(try Self.realCheck(root, need: need) == "")
        try PermShell.sh("cd \(PermShell.quote(root)) && rm -r a/b/new.csv a/newdir")

        // The journal.
        let lines = try Self.journalObjects(outcome.journal)
        let header = try #require(lines.first)
        #expect(header["version"] as? Int == 2 && header["kind"] as? String == "acl" && header["root"] as? String == root)
        #expect(header["uid"] as? Int == 1000 && header["gid"] as? Int == 1000 && header["createdRoot"] as? Bool == false)
        #expect(header["rootDev"] is Int && header["rootIno"] is Int && header["startedAt"] is String)
        let records = Self.journalRecords(lines)
        #expect(records.count == outcome.changed)
        // ext4's file handle is type 1: the inode number and the generation, 32 bits each, little-endian.
        #expect(records.allSatisfy { r in
            guard r["btime"] is Int, let h = r["handle"] as? String, let ino = r["ino"] as? Int, h.hasPrefix("1:"), h.count == 18 else { return false }
            let b = Array(h.dropFirst(2).utf8)
            func byte(_ k: Int) -> Int { Int(String(decoding: b[2 * k..<2 * k + 2], as: UTF8.self), radix: 16)! }
            return byte(0) | byte(1) << 8 | byte(2) << 16 | byte(3) << 24 == ino & 0xFFFF_FFFF
        }, "ext4 offers birth time and a file handle holding inode number and generation")
        let recorded = Set(records.compactMap { $0["path"] as? String })
        #expect(recorded.isDisjoint(with: ["grp/f", "owned/y", "inherits", "inherits/ok", "link_out", "pipe"]))
        #expect(recorded.isSuperset(of: [".", "sticky", "a", "a/f000", "masked/f", "owned", "owned/x", "LOGS/uploaded_to_xrd.csv"]))
        #expect(recorded.contains("a/f1") && !recorded.contains("a/linked") && !recorded.contains("a/linked-2"))
        #expect(records.contains { ($0["pathHex"] as? String)?.hasSuffix("ff6e616d652e637376") == true })
        #expect(records.contains { $0["path"] as? String == "we\"ird\nname.csv" })
        let rootRecord = try #require(records.first { $0["path"] as? String == "." })
        #expect(rootRecord["acl"] is String && rootRecord["defaultAcl"] is String && rootRecord["mode"] as? Int == 0o750)
        let f000 = try #require(records.first { $0["path"] as? String == "a/f000" })
        #expect(f000["mode"] as? Int == 0 && f000["acl"] is NSNull && f000["defaultAcl"] is NSNull)
        #expect(lines.last?["complete"] as? Bool == true && lines.last?["changed"] as? Int == outcome.changed
                && lines.last?["records"] as? Int == records.count)
        var st = stat()
        #expect(stat(outcome.journal, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(stat(Self.journalDirectory(s), &st) == 0 && st.st_mode & 0o777 == 0o700)
        #expect(FolderFixer.latestJournal(in: Self.journalDirectory(s)) == outcome.journal)

        // Idempotent: a second plan and apply change nothing and write no journal.
        let again = try FolderFixer.plan(kind: .acl, root: root, identity: Self.openmsi, need: need)
        #expect(again.entriesToChange == 0 && again.privilege == "none: nothing to change")
        let second = try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: need,
                                           journalDirectory: Self.journalDirectory(s))
        #expect(second.changed == 0 && second.journal == "")
        #expect(FolderFixer.latestJournal(in: Self.journalDirectory(s)) == outcome.journal)

        // Undo: byte-identical; twice is harmless.
        let undo = try FolderFixer.undo(journal: outcome.journal)
        #expect(undo.restored == outcome.changed && undo.skipped.isEmpty && !undo.removedCreatedRoot, "\(undo.skipped)")
        #expect(try Self.dump(root) == before)
        #expect(try Self.dump(outside) == outsideBefore)
        let twice = try FolderFixer.undo(journal: outcome.journal)
        #expect(twice.alreadyUndone && twice.restored == 0)
        #expect(try Self.dump(root) == before)
        #expect(try Self.journalObjects(outcome.journal).last?["undone"] as? Bool == true)
    }

    /// Every ACL the fix is about to write passes libacl's `acl_valid` first; one it refuses is not written.
    @Test func aclsAreValidatedByLibaclBeforeTheyAreWritten() {
        let rw = Perm(rawValue: 6), r = Perm(rawValue: 4), none = Perm(rawValue: 0)
        let minimal = FileACL(entries: [ACLEntry(.userObj, rw), ACLEntry(.groupObj, r), ACLEntry(.other, none)])
        let granted = FileACL(entries: [ACLEntry(.userObj, rw), ACLEntry(.user(1000), r), ACLEntry(.groupObj, r),
                                        ACLEntry(.mask, r), ACLEntry(.other, none)])
        #expect(FixVisitor.validatedXattr(minimal) == minimal.xattr)
        #expect(FixVisitor.validatedXattr(granted) == granted.xattr)
        let noMask = FileACL(entries: [ACLEntry(.userObj, rw), ACLEntry(.user(1000), r), ACLEntry(.groupObj, r),
                                       ACLEntry(.other, none)])
        let duplicate = FileACL(entries: [ACLEntry(.userObj, rw), ACLEntry(.user(1000), r), ACLEntry(.user(1000), rw),
                                          ACLEntry(.groupObj, r), ACLEntry(.mask, rw), ACLEntry(.other, none)])
        let noOther = FileACL(entries: [ACLEntry(.userObj, rw), ACLEntry(.groupObj, r)])
        for invalid in [noMask, duplicate, noOther] {
            #expect(FixVisitor.validatedXattr(invalid) == nil, "\(invalid.text)")
            #expect(invalid.problem != nil, "ezmsi's own rule agrees with libacl on \(invalid.text)")
        }
    }

    /// The change time is trusted only with multigrain timestamps: Linux 6.13+ on ext4, xfs, btrfs or tmpfs.
    @Test func changeTimeIsTrustedOnlyWithMultigrainTimestamps() throws {
        #expect(ObjectAccess.kernelAtLeast(6, 13, release: "6.13.0"))
        #expect(ObjectAccess.kernelAtLeast(6, 13, release: "6.18.44-fc-v1045"))
        #expect(ObjectAccess.kernelAtLeast(6, 13, release: "7.0.1"))
        #expect(!ObjectAccess.kernelAtLeast(6, 13, release: "6.12.9-amd64"))
        #expect(!ObjectAccess.kernelAtLeast(6, 13, release: "5.15.0-91-generic"))
        #expect(!ObjectAccess.kernelAtLeast(6, 13, release: "garbage"))
        let proc = open("/proc", O_RDONLY | O_DIRECTORY)
        defer { close(proc) }
        #expect(!ObjectAccess.changeTimeProvesUnchanged(proc), "procfs has no multigrain timestamps")
        let tmp = open("/tmp", O_RDONLY | O_DIRECTORY)
        defer { close(tmp) }
        let type = try #require(ObjectAccess.filesystemType(tmp))
        let multigrain = ObjectAccess.multigrainFilesystems.contains(type)
        #expect(ObjectAccess.changeTimeProvesUnchanged(tmp) == (multigrain && ObjectAccess.kernelAtLeast(6, 13)))
    }

    /// Single-threaded with tiny batches and the fallback routes (no openat2, no statx mount id, no fchmodat2, no
    /// getxattrat, no trusted change time, changes through the O_PATH descriptor and /proc/self/fd only): the same
    /// result.
    @Test(.enabled(if: PermShell.isRoot)) func fallbackSyscallsAndTinyBatches() throws {
        let s = TempDir("fix-fallback")
        let (root, outside) = try Self.makeUploadTree(s)
        let before = try Self.dump(root)
        let outsideBefore = try Self.dump(outside)
        let routes = [FixSys.fchmodat2, ObjectAccess.openat2, ObjectAccess.statxMountID, ObjectAccess.reopenRoute, FixSys.xattrAt,
                      ObjectAccess.changeTimeRoute]
        let saved = (routes.map(\.usable), Xattr.getxattratWorks)
        for r in routes { r.usable = false }
        Xattr.getxattratWorks = false
        defer {
            for (r, v) in zip(routes, saved.0) { r.usable = v }
            Xattr.getxattratWorks = saved.1
        }
        let options = FixOptions(threads: 1, batchLimit: 3)
        let plan = try FolderFixer.plan(kind: .acl, root: root, identity: Self.openmsi, need: .readTreeWriteRoot, options: options)
        let outcome = try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                            journalDirectory: Self.journalDirectory(s), options: options)
        #expect(outcome.changed == plan.entriesToChange && outcome.failedCount == 0, "\(outcome.failures)")
        #expect(outcome.batches >= plan.entriesToChange / 3)
        #expect(try TreeScanner.audit(root: root, identity: Self.openmsi, need: .readTreeWriteRoot).isClean)
        #expect(try Self.realCheck(root, need: .readTreeWriteRoot) == "")
        #expect(try Self.dump(outside) == outsideBefore)
        #expect(try FolderFixer.plan(kind: .acl, root: root, identity: Self.openmsi, need: .readTreeWriteRoot, options: options).entriesToChange == 0)
        let undo = try FolderFixer.undo(journal: outcome.journal)
        #expect(undo.restored == outcome.changed && undo.skipped.isEmpty, "\(undo.skipped)")
        #expect(try Self.dump(root) == before)
    }

    /// The audit a fix predicts from its own walk (what `ezmsi fix --yes` reports after) is the audit a second walk
    /// reads: every count, reason, example and ACL, on a tree with every kind of entry, for both plans.
    @Test(.enabled(if: PermShell.isRoot), arguments: [FixPlanKind.acl, .chown])
    func predictedAuditIsTheRealOne(kind: FixPlanKind) throws {
        let s = TempDir("fix-predict-\(kind.rawValue)")
        let (root, _) = try Self.makeUploadTree(s)
        // Entries that the fix refuses (set-uid, hard-linked) and leaves denied, and ones that need nothing.
        try PermShell.sh("cd \(PermShell.quote(root)) && : > a/suid && chmod 4700 a/suid && mkdir -m 755 open && : > open/ok && chmod 644 open/ok")
        var options = FixOptions(threads: 1)
        options.auditAfter = TreeAuditOptions(threads: 1, containerPath: ProgramTable.containerDataPath)
        let (outcome, predicted) = try FolderFixer.applyAndAudit(kind: kind, root: root, identity: Self.openmsi,
                                                                 need: .readTreeWriteRoot, journalDirectory: Self.journalDirectory(s),
                                                                 options: options)
        #expect(outcome.changed > 0 && outcome.refusedCount > 0)
        let after = try #require(predicted, "every change landed, so the fix predicts the audit")
        let real = try TreeScanner.audit(root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                         options: TreeAuditOptions(threads: 1, containerPath: ProgramTable.containerDataPath))
        func summary(_ a: TreeAudit) -> String {
            var lines = ["root \(a.root)", "d \(a.directories) f \(a.files) l \(a.symlinks) o \(a.others)",
                         "acl \(a.entriesWithACL) ignored \(a.aclsIgnored) unusable \(a.unusableEntries) below \(a.belowDeniedDirectories) irrelevant \(a.ignored)",
                         "outside \(a.symlinksOutside.count) \(a.symlinksOutside.examples.sorted())",
                         "otherfs \(a.otherFilesystems.count) unscannable \(a.unscannable.count) \(a.unscannable.examples.sorted())",
                         "rootDefault \(a.rootDefaultACL?.text ?? "none") rootSecurity \(String(describing: a.rootSecurity))"]
            for (reason, count) in a.reasonsByCount {
                lines.append("\(reason): \(count) \(a.examples[reason, default: []].sorted())")
            }
            for path in a.details.keys.sorted() {
                lines.append("\(path): " + a.details[path]!.map { "\($0.uid):\($0.gid) \(String($0.mode, radix: 8)) \($0.acl ?? "-") \($0.decision.operation)" }.joined(separator: "; "))
            }
            return lines.joined(separator: "\n")
        }
        #expect(summary(after) == summary(real))
        #expect(!real.isClean, "the refused set-uid file stays denied, in both")
        // A fix that leaves something it could not change predicts nothing (the report then walks again).
        try PermShell.sh("cd \(PermShell.quote(root)) && mkdir -m 700 later && : > later/x && chmod 600 later/x")
        FolderFixer.testHookBeforeVerify = { try? PermShell.sh("cd \(PermShell.quote(root)) && mv later/x later/y && : > later/x && chmod 600 later/x") }
        defer { FolderFixer.testHookBeforeVerify = nil }
        let second = try FolderFixer.applyAndAudit(kind: kind, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                                   journalDirectory: Self.journalDirectory(s), options: options)
        #expect(second.outcome.replacedCount > 0 && second.after == nil, "\(second.outcome.replaced)")
    }

    // MARK: Download

    @Test(.enabled(if: PermShell.isRoot)) func downloadACLFixThenUndo() throws {
        let s = TempDir("fix-download")
        let root = s.dir("out", mode: 0o755)
        try PermShell.sh("""
            set -e
            cd \(PermShell.quote(root))
            mkdir -p run1/a run2 && chmod 700 run2 && : > run1/a/file.bin && chmod 600 run1/a/file.bin
            echo log > DataFileDownloadDirectory.log && chmod 644 DataFileDownloadDirectory.log
            mkdir -m 2775 shared && chgrp 27 shared
            mkdir -m 775 mine && chown 1000:1000 mine && chmod 555 mine
            ln -s /etc elsewhere
            """)
        let before = try Self.dump(root)
        let plan = try FolderFixer.plan(kind: .acl, root: root, identity: Self.openmsi, need: .writeTree)
        // 6 directories (all lack the default entry); the log file needs w.
        #expect(plan.directoriesToChange == 6 && plan.filesToChange == 1, "\(plan)")
        let outcome = try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: .writeTree,
                                            journalDirectory: Self.journalDirectory(s))
        #expect(outcome.changed == plan.entriesToChange && outcome.failedCount == 0)
        #expect(try TreeScanner.audit(root: root, identity: Self.openmsi, need: .writeTree).isClean)
        #expect(try Self.realCheck(root, need: .writeTree) == "")
        #expect(try FileACL.read(path: root + "/run1/a/file.bin").origin == .modeBits, "files need nothing for a download")
        #expect(try FileACL.read(path: root + "/mine").mode & 0o777 == 0o755, "owner bits raised")
        // New directories made by the host user inherit rwx for the container.
        try PermShell.sh("mkdir \(PermShell.quote(root))/run3")
        #expect(try Self.realCheck(root, need: .writeTree) == "")
        try PermShell.sh("rmdir \(PermShell.quote(root))/run3")
        #expect(try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: .writeTree,
                                      journalDirectory: Self.journalDirectory(s)).changed == 0)
        let undo = try FolderFixer.undo(journal: outcome.journal)
        #expect(undo.restored == outcome.changed && undo.skipped.isEmpty, "\(undo.skipped)")
        #expect(try Self.dump(root) == before)
    }

    // MARK: chown

    @Test(.enabled(if: PermShell.isRoot)) func chownFixThenUndo() throws {
        let s = TempDir("fix-chown")
        let root = s.dir("data", mode: 0o755)
        try PermShell.sh("""
            set -e
            cd \(PermShell.quote(root))
            mkdir -m 700 locked && : > locked/a && chmod 600 locked/a
            : > suid && chmod 4710 suid
            : > sgid && chmod 2070 sgid
            : > fine && chmod 644 fine
            : > acl && setfacl -m u:1001:rw-,g:27:--- acl && chmod 600 acl
            mkdir -m 2770 g && chgrp 27 g && setfacl -d -m u:1001:rwx g
            mkdir -m 000 mine && chown 1000:1000 mine
            """)
        let before = try Self.dump(root)
        let plan = try FolderFixer.plan(kind: .chown, root: root, identity: Self.openmsi, need: .readTreeWriteRoot)
        #expect(plan.privilege.contains("CAP_CHOWN"))
        #expect(plan.commands.contains { $0.contains("chown -h 1000:1000") })
        let outcome = try FolderFixer.apply(kind: .chown, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                            journalDirectory: Self.journalDirectory(s))
        #expect(outcome.changed == plan.entriesToChange && outcome.changed == plan.chowns + plan.ownerModeChanges)
        #expect(outcome.failedCount == 0, "\(outcome.failures)")
        // Set-uid and set-gid files are never changed: reported, left as they are.
        #expect(outcome.refusedCount == 2 && outcome.refused.allSatisfy { $0.contains("set-uid/set-gid file") }, "\(outcome.refused)")
        var st = stat()
        #expect(lstat(root + "/suid", &st) == 0 && st.st_uid == 0 && st.st_mode & 0o7777 == 0o4710)
        #expect(lstat(root + "/sgid", &st) == 0 && st.st_uid == 0 && st.st_mode & 0o7777 == 0o2070)
        let unusable = try TreeScanner.audit(root: root, identity: Self.openmsi, need: .readTreeWriteRoot)
        #expect(Set(unusable.details.keys) == ["suid", "sgid"], "\(unusable.details.keys)")
        // Once the owner clears the bits, a second fix takes them (and nothing else).
        try PermShell.sh("chmod u-s,g-s \(PermShell.quote(root))/suid \(PermShell.quote(root))/sgid")
        let second = try FolderFixer.apply(kind: .chown, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                           journalDirectory: Self.journalDirectory(s))
        #expect(second.changed == 2 && second.refusedCount == 0, "\(second)")
        #expect(try TreeScanner.audit(root: root, identity: Self.openmsi, need: .readTreeWriteRoot).isClean)
        #expect(try Self.realCheck(root, need: .readTreeWriteRoot) == "")
        #expect(lstat(root + "/suid", &st) == 0 && st.st_uid == 1000 && st.st_mode & 0o7777 == 0o710)
        #expect(lstat(root + "/fine", &st) == 0 && st.st_uid == 0, "readable entries keep their owner")
        #expect(lstat(root + "/mine", &st) == 0 && st.st_mode & 0o777 == 0o500, "the uid owns it: owner bits only")
        #expect(try FileACL.read(path: root + "/acl").access.text.contains("u:1001:rw-"), "no ACL changes")
        #expect(try FileACL.read(path: root + "/g").defaultACL?.perms(.user(1000)) == nil)
        #expect(try FolderFixer.plan(kind: .chown, root: root, identity: Self.openmsi, need: .readTreeWriteRoot).entriesToChange == 0)
        #expect(try FolderFixer.undo(journal: second.journal).restored == 2)
        let undo = try FolderFixer.undo(journal: outcome.journal)
        #expect(undo.restored == outcome.changed && undo.skipped.isEmpty, "\(undo.skipped)")
        try PermShell.sh("chmod 4710 \(PermShell.quote(root))/suid && chmod 2070 \(PermShell.quote(root))/sgid")
        #expect(try Self.dump(root) == before)
    }

    // MARK: Killed midway

    static func makeWideTree(_ s: TempDir, dirs: Int = 12, files: Int = 40) throws -> String {
        let root = s.dir("wide", mode: 0o750)
        try PermShell.sh("""
            set -e
            cd \(PermShell.quote(root))
            for d in $(seq 1 \(dirs)); do
              mkdir -m 750 d$d
              for f in $(seq 1 \(files)); do : > d$d/f$f; done
              chmod 640 d$d/*
            done
            setfacl -m u:1001:r-x d1 && setfacl -m u:1001:r--,m::r-- d2/f1 && setfacl -d -m g:27:r-x d3
            mkdir -m 750 LOGS
            """)
        return root
    }

    /// The test hook aborts after N batches (as a kill between batches would): undo restores everything.
    @Test(.enabled(if: PermShell.isRoot), arguments: [1, 2])
    func killedBetweenBatchesIsUndone(threads: Int) throws {
        let s = TempDir("fix-kill")
        let root = try Self.makeWideTree(s)
        let before = try Self.dump(root)
        struct Killed: Error {}
        FolderFixer.testHookAfterBatch = { n in if n >= 4 { throw Killed() } }
        defer { FolderFixer.testHookAfterBatch = nil }
        let stopped = #expect(throws: FixStopped.self) {
            try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                  journalDirectory: Self.journalDirectory(s), options: FixOptions(threads: threads, batchLimit: 20))
        }
        FolderFixer.testHookAfterBatch = nil
        let journal = try #require(FolderFixer.latestJournal(in: Self.journalDirectory(s)))
        #expect(stopped?.journal == journal, "a stopped fix names its own journal (the `undo with:` hint)")
        let lines = try Self.journalObjects(journal)
        #expect(!lines.contains { $0["complete"] != nil }, "no completion line")
        #expect(try Self.dump(root) != before, "some batches were applied")
        // A record cut short by the kill at the end of the file.
        let fd = open(journal, O_WRONLY | O_APPEND)
        _ = "{\"path\":\"d9/f3\",\"type\":\"f\",\"dev\":12".withCString { write(fd, $0, strlen($0)) }
        close(fd)
        // A cut line is damage unless the user says the fix was killed: refused, nothing changed; then accepted.
        let cutBefore = try Self.dump(root)
        #expect(throws: FixError.self) { try FolderFixer.undo(journal: journal) }
        #expect(try Self.dump(root) == cutBefore)
        let undo = try FolderFixer.undo(journal: journal, acceptCut: true)
        #expect(undo.skipped.isEmpty, "\(undo.skipped)")
        #expect(undo.interrupted)
        #expect(undo.restored >= 4 * 20 / 2)
        #expect(try Self.dump(root) == before)
        // The fix can then run to the end.
        let outcome = try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                            journalDirectory: Self.journalDirectory(s), options: FixOptions(threads: threads, batchLimit: 20))
        #expect(outcome.changed == 12 * 40 + 14)
        #expect(try TreeScanner.audit(root: root, identity: Self.openmsi, need: .readTreeWriteRoot).isClean)
        _ = try FolderFixer.undo(journal: outcome.journal)
        #expect(try Self.dump(root) == before)
    }

    /// A kill in the middle of a batch (journaled and synced, only part of its changes made): undo restores what was
    /// changed, and the records of entries not yet changed restore nothing (they already match).
    @Test(.enabled(if: PermShell.isRoot), arguments: [1, 2])
    func killedMidBatchIsUndone(threads: Int) throws {
        let s = TempDir("fix-midbatch")
        let root = try Self.makeWideTree(s, dirs: 4, files: 50)
        let before = try Self.dump(root)
        struct Killed: Error {}
        FolderFixer.testHookBeforeChange = { n in if n == 77 { throw Killed() } }
        defer { FolderFixer.testHookBeforeChange = nil }
        #expect(throws: FixStopped.self) {
            try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                  journalDirectory: Self.journalDirectory(s), options: FixOptions(threads: threads, batchLimit: 50))
        }
        FolderFixer.testHookBeforeChange = nil
        let journal = try #require(FolderFixer.latestJournal(in: Self.journalDirectory(s)))
        let records = try Self.journalObjects(journal).filter { $0["type"] != nil }
        let undo = try FolderFixer.undo(journal: journal)  // killed between writes: no cut, no flag needed
        #expect(undo.skipped.isEmpty, "\(undo.skipped)")
        // One thread stops exactly at change 77; with two, the other worker may finish a few changes of its own
        // batch before it sees the abort, so only a lower bound holds there.
        if threads == 1 {
            #expect(undo.restored >= 76 && undo.restored <= 78 && undo.alreadyOriginal > 0, "\(undo)")
        } else {
            #expect(undo.restored >= 76 && undo.restored < records.count, "\(undo)")
        }
        #expect(undo.restored + undo.alreadyOriginal == records.count)
        #expect(try Self.dump(root) == before)
    }

    /// Entries journaled whose change failed (immutable files: EPERM even for root) are reported, and restore nothing.
    @Test(.enabled(if: PermShell.isRoot)) func failedChangesAreReportedAndRestoreNothing() throws {
        let s = TempDir("fix-midbatch")
        let root = try Self.makeWideTree(s, dirs: 3, files: 30)
        let before = try Self.dump(root)
        // Simulate: journal everything (batch of all), but make only some changes, by making some fail on purpose:
        // chattr +i makes those entries immutable (EPERM even for root) after they are journaled.
        try PermShell.sh("chattr +i \(PermShell.quote(root))/d2/f5 \(PermShell.quote(root))/d3/f7")
        let outcome = try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                            journalDirectory: Self.journalDirectory(s), options: FixOptions(threads: 1, batchLimit: 1000))
        #expect(outcome.failedCount == 2 && outcome.failures.allSatisfy { $0.contains("Operation not permitted") }, "\(outcome.failures)")
        try PermShell.sh("chattr -i \(PermShell.quote(root))/d2/f5 \(PermShell.quote(root))/d3/f7")
        let undo = try FolderFixer.undo(journal: outcome.journal)
        #expect(undo.restored == outcome.changed && undo.alreadyOriginal == 2 && undo.skipped.isEmpty, "\(undo)")
        #expect(try Self.dump(root) == before)
    }

    // MARK: Missing root

    @Test(.enabled(if: PermShell.isRoot)) func missingRootIsCreatedAndUndoRemovesIt() throws {
        let s = TempDir("fix-missing")
        let root = s.path + "/new-folder"
        let plan = try FolderFixer.plan(kind: .acl, root: root, identity: Self.openmsi, need: .writeTree)
        #expect(plan.willCreateRoot && plan.entriesToChange == 1 && plan.commands.contains { $0.hasPrefix("mkdir -m 0755 -- ") })
        #expect(!FileManager.default.fileExists(atPath: root))
        let outcome = try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: .writeTree,
                                            journalDirectory: Self.journalDirectory(s))
        #expect(outcome.createdRoot && outcome.changed == 1)
        #expect(try Self.realCheck(root, need: .writeTree) == "")
        let lines = try Self.journalObjects(outcome.journal)
        #expect(lines[0]["createdRoot"] as? Bool == true && lines[0]["rootDev"] is NSNull)
        #expect(lines[1]["created"] as? Bool == true && lines[1]["rootIno"] is Int)
        let undo = try FolderFixer.undo(journal: outcome.journal)
        #expect(undo.removedCreatedRoot && undo.restored == 1)
        #expect(!FileManager.default.fileExists(atPath: root))

        // Not empty any more: undo restores its permissions but keeps it.
        let again = try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: .writeTree,
                                          journalDirectory: Self.journalDirectory(s))
        try PermShell.asIdentity(Self.openmsi, script: "echo x > \(PermShell.quote(root))/downloaded.bin")
        let kept = try FolderFixer.undo(journal: again.journal)
        #expect(!kept.removedCreatedRoot && kept.skipped.count == 1 && FileManager.default.fileExists(atPath: root))

        // The parent's default ACL is inherited by the new folder: the plan simulates it exactly.
        let parent = s.dir("parent", mode: 0o755)
        try PermShell.sh("setfacl -d -m u:1000:rwx,u:1001:r-x \(PermShell.quote(parent))")
        let inner = parent + "/inner"
        let p2 = try FolderFixer.plan(kind: .acl, root: inner, identity: Self.openmsi, need: .writeTree)
        let o2 = try FolderFixer.apply(kind: .acl, root: inner, identity: Self.openmsi, need: .writeTree,
                                       journalDirectory: Self.journalDirectory(s))
        #expect(p2.entriesToChange == o2.changed && p2.aclGrants == 1 && p2.defaultACLs == 0, "\(p2)")
        #expect(try Self.realCheck(inner, need: .writeTree) == "")
        #expect(try FolderFixer.undo(journal: o2.journal).removedCreatedRoot)
        #expect(throws: FixError.parentMissing(s.path + "/no/such")) {
            try FolderFixer.plan(kind: .acl, root: s.path + "/no/such/dir", identity: Self.openmsi, need: .writeTree)
        }
    }

    // MARK: Safety

    @Test(.enabled(if: PermShell.isRoot)) func staysOnTheFilesystemAndSkipsReplacedEntries() throws {
        let s = TempDir("fix-mount")
        let root = s.dir("data", mode: 0o700)
        s.dir("data/mnt")
        s.file("data/a", mode: 0o600)
        s.file("data/b", mode: 0o600)
        let mounted = try PermShell.run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m,mode=0700", "none", root + "/mnt"])
        try #require(mounted.status == 0, "mount tmpfs: \(mounted.stderr)")
        defer { _ = try? PermShell.run("/bin/umount", [root + "/mnt"]) }
        try PermShell.sh("echo x > \(root)/mnt/inner && chmod 600 \(root)/mnt/inner")
        let plan = try FolderFixer.plan(kind: .acl, root: root, identity: Self.openmsi, need: .readTreeWriteRoot)
        #expect(plan.otherFilesystems == ["mnt"] && plan.entriesToChange == 3)
        let outcome = try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                            journalDirectory: Self.journalDirectory(s))
        #expect(outcome.changed == 3)
        var st = stat()
        #expect(stat(root + "/mnt", &st) == 0 && st.st_mode & 0o777 == 0o700)
        #expect(try FileACL.read(path: root + "/mnt/inner").origin != .stored)

        // An entry replaced after the fix (new inode) is left alone and reported; the rest is restored.
        // (Created while the old one still exists: a new inode. A deleted file's inode number can be reused at once,
        // which device+inode cannot tell apart.)
        try PermShell.sh(": > \(root)/b.new && chmod 644 \(root)/b.new && mv \(root)/b.new \(root)/b")
        let undo = try FolderFixer.undo(journal: outcome.journal)
        #expect(undo.restored == 2 && undo.skipped.count == 1 && undo.skipped[0].hasPrefix("b: replaced"), "\(undo.skipped)")
        #expect(stat(root + "/a", &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(try FileACL.read(path: root + "/a").origin == .modeBits)

        // A root replaced since the fix: undo refuses.
        let second = try FolderFixer.apply(kind: .acl, root: root, identity: Self.openmsi, need: .readTreeWriteRoot,
                                           journalDirectory: Self.journalDirectory(s))
        try PermShell.sh("umount \(root)/mnt && mv \(root) \(root).old && mkdir \(root)")
        #expect(throws: FixError.rootChanged(root)) { try FolderFixer.undo(journal: second.journal) }
        #expect(throws: FixError.notATree(.readFileWriteParent)) {
            try FolderFixer.plan(kind: .acl, root: root, identity: Self.openmsi, need: .readFileWriteParent)
        }
    }

    // MARK: Without root

    /// The host user is the container's uid (1000) and owns the tree: the fix needs no privilege. A directory the owner
    /// itself cannot list (0300) gets its owner bits before the walk enters it, so its content is fixed in the same
    /// run. A file that belongs to root is reported (EPERM) and the rest done. Runs this test binary as uid 1000.
    @Test(.enabled(if: PermShell.isRoot)) func nonRootOwnerFixesItsOwnTree() throws {
        let s = TempDir("fix-nonroot")
        let mine = s.dir("mine", mode: 0o700)
        let mixed = s.dir("mixed", mode: 0o755)
        let journals = s.dir("journals", mode: 0o700)
        try PermShell.sh("""
            set -e
            cd \(PermShell.quote(mine))
            : > a && chmod 600 a && mkdir -m 700 locked && : > locked/f && chmod 200 locked/f && chmod 300 locked
            cd \(PermShell.quote(mixed))
            : > mine.csv && chmod 600 mine.csv && : > roots.csv && chmod 600 roots.csv
            chown -R 1000:1000 \(PermShell.quote(mine)) \(PermShell.quote(mixed)) \(PermShell.quote(journals))
            chown 0:0 roots.csv
            """)
        let beforeMine = try Self.dump(mine), beforeMixed = try Self.dump(mixed)
        var exe = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &exe, 4095)
        try #require(n > 0)
        let binary = String(cString: exe)
        let out = try PermShell.run("/usr/bin/env", [
            "EZMSI_FIX_NONROOT_MINE=\(mine)", "EZMSI_FIX_NONROOT_MIXED=\(mixed)", "EZMSI_FIX_NONROOT_JOURNALS=\(journals)",
            "/usr/bin/setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--",
            binary, "--testing-library", "swift-testing", "--filter", "nonRootInner",
        ], timeout: 300)
        #expect(out.status == 0 && (out.stdout + out.stderr).contains("nonRootInner() passed"), "\(out.stdout)\n\(out.stderr)")
        #expect(try Self.dump(mine) == beforeMine)
        #expect(try Self.dump(mixed) == beforeMixed)
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["EZMSI_FIX_NONROOT_MINE"] != nil))
    func nonRootInner() throws {
        let env = ProcessInfo.processInfo.environment
        let mine = env["EZMSI_FIX_NONROOT_MINE"]!, mixed = env["EZMSI_FIX_NONROOT_MIXED"]!
        let journals = env["EZMSI_FIX_NONROOT_JOURNALS"]!
        #expect(geteuid() == 1000)
        let id = ContainerIdentity(uid: 1000, gid: 1000, groups: [27])
        let plan = try FolderFixer.plan(kind: .acl, root: mine, identity: id, need: .readTreeWriteRoot)
        #expect(plan.privilege == "none: you own every entry to change", "\(plan.privilege)")
        #expect(plan.entriesToChange == 2 && plan.unscannableCount == 1, "\(plan)")  // it cannot look into locked/ yet
        let outcome = try FolderFixer.apply(kind: .acl, root: mine, identity: id, need: .readTreeWriteRoot, journalDirectory: journals)
        #expect(outcome.changed == 3 && outcome.failedCount == 0 && outcome.unscannableCount == 0, "\(outcome)")
        #expect(try TreeScanner.audit(root: mine, identity: id, need: .readTreeWriteRoot).isClean)
        #expect(try FolderFixer.plan(kind: .acl, root: mine, identity: id, need: .readTreeWriteRoot).entriesToChange == 0)
        let undo = try FolderFixer.undo(journal: outcome.journal)
        #expect(undo.restored == 3 && undo.skipped.isEmpty, "\(undo)")

        let p2 = try FolderFixer.plan(kind: .acl, root: mixed, identity: id, need: .readTreeWriteRoot)
        #expect(p2.privilege == "root (sudo): 1 entry belongs to others", "\(p2.privilege)")
        let o2 = try FolderFixer.apply(kind: .acl, root: mixed, identity: id, need: .readTreeWriteRoot, journalDirectory: journals)
        #expect(o2.failedCount == 1 && o2.failures.first?.hasPrefix("roots.csv: set ACL: Operation not permitted") == true, "\(o2)")
        #expect(o2.changed == p2.entriesToChange - 1)
        let u2 = try FolderFixer.undo(journal: o2.journal)
        #expect(u2.restored == o2.changed && u2.alreadyOriginal == 1 && u2.skipped.isEmpty, "\(u2)")
    }

    @Test(.enabled(if: PermShell.isRoot)) func latestJournalIsTheNewest() throws {
        let s = TempDir("fix-journals")
        let dir = Self.journalDirectory(s)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for (name, started) in [("fix-20240101-000000-5.jsonl", "2024-01-01T00:00:00.000Z"),
                                ("fix-20240301-000000-7.jsonl", "2024-03-01T00:00:00.100Z"),
                                ("fix-20240301-000000-7-2.jsonl", "2024-03-01T00:00:00.900Z"),
                                ("fix-20240201-000000-9.jsonl", "2024-02-01T00:00:00.000Z")] {
            try "{\"version\":1,\"startedAt\":\"\(started)\"}\n".write(toFile: dir + "/" + name, atomically: false, encoding: .utf8)
        }
        try "x".write(toFile: dir + "/notes.txt", atomically: false, encoding: .utf8)
        #expect(FolderFixer.latestJournal(in: dir) == dir + "/fix-20240301-000000-7-2.jsonl")
        #expect(FolderFixer.latestJournal(in: s.path + "/none") == nil)
    }
}
