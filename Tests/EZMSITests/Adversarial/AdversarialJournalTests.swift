import Foundation
import Glibc
import Testing
@testable import EZMSICore

extension Adversarial {
    /// Replaces the value of `"key":<number>` (or the given string field) in one JSON line; throws when the journal
    /// format no longer has it (then this test needs updating, not passing).
    static func setField(_ line: String, _ key: String, _ value: String) throws -> String {
        guard let r = line.range(of: "\"\(key)\":(\"[^\"]*\"|-?[0-9]+|null|true|false)", options: .regularExpression) else {
            throw TestFailure("the journal line has no field \(key): \(line.prefix(200)) (update the adversarial test)")
        }
        return line.replacingCharacters(in: r, with: "\"\(key)\":\(value)")
    }

    /// Whether `message` names the journal and its line `line` (`PATH:LINE`, or the path and `line LINE`).
    static func namesLine(_ message: String, path: String, line: Int) -> Bool {
        message.contains("\(path):\(line)") || (message.contains(path) && message.contains("line \(line)"))
    }

    /// Class 6: planted journals and symlinked state folders. The attacker gets root's `ezmsi undo` to read a journal it
    /// wrote: derived from a real one (same format), it gives root's file to uid 1000 and makes the attacker's own
    /// script root-owned set-uid. Undo must refuse (exit 3) and change nothing when the journal is owned by uid 1000,
    /// group- or other-writable, a symlink, or reached through a symlinked state folder; a fix must not write through a
    /// symlinked state folder (its target stays untouched).
    @Suite struct PlantedJournals {
        @Test func plantedJournalsAreRefused() throws {
            let s = try AdvScratch("planted")
            let vroot = s.path + "/vroot", attackerDir = s.path + "/attacker"
            try Adversary.sh("""
                set -e
                mkdir -m 0755 \(Adversary.q(vroot)); mkdir -m 0755 \(Adversary.q(attackerDir)); chown 1000:1000 \(Adversary.q(attackerDir))
                printf 'root data' > \(Adversary.q(vroot))/rootfile; chmod 600 \(Adversary.q(vroot))/rootfile
                printf '#!/bin/sh\\nid\\n' > \(Adversary.q(vroot))/victim; chown 1000:1000 \(Adversary.q(vroot))/victim; chmod 0755 \(Adversary.q(vroot))/victim
                """)
            let reset = """
                cd \(Adversary.q(vroot)) && chown 0:0 . rootfile && chmod 0755 . && chmod 0600 rootfile && setfacl -b . rootfile && setfacl -k . &&
                chown 1000:1000 victim && chmod 0755 victim && setfacl -b victim
                """
            // A real journal of this folder (chown plan: "." and rootfile), undone, then rewritten by the attacker.
            let real = try s.fix(vroot, plan: "chown", format: "json")
            try #require(real.status == 0 || real.status == 1, "fix: \(real.stdout.prefix(400))\(real.stderr)")
            let realJournal = try #require((try decodeJSON(real.stdout)["applied"] as? [String: Any])?["journal"] as? String)
            let realText = try String(contentsOfFile: realJournal, encoding: .utf8)
            _ = try s.undo(realJournal)
            try Adversary.sh(reset)
            var lines = realText.split(separator: "\n").map(String.init).filter { !$0.contains("\"undone\"") }
            let recordIndex = try #require(lines.firstIndex { $0.contains("\"name\":\"rootfile\"") }, "no rootfile record in \(realText)")
            var victimStat = stat()
            try #require(lstat(vroot + "/victim", &victimStat) == 0)
            lines[0] = try Adversarial.setField(lines[0], "startedAt", "\"2099-01-01T00:00:00.000Z\"")
            let stolen = try Adversarial.setField(try Adversarial.setField(lines[recordIndex], "uid", "1000"), "gid", "1000")
            var suid = try Adversarial.setField(lines[recordIndex], "name", "\"victim\"")
            suid = try Adversarial.setField(suid, "ino", String(victimStat.st_ino))
            suid = try Adversarial.setField(try Adversarial.setField(suid, "uid", "0"), "gid", "0")
            suid = try Adversarial.setField(suid, "mode", String(0o4755))
            lines[recordIndex] = stolen
            lines.insert(suid, at: recordIndex + 1)
            let planted = lines.joined(separator: "\n") + "\n"
            let name = "fix-20990101-000000-1.jsonl"
            let sentinels = [vroot, vroot + "/rootfile", vroot + "/victim"]
            var before = try s.fingerprint(sentinels)

            struct Variant { var name: String; var env: [String: String]; var removing: [String]; var journal: String; var setup: String }
            let q = Adversary.q
            func stateDir(_ v: String) -> String { s.path + "/state-" + v }
            let variants: [Variant] = [
                Variant(name: "journal owned by uid 1000", env: ["XDG_STATE_HOME": stateDir("owned")], removing: [],
                        journal: stateDir("owned") + "/ezmsi/journals/" + name,
                        setup: "install -d -m 0700 \(q(stateDir("owned") + "/ezmsi/journals")) && cat > \(q(stateDir("owned") + "/ezmsi/journals/" + name)) && chown 1000:1000 \(q(stateDir("owned") + "/ezmsi/journals/" + name)) && chmod 0600 \(q(stateDir("owned") + "/ezmsi/journals/" + name))"),
                Variant(name: "journal group-writable (group 1000)", env: ["XDG_STATE_HOME": stateDir("group")], removing: [],
                        journal: stateDir("group") + "/ezmsi/journals/" + name,
                        setup: "install -d -m 0700 \(q(stateDir("group") + "/ezmsi/journals")) && cat > \(q(stateDir("group") + "/ezmsi/journals/" + name)) && chgrp 1000 \(q(stateDir("group") + "/ezmsi/journals/" + name)) && chmod 0660 \(q(stateDir("group") + "/ezmsi/journals/" + name))"),
                Variant(name: "journal other-writable", env: ["XDG_STATE_HOME": stateDir("other")], removing: [],
                        journal: stateDir("other") + "/ezmsi/journals/" + name,
                        setup: "install -d -m 0700 \(q(stateDir("other") + "/ezmsi/journals")) && cat > \(q(stateDir("other") + "/ezmsi/journals/" + name)) && chmod 0606 \(q(stateDir("other") + "/ezmsi/journals/" + name))"),
                Variant(name: "journal is a symlink to the attacker's file", env: ["XDG_STATE_HOME": stateDir("link")], removing: [],
                        journal: stateDir("link") + "/ezmsi/journals/" + name,
                        setup: "install -d -m 0700 \(q(stateDir("link") + "/ezmsi/journals")) && cat > \(q(attackerDir + "/j.jsonl")) && chown 1000:1000 \(q(attackerDir + "/j.jsonl")) && ln -sfn \(q(attackerDir + "/j.jsonl")) \(q(stateDir("link") + "/ezmsi/journals/" + name))"),
                Variant(name: "state folder ($HOME/.local/state/ezmsi) is a symlink to the attacker's folder",
                        env: ["HOME": s.path + "/home"], removing: ["XDG_STATE_HOME"],
                        journal: s.path + "/home/.local/state/ezmsi/journals/" + name,
                        setup: "install -d -m 0755 \(q(s.path + "/home/.local/state")) && install -d -o 1000 -g 1000 -m 0755 \(q(attackerDir + "/state/journals")) && cat > \(q(attackerDir + "/state/journals/" + name)) && chown 1000:1000 \(q(attackerDir + "/state/journals/" + name)) && chmod 0600 \(q(attackerDir + "/state/journals/" + name)) && ln -sfn \(q(attackerDir + "/state")) \(q(s.path + "/home/.local/state/ezmsi"))"),
                Variant(name: "journals folder is a symlink to the attacker's folder", env: ["XDG_STATE_HOME": stateDir("dirlink")], removing: [],
                        journal: stateDir("dirlink") + "/ezmsi/journals/" + name,
                        setup: "install -d -m 0700 \(q(stateDir("dirlink") + "/ezmsi")) && install -d -o 1000 -g 1000 -m 0755 \(q(attackerDir + "/jdir")) && cat > \(q(attackerDir + "/jdir/" + name)) && chown 1000:1000 \(q(attackerDir + "/jdir/" + name)) && ln -sfn \(q(attackerDir + "/jdir")) \(q(stateDir("dirlink") + "/ezmsi/journals"))"),
            ]
            var failures: [String] = []
            for v in variants {
                for explicit in [false, true] {
                    // Planted afresh each time (an undo that ran marked it undone).
                    let setup = try Subprocess.runRaw("/bin/bash", ["-c", v.setup], input: Array(planted.utf8))
                    try #require(setup.status == 0, "\(v.name): setup failed: \(setup.stderr)")
                    let how = explicit ? "ezmsi undo \(v.journal)" : "ezmsi undo (newest journal)"
                    let out = try ezmsi(["undo"] + (explicit ? [v.journal] : []), env: v.env, removing: v.removing)
                    let now = try s.fingerprint(sentinels)
                    let privileged = try s.rootPrivileged(vroot)
                    if let after = try? String(contentsOfFile: v.journal, encoding: .utf8), after != planted {
                        failures.append("\(v.name), \(how): undo wrote to the planted journal (\(after.utf8.count - planted.utf8.count) bytes more)")
                    }
                    if out.status != 3 || out.stderr.isEmpty {
                        failures.append("\(v.name), \(how): exited \(out.status), not 3 (stdout: \(out.stdout.prefix(200)) stderr: \(out.stderr.prefix(200)))")
                    }
                    if now != before || !privileged.isEmpty {
                        failures.append("\(v.name), \(how): the planted journal was applied: \(privileged.isEmpty ? "" : "root set-uid \(privileged); ")" +
                                        AdvScratch.changes(from: before, to: now))
                        // Put the folder back for the next run (its ctimes move, so fingerprint it again).
                        try Adversary.sh(reset)
                        before = try s.fingerprint(sentinels)
                    }
                }
            }

            // A fix must not write through a symlinked state folder: its target stays as it was.
            let data = s.path + "/data"
            try Adversary.sh("mkdir -m 0755 \(q(data)) && printf d > \(q(data))/f.csv && chmod 600 \(q(data))/f.csv")
            for (label, env, removing, target) in [
                ("$HOME/.local/state/ezmsi a symlink", ["HOME": s.path + "/home"], ["XDG_STATE_HOME"], attackerDir + "/state"),
                ("$XDG_STATE_HOME/ezmsi/journals a symlink", ["XDG_STATE_HOME": stateDir("dirlink")], [String](), attackerDir + "/jdir"),
            ] {
                let listing = { try Adversary.sh("find \(q(target)) -printf '%p %m %u %g %s %T@\\n' | sort") }
                let targetBefore = try listing()
                let fix = try ezmsi(["fix", "--yes", "--plan", "acl"] + s.deploymentArgs(folder: data), env: env, removing: removing)
                let targetAfter = try listing()
                if targetAfter != targetBefore {
                    failures.append("fix --yes with \(label) wrote through it (exit \(fix.status)):\nbefore:\n\(targetBefore)after:\n\(targetAfter)")
                }
                _ = try? Adversary.sh("setfacl -b \(q(data)) \(q(data))/f.csv; setfacl -k \(q(data))")
            }
            #expect(failures.isEmpty, "planted journals:\n\(failures.joined(separator: "\n"))")
        }
    }

    /// Class 7: damaged and truncated journals (a record cut in the middle, a garbage line in the middle, records with
    /// a bad field, the file cut mid-way): `ezmsi undo` refuses with exit 3 naming the file and the line, and changes
    /// nothing, neither the tree nor the journal. The intact journal then undoes the fix (the damage was the cause).
    @Suite struct DamagedJournals {
        @Test func damagedJournalsAreRefusedWithFileAndLine() throws {
            let s = try AdvScratch("damaged")
            let data = s.path + "/data"
            try Adversary.sh("""
                set -e; mkdir -m 0755 \(Adversary.q(data)); cd \(Adversary.q(data))
                for d in d1 d2 d3; do mkdir -m 0700 $d; for i in $(seq 1 10); do printf x > $d/f$i; chmod 600 $d/f$i; done; done
                """)
            let original = try s.snapshot(data)
            let fix = try s.fix(data, plan: "acl", format: "json")
            try #require(fix.status == 0 || fix.status == 1, "fix: \(fix.stderr)")
            var journal = try #require((try decodeJSON(fix.stdout)["applied"] as? [String: Any])?["journal"] as? String)
            let text = try String(contentsOfFile: journal, encoding: .utf8)
            let fixed = try s.snapshot(data)
            let lines = text.split(separator: "\n").map(String.init)
            try #require(lines.count >= 20, "a short journal: \(text.prefix(300))")
            let k = lines.count / 2  // a record in the middle (0-based; line k + 1)
            func joined(_ l: [String]) -> String { l.joined(separator: "\n") + "\n" }
            var cutLine = lines
            cutLine[k] = String(lines[k].prefix(lines[k].count / 2))
            var garbage = lines
            garbage.insert("this is not a journal line {\"path\":", at: k)
            let half = String(decoding: Array(text.utf8).prefix(text.utf8.count / 2), as: UTF8.self)
            let halfLine = half.filter { $0 == "\n" }.count + 1
            let variants: [(String, String, Int)] = [
                ("a record cut in the middle", joined(cutLine), k + 1),
                ("a garbage line in the middle", joined(garbage), k + 1),
                ("a record with a mode that is a string", joined(lines.enumerated().map { $0.offset == k ? (try? Adversarial.setField($0.element, "mode", "\"rwx\"")) ?? "" : $0.element }), k + 1),
                ("a record with a negative inode", joined(lines.enumerated().map { $0.offset == k ? (try? Adversarial.setField($0.element, "ino", "-1")) ?? "" : $0.element }), k + 1),
                ("a record with a uid beyond 32 bits", joined(lines.enumerated().map { $0.offset == k ? (try? Adversarial.setField($0.element, "uid", "99999999999")) ?? "" : $0.element }), k + 1),
                ("a record with an ACL that is not hex", joined(lines.enumerated().map { $0.offset == k ? (try? Adversarial.setField($0.element, "acl", "\"zz\"")) ?? "" : $0.element }), k + 1),
                ("the file cut mid-way", half, halfLine),
            ]
            var failures: [String] = []
            let dir = (journal as NSString).deletingLastPathComponent
            for (n, (label, content, line)) in variants.enumerated() {
                let path = dir + "/fix-20990101-000000-\(n + 10).jsonl"
                try content.write(toFile: path, atomically: false, encoding: .utf8)
                chmod(path, 0o600)
                let out = try s.undo(path)
                let now = try s.snapshot(data)
                let after = try String(contentsOfFile: path, encoding: .utf8)
                if out.status != 3 { failures.append("\(label): undo exited \(out.status), not 3: \(out.stdout.prefix(200)) \(out.stderr.prefix(200))") }
                if !Adversarial.namesLine(out.stderr, path: path, line: line) {
                    failures.append("\(label): the message does not name \(path) line \(line): \(out.stderr.prefix(300))")
                }
                if now != fixed { failures.append("\(label): undo changed the tree: \(now.differences(from: fixed))") }
                if after != content { failures.append("\(label): undo changed the journal (\(after.utf8.count - content.utf8.count) bytes appended)") }
                unlink(path)
                if now != fixed {
                    // Put the fixed state back for the next variant.
                    _ = try? s.undo(journal)
                    let again = try s.fix(data, plan: "acl", format: "json")
                    try #require(again.status == 0 || again.status == 1)
                    journal = try #require((try decodeJSON(again.stdout)["applied"] as? [String: Any])?["journal"] as? String)
                }
            }
            let intact = try s.undo(journal)
            #expect(intact.status == 0, "the intact journal: \(intact.stdout) \(intact.stderr)")
            let restored = try s.snapshot(data)
            let same = restored == original
            #expect(same, "the intact journal did not restore the tree: \(restored.differences(from: original))")
            #expect(failures.isEmpty, "damaged journals:\n\(failures.joined(separator: "\n"))")
        }
    }
}
