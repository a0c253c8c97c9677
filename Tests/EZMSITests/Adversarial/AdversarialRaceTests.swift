import Foundation
import Glibc
import Testing
@testable import EZMSICore

/// Issue 9: the fixer attacked as an unprivileged local user would. ezmsi runs as root; the attacker (uid 1000, the
/// container's user, owner of the data folder) may create, rename, exchange, hard-link, delete and recreate anything
/// below the folder at any moment. Nothing outside the folder may change, no privilege may be created, and every
/// entry gets exactly the change judged for it or is left alone. One suite, serialized: the races need the CPU.
@Suite(.serialized, .enabled(if: Adversary.enabled, Adversary.skipReason))
struct Adversarial {}

extension Adversarial {
    /// Class 1: names exchanged (renameat2 RENAME_EXCHANGE) during `fix --yes`. The folder (the attacker's) holds
    /// root-owned sentinels (a set-uid and a set-gid file, usable as they are: the plan judges no change for them),
    /// root-owned 0600 secrets and a 0700 directory (judged: a grant or a chown), and the attacker's own baits (set-uid
    /// and set-gid files and a directory its owner cannot read: judged, an owner-bit chmod). The attacker swaps baits
    /// with sentinels and secrets without pause. After each trial every object (found by inode, wherever its name is
    /// now) is either unchanged or exactly as the same fix leaves it without an attacker (a control run), and the only
    /// root-owned set-uid/set-gid files are the sentinels with their original mode.
    @Suite struct ExchangeRace {
        /// 70 trials: a hole hit in 10 % of trials is missed with probability 0.9^70 < 0.1 %.
        static let trials = 70

        static let pairs = ["bait-1", "secret-1", "bait-2", "sentinel-suid", "bait-3", "sentinel-sgid", "bait-sgid", "secret-2",
                            "bait-dir", "secret-3", "bait-4", "rootdir", "secret-4", "sentinel-suid", "sub/bait-sub", "sub/secret-sub"]

        static func build(_ data: String) throws {
            try Adversary.sh("""
                set -e
                rm -rf \(Adversary.q(data)); mkdir -m 0755 \(Adversary.q(data)); cd \(Adversary.q(data))
                printf 'sentinel' > sentinel-suid; chmod 4755 sentinel-suid
                printf 'sentinel' > sentinel-sgid; chmod 2755 sentinel-sgid
                for i in 1 2 3 4; do printf "secret$i" > secret-$i; chmod 600 secret-$i; done
                mkdir -m 0700 rootdir; printf s > rootdir/inner; chmod 600 rootdir/inner
                for i in 1 2 3 4 sgid; do printf '#!/bin/sh\\nid\\n' > bait-$i; done
                mkdir bait-dir sub
                printf b > sub/bait-sub; printf s > sub/secret-sub; chmod 600 sub/secret-sub
                chown 1000:1000 . bait-1 bait-2 bait-3 bait-4 bait-sgid bait-dir sub sub/bait-sub
                chmod 4111 bait-1 bait-2 bait-3 bait-4 sub/bait-sub; chmod 2111 bait-sgid; chmod 0311 bait-dir; chmod 0755 sub
                """)
        }

        @Test(arguments: ["acl", "chown"]) func exchangeDuringFix(plan: String) throws {
            let s = try AdvScratch("exchange-\(plan)")
            let outside = s.path + "/outside"
            try Adversary.sh("""
                set -e; mkdir -m 0755 \(Adversary.q(outside)); cd \(Adversary.q(outside))
                printf 'outside secret' > secret; chmod 600 secret
                printf 'outside suid' > suid; chmod 4755 suid
                printf mine > mine; chown 1000:1000 mine; chmod 0200 mine
                """)
            let sentinels = [outside, outside + "/secret", outside + "/suid", outside + "/mine"]
            let outsideBefore = try s.fingerprint(sentinels)

            // The control: what this plan does to each object without an attacker.
            let control = s.path + "/control"
            try Self.build(control)
            let judgedBefore = try s.snapshot(control).byPath()
            let controlRun = try s.fix(control, plan: plan)
            try #require(controlRun.status == 0 || controlRun.status == 1, "control fix: \(controlRun.stdout)\(controlRun.stderr)")
            let judgedAfter = try s.snapshot(control).byPath()
            let judgedChanged = judgedBefore.filter { judgedAfter[$0.key]?.security != $0.value.security }.map(\.key).sorted()
            try #require(judgedChanged.count >= 8, "the control fix changed too little to attack: \(judgedChanged)")
            try #require(judgedAfter["sentinel-suid"]?.security == judgedBefore["sentinel-suid"]?.security,
                         "the sentinels must be judged unchanged (usable as they are)")

            let data = s.path + "/data"
            var violations: [String] = []
            var trialsHit = Set<Int>()
            var exchanges: [String] = []
            let start = Date()
            for trial in 1...Self.trials {
                try Self.build(data)
                let before = try s.snapshot(data)
                let attacker = try s.startAttacker(["exchange", data] + Self.pairs)
                let run = try s.fix(data, plan: plan)
                exchanges.append(s.stop(attacker))
                let after = try s.snapshot(data).byIno()
                func violation(_ what: String) {
                    trialsHit.insert(trial)
                    if violations.count < 12 { violations.append("trial \(trial): \(what)") }
                }
                if run.status != 0 && run.status != 1 {
                    violation("fix exited \(run.status): \(run.stderr.prefix(300))")
                }
                for object in before.entries {
                    guard let now = after[object.ino] else {
                        violation("\(object.path) (inode \(object.ino)) vanished")
                        continue
                    }
                    guard let judged = judgedAfter[object.path], let original = judgedBefore[object.path] else { continue }
                    if now.security != original.security && now.security != judged.security {
                        violation("\(object.path) (inode \(object.ino), now named \(now.path)) became [\(now.security)]; " +
                                  "allowed: unchanged [\(original.security)] or as judged for it [\(judged.security)]")
                    }
                }
                for line in try s.rootPrivileged(data) {
                    // `find -printf '%m %U %G %i %p'`: only a sentinel, with its own original mode, may be there.
                    let f = line.split(separator: " ", maxSplits: 4).map(String.init)
                    let ino = UInt64(f.count > 3 ? f[3] : "") ?? 0
                    let original = before.entries.first { $0.ino == ino }
                    let originalMode = original.map { String(Int($0.mode, radix: 8) ?? -1, radix: 8) }
                    if original?.path.hasPrefix("sentinel-") != true || originalMode != f[0] {
                        violation("root-owned set-uid/set-gid file \(line) (originally \(original?.mine ?? "unknown"))")
                    }
                }
                let outsideNow = try s.fingerprint(sentinels)
                if outsideNow != outsideBefore { violation("outside the folder changed: " + AdvScratch.changes(from: outsideBefore, to: outsideNow)) }
            }
            let seconds = Int(Date().timeIntervalSince(start))
            print("adversarial exchange race (\(plan)): \(Self.trials) trials in \(seconds) s; hit in \(trialsHit.count); attacker: \(exchanges.prefix(3))")
            #expect(exchanges.allSatisfy { $0.contains("exchanges=") && !$0.hasPrefix("exchanges=0 ") }, "the attacker did not run: \(exchanges.prefix(3))")
            #expect(violations.isEmpty, """
                \(plan) plan: the exchange race succeeded in \(trialsHit.count) of \(Self.trials) trials (\(seconds) s):
                \(violations.joined(separator: "\n"))
                """)
        }
    }

    /// Class 4: between fix and undo the attacker deletes a journaled file (root's, in its folder) and creates files
    /// until one gets the same inode number (ext4 hands a freed number out again), names it like the old one and
    /// gives it its own mode. Undo must not give that new file the old file's owner (root) and mode (set-uid).
    @Suite struct InodeReuse {
        static let victims = 18
        static let wanted = 70

        @Test(arguments: ["acl", "chown"]) func undoDoesNotRestoreOntoARecycledInode(plan: String) throws {
            let s = try AdvScratch("reuse-\(plan)")
            let data = s.path + "/data"
            var hits = 0, misses = 0, rounds = 0
            var violations: [String] = []
            var restoredOnto = 0
            let start = Date()
            while hits < Self.wanted && rounds < 8 {
                rounds += 1
                try Adversary.sh("""
                    set -e
                    rm -rf \(Adversary.q(data)); mkdir -m 0755 \(Adversary.q(data)); cd \(Adversary.q(data))
                    for i in $(seq 1 \(Self.victims)); do
                        printf "root program $i" > v-$i
                        if [ $((i % 2)) = 1 ]; then chmod 4711 v-$i; else chmod 0600 v-$i; fi
                    done
                    chown 1000:1000 .
                    """)
                let fix = try s.fix(data, plan: plan, format: "json")
                try #require(fix.status == 0 || fix.status == 1, "fix: \(fix.stdout.prefix(500))\(fix.stderr)")
                let journal = try #require((try decodeJSON(fix.stdout)["applied"] as? [String: Any])?["journal"] as? String)
                try #require(!journal.isEmpty, "the fix journaled nothing")
                var recycled: [String] = []
                for i in 1...Self.victims {
                    let out = try s.asAttacker(s.helper, ["reuse", data, "v-\(i)", "20000", "0755"])
                    try #require(out.status == 0, "attacker reuse: \(out.stdout)\(out.stderr)")
                    if out.stdout.hasPrefix("hit") { hits += 1; recycled.append("v-\(i)") } else { misses += 1 }
                }
                let undo = try s.undo(journal)
                let now = try s.snapshot(data).byPath()
                for name in recycled {
                    guard let e = now[name] else { violations.append("round \(rounds): \(name) gone after undo"); continue }
                    if e.uid != 1000 || e.gid != 1000 || e.mode != "0755" {
                        restoredOnto += 1
                        let listed = (undo.stdout + undo.stderr).contains(name) ? "listed by undo" : "not listed by undo"
                        violations.append("round \(rounds): \(name), the attacker's new file on the recycled inode \(e.ino), " +
                                          "was given [\(e.security)] by undo (it was 1000:1000 0755; \(listed))")
                    }
                }
                for line in try s.rootPrivileged(data) {
                    violations.append("round \(rounds): root-owned set-uid/set-gid file after undo: \(line)")
                }
            }
            let seconds = Int(Date().timeIntervalSince(start))
            print("adversarial inode reuse (\(plan)): \(hits) recycled inodes (\(misses) misses) in \(rounds) rounds, \(seconds) s")
            #expect(hits >= Self.wanted, "only \(hits) inode numbers were recycled (\(misses) misses): the attack did not happen")
            #expect(violations.isEmpty, """
                \(plan) plan: undo restored the old owner and mode onto \(restoredOnto) of \(hits) recycled inodes (\(seconds) s):
                \(violations.prefix(10).joined(separator: "\n"))
                """)
        }
    }

    /// Class 5: a tree 30,000 levels deep (paths far beyond PATH_MAX) under `ulimit -n 1024`: fix then undo restore
    /// every owner, mode and ACL exactly (the helper's descriptor-walking dump, before and after), for both plans; an
    /// undo that fails (an immutable entry) exits non-zero and a retry completes; so does one killed midway.
    @Suite struct DeepTree {
        /// EZMSI_ADV_DEPTH overrides it (a shallower tree, to debug the retry steps quickly).
        static let depth = Int(ProcessInfo.processInfo.environment["EZMSI_ADV_DEPTH"] ?? "") ?? 30_000
        static let limited = ["/bin/bash", "-c", "ulimit -n 1024 && exec \"$@\"", "bash"]

        @Test func deepTreeFixUndoAndRetry() throws {
            let s = try AdvScratch("deep")
            let data = s.path + "/data"
            let start = Date()
            // The directories inherit a default ACL granting 1000 (so they need nothing); a file 0600 at every 997th level
            // and at the bottom gets a masked-out entry (so it needs a change), as does the top-level file.
            try Adversary.sh("""
                set -e
                mkdir -m 0755 \(Adversary.q(data)) && setfacl -d -m u:1000:rwx \(Adversary.q(data))
                \(Adversary.q(s.helper)) deep \(Adversary.q(data)) \(Self.depth) 0755 0600 997
                printf top > \(Adversary.q(data))/top.csv && chmod 600 \(Adversary.q(data))/top.csv
                """, timeout: 300)
            var steps: [String] = []
            var last = start
            func step(_ label: String) {
                steps.append("\(label) \(String(format: "%.1f", Date().timeIntervalSince(last))) s")
                last = Date()
            }
            defer { print("adversarial deep tree: " + steps.joined(separator: ", ")) }
            step("build")
            let original = try s.snapshot(data)
            let deepest = try #require(original.entries.last { $0.type == "f" })
            try #require(deepest.depth == Self.depth + 1, "the tree is not \(Self.depth) deep: \(deepest.depth)")
            step("snapshot of \(original.entries.count) entries")

            var undoSeconds = 0.0
            for plan in ["acl", "chown"] {
                let fix = try s.fix(data, plan: plan, prefix: Self.limited, timeout: 300)
                step("fix \(plan)")
                #expect(fix.status == 0 || fix.status == 1, "\(plan): fix under ulimit -n 1024 exited \(fix.status): \(Adversary.squeeze(fix.stderr))")
                // Each path is stored once (parent record + name): the journal grows linearly with the entries.
                let journals = s.state + "/ezmsi/journals"
                let newest = try FileManager.default.contentsOfDirectory(atPath: journals).filter { $0.hasSuffix(".jsonl") }
                    .map { journals + "/" + $0 }
                    .max { ((try? FileManager.default.attributesOfItem(atPath: $0)[.modificationDate] as? Date) ?? .distantPast)
                        < ((try? FileManager.default.attributesOfItem(atPath: $1)[.modificationDate] as? Date) ?? .distantPast) }
                let journalBytes = try #require(newest.flatMap { try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int })
                #expect(journalBytes < 400 * original.entries.count,
                        "\(plan): the journal of \(original.entries.count) entries is \(journalBytes) bytes: not linear in the entries")
                step("journal \(plan) \(journalBytes / 1024) KiB")
                let fixed = try s.snapshot(data)
                let bottom = fixed.byIno()[deepest.ino]
                #expect(bottom != nil && bottom?.security != deepest.security,
                        "\(plan): the fix did not reach the file \(Self.depth + 1) levels down: \(bottom?.security ?? "gone")")
                let undoStart = Date()
                let undo = try s.undo(prefix: Self.limited, timeout: 300)
                undoSeconds = Date().timeIntervalSince(undoStart)
                step("undo \(plan)")
                #expect(undo.status == 0, "\(plan): undo under ulimit -n 1024 exited \(undo.status): \(Adversary.squeeze(undo.stdout + undo.stderr))")
                let restored = try s.snapshot(data)
                let same = restored == original
                #expect(same, "\(plan): after fix and undo the deep tree differs: \(restored.differences(from: original))")
                if !same { return }  // the rest needs the original tree back
            }

            // A failed undo (an entry made immutable) exits non-zero; once the cause is gone, a retry completes.
            let fix = try s.fix(data, plan: "acl", prefix: Self.limited, timeout: 300)
            try #require(fix.status == 0 || fix.status == 1, "fix: \(fix.stderr.prefix(400))")
            try Adversary.sh("chattr +i \(Adversary.q(data))/top.csv")
            let failed: ProcessOutput
            do {
                defer { _ = try? Adversary.sh("chattr -i \(Adversary.q(data))/top.csv") }
                failed = try s.undo(prefix: Self.limited, timeout: 300)
            }
            #expect(failed.status != 0, "undo with an immutable entry exited 0: \(Adversary.squeeze(failed.stdout))")
            let retry = try s.undo(prefix: Self.limited, timeout: 300)
            let afterRetry = try s.snapshot(data)
            let retried = retry.status == 0 && afterRetry == original
            #expect(retried,
                    "the retried undo did not complete (exit \(retry.status): \(Adversary.squeeze(retry.stdout + retry.stderr))): \(afterRetry.differences(from: original))")

            // A killed undo: a retry completes. (From the original tree: put back what a failed retry left.)
            if let was = original.byPath()["top.csv"], afterRetry.byPath()["top.csv"] != was {
                let acl = was.acl == "-" ? "os.removexattr(p, 'system.posix_acl_access')" : "os.setxattr(p, 'system.posix_acl_access', bytes.fromhex('\(was.acl)'))"
                try Adversary.sh("""
                    python3 -c "import os; p = '\(data)/top.csv'; os.chown(p, \(was.uid), \(was.gid)); \(acl); os.chmod(p, 0o\(was.mode))"
                    """)
            }
            let again = try s.fix(data, plan: "chown", prefix: Self.limited, timeout: 300)
            try #require(again.status == 0 || again.status == 1, "fix: \(again.stderr.prefix(400))")
            var env = ProcessInfo.processInfo.environment
            env["XDG_STATE_HOME"] = s.state
            env["DOCKER_HOST"] = TestDocker.host
            let child = try ChildProcess.spawn(Self.limited[0], Array(Self.limited.dropFirst()) + [Repo.binary, "undo"],
                                               environment: env, stdout: .null, stderr: .null)
            // Halfway through, as long as a whole undo took above.
            usleep(useconds_t(max(0.003, undoSeconds / 2) * 1_000_000))
            child.send(SIGKILL)
            child.waitForExit()
            let afterKill = try s.undo(prefix: Self.limited, timeout: 300)
            let final = try s.snapshot(data)
            let recovered = afterKill.status == 0 && final == original
            #expect(recovered,
                    "after a killed undo the retry did not complete (exit \(afterKill.status): \(Adversary.squeeze(afterKill.stdout + afterKill.stderr))): \(final.differences(from: original))")
            step("retries")
        }
    }
}
