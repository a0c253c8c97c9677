import Foundation
import Glibc
import Testing
@testable import EZMSICore

extension Adversarial {
    /// Whether a line of the fix's output names `name` and says why it was left alone (`words`).
    static func reports(_ output: String, _ name: String, _ words: [String]) -> Bool {
        output.split(separator: "\n").contains { line in
            let l = line.lowercased()
            return line.contains(name) && words.contains { l.contains($0) }
        }
    }

    /// Class 2: hard links inside the folder to files outside it: one made by root before (a pre-existing link to a
    /// root 0600 file), one made by the attacker to its own outside file (protected_hardlinks allows that). Neither
    /// outside file may change (stat, ACL and content, after the fix and after undo) and the fix reports both links
    /// as skipped.
    @Suite struct HardLinks {
        @Test(arguments: ["acl", "chown"]) func hardLinksToOutsideFilesAreSkipped(plan: String) throws {
            let s = try AdvScratch("hardlink-\(plan)")
            let outside = s.path + "/outside", data = s.path + "/data"
            try Adversary.sh("""
                set -e
                mkdir -m 0755 \(Adversary.q(outside)) \(Adversary.q(data)); chown 1000:1000 \(Adversary.q(data))
                printf 'root secret' > \(Adversary.q(outside))/root-secret; chmod 600 \(Adversary.q(outside))/root-secret
                setfacl -m u:1001:r-- \(Adversary.q(outside))/root-secret
                printf 'attacker' > \(Adversary.q(outside))/attacker-own; chown 1000:1000 \(Adversary.q(outside))/attacker-own
                chmod 0200 \(Adversary.q(outside))/attacker-own
                ln \(Adversary.q(outside))/root-secret \(Adversary.q(data))/pre-existing.csv
                printf in > \(Adversary.q(data))/in.csv; chmod 600 \(Adversary.q(data))/in.csv
                """)
            let made = try s.asAttacker("/bin/ln", [outside + "/attacker-own", data + "/planted.csv"])
            try #require(made.status == 0, "the attacker could not link its own file (protected_hardlinks?): \(made.stderr)")
            let sentinels = [outside + "/root-secret", outside + "/attacker-own"]
            let before = try s.fingerprint(sentinels)

            let fix = try s.fix(data, plan: plan)
            #expect(fix.status == 0 || fix.status == 1, "fix exited \(fix.status): \(fix.stderr.prefix(400))")
            let afterFix = try s.fingerprint(sentinels)
            let untouchedAfterFix = afterFix == before
            #expect(untouchedAfterFix, "\(plan): the fix changed files outside the folder through hard links: \(AdvScratch.changes(from: before, to: afterFix))")
            let output = fix.stdout + fix.stderr
            for link in ["pre-existing.csv", "planted.csv"] {
                #expect(Adversarial.reports(output, link, ["skip", "hard link", "hardlink", "hard-link", "left alone", "outside", "not changed"]),
                        "\(plan): the fix did not report \(link) (a hard link to a file outside the folder) as skipped:\n\(output.prefix(1500))")
            }
            let undo = try s.undo()
            let afterUndo = try s.fingerprint(sentinels)
            let untouchedAfterUndo = afterUndo == before
            #expect(untouchedAfterUndo, "\(plan): after undo, files outside the folder differ: \(AdvScratch.changes(from: before, to: afterUndo)); undo: \(undo.stdout)\(undo.stderr)")
        }
    }

    /// Class 3: a bind mount of an outside directory from the same file system (same st_dev) inside the folder, in a
    /// private mount namespace where the fix and the undo run: the outside directory and its files do not change, and
    /// the fix reports the mount point as another mount.
    @Suite struct BindMount {
        @Test(arguments: ["acl", "chown"]) func bindMountOfAnOutsideDirectoryIsNotEntered(plan: String) throws {
            let s = try AdvScratch("bind-\(plan)")
            let outside = s.path + "/outside", data = s.path + "/data"
            try Adversary.sh("""
                set -e
                mkdir -m 0700 \(Adversary.q(outside)) \(Adversary.q(outside))/od
                printf o1 > \(Adversary.q(outside))/o1; chmod 600 \(Adversary.q(outside))/o1
                printf o2 > \(Adversary.q(outside))/od/o2; chmod 4750 \(Adversary.q(outside))/od/o2
                mkdir -m 0755 \(Adversary.q(data)) \(Adversary.q(data))/mnt
                printf in > \(Adversary.q(data))/in.csv; chmod 600 \(Adversary.q(data))/in.csv
                """)
            let sentinels = [outside, outside + "/o1", outside + "/od", outside + "/od/o2"]
            let before = try s.fingerprint(sentinels)
            let afterFixFile = s.path + "/outside-after-fix", undoFile = s.path + "/undo-output"
            // In the namespace: mount, the fix (the command line appended, "$@"), the fingerprint, the undo.
            let script = """
                mount --bind \(Adversary.q(outside)) \(Adversary.q(data))/mnt || exit 90
                "$@"; rc=$?
                { \(AdvScratch.fingerprintScript(sentinels)); } > \(Adversary.q(afterFixFile))
                XDG_STATE_HOME=\(Adversary.q(s.state)) "$1" undo > \(Adversary.q(undoFile)) 2>&1
                exit $rc
                """
            let fix = try s.fix(data, plan: plan, prefix: ["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/bash", "-c", script, "bash"])
            try #require(fix.status != 90, "bind mount failed: \(fix.stderr)")
            #expect(fix.status == 0 || fix.status == 1, "fix exited \(fix.status): \(fix.stderr.prefix(400))")
            let afterFix = (try? String(contentsOfFile: afterFixFile, encoding: .utf8)) ?? "(no fingerprint)"
            let untouchedAfterFix = afterFix == before
            #expect(untouchedAfterFix, "\(plan): the fix changed the bind-mounted outside directory: \(AdvScratch.changes(from: before, to: afterFix))")
            let afterUndo = try s.fingerprint(sentinels)
            let undoOutput = (try? String(contentsOfFile: undoFile, encoding: .utf8)) ?? ""
            let untouchedAfterUndo = afterUndo == before
            #expect(untouchedAfterUndo, "\(plan): after undo the outside directory differs: \(AdvScratch.changes(from: before, to: afterUndo)); undo: \(undoOutput)")
            let output = fix.stdout + fix.stderr
            #expect(Adversarial.reports(output, "mnt", ["mount", "file system", "filesystem"]),
                    "\(plan): the fix did not report mnt as another mount:\n\(output.prefix(1500))")
            let mounts = try String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)
            #expect(!mounts.contains(data), "a mount was left behind")
        }
    }
}
