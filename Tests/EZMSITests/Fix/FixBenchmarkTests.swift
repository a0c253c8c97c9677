import Foundation
import Glibc
import Testing
@testable import EZMSICore

/// The issue's fix benchmark, side by side on identical fresh copies of one generated tree:
/// `apply` (acl plan, upload need: every entry changes) against `setfacl -R -m u:1000:rwX,d:u:1000:rwX`, and a second
/// `apply` (nothing to change) against `find DIR -printf '%U %G %m\n'`.
///
///     EZMSI_BENCH=1 swift test -c release --scratch-path .build-fix --filter FixBenchmark
///
/// EZMSI_BENCH_FILES (default 200000: 200 directories × 1000 files, 0640 root:root, directories 0750),
/// EZMSI_BENCH_TREE (an existing tree to copy instead), EZMSI_BENCH_ROUNDS (default 2; best of), EZMSI_BENCH_THREADS
/// (default: as the audit, min(4, CPUs)).
@Suite(.serialized) struct FixBenchmarkTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["EZMSI_BENCH"] != nil && PermShell.isRoot))
    func fixAgainstSetfaclAndFind() throws {
        let env = ProcessInfo.processInfo.environment
        let files = Int(env["EZMSI_BENCH_FILES"] ?? "") ?? 200_000
        let rounds = max(1, Int(env["EZMSI_BENCH_ROUNDS"] ?? "") ?? 2)
        let options = FixOptions(threads: Int(env["EZMSI_BENCH_THREADS"] ?? "") ?? TreeAuditOptions.defaultThreads)
        let s = TempDir("fix-bench")
        let base: String
        if let existing = env["EZMSI_BENCH_TREE"], !existing.isEmpty {
            base = existing
        } else {
            base = s.path + "/base"
            let perDir = max(1, files / 200)
            try PermShell.sh("""
                mkdir -m 750 \(base) && cd \(base) && for a in $(seq -w 0 19); do for b in $(seq -w 0 9); do
                  mkdir -p -m 750 run$a/scan$b && (cd run$a/scan$b && seq -f 'frame_%05g.tif' 1 \(perDir) | xargs touch && chmod 640 *); done; chmod 750 run$a; done
                """)
        }
        let identity = ContainerIdentity(uid: 1000, gid: 1000, groups: [27])
        let journals = s.path + "/journals"
        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let a = FolderFixer.monotonicMs()
            try body()
            return (FolderFixer.monotonicMs() - a) / 1000
        }
        func freshCopy(_ name: String) throws -> String {
            let copy = s.path + "/" + name
            try PermShell.sh("rm -rf \(copy) && cp -a \(base) \(copy) && sync && find \(copy) > /dev/null")
            return copy
        }

        var setfacl = Double.infinity, apply = Double.infinity, find = Double.infinity, again = Double.infinity
        var undo = Double.infinity, plan = Double.infinity
        var changed = 0, entries = 0
        for round in 0..<rounds {
            // Alternate which side goes first.
            let order = round % 2 == 0 ? ["setfacl", "ezmsi"] : ["ezmsi", "setfacl"]
            for side in order {
                let copy = try freshCopy("copy-\(side)")
                if side == "setfacl" {
                    setfacl = min(setfacl, try seconds { try PermShell.sh("setfacl -R -m u:1000:rwX,d:u:1000:rwX \(copy)") })
                    try PermShell.sh("rm -rf \(copy)")
                    continue
                }
                plan = min(plan, try seconds {
                    let p = try FolderFixer.plan(kind: .acl, root: copy, identity: identity, need: .readTreeWriteRoot,
                                                   options: options)
                    entries = p.entriesScanned
                })
                var outcome: FixOutcome?
                apply = min(apply, try seconds {
                    outcome = try FolderFixer.apply(kind: .acl, root: copy, identity: identity, need: .readTreeWriteRoot,
                                                    journalDirectory: journals, options: options)
                })
                changed = outcome?.changed ?? 0
                #expect(outcome?.failedCount == 0)
                let q = PermShell.quote(copy)
                for _ in 0..<3 {
                    find = min(find, try seconds { try PermShell.sh("find \(q) -printf '%U %G %m\\n' > /dev/null") })
                    again = min(again, try seconds {
                        let o = try FolderFixer.apply(kind: .acl, root: copy, identity: identity, need: .readTreeWriteRoot,
                                                      journalDirectory: journals, options: options)
                        #expect(o.changed == 0)
                    })
                }
                if let j = outcome?.journal {
                    undo = min(undo, try seconds { _ = try FolderFixer.undo(journal: j) })
                }
                try PermShell.sh("rm -rf \(copy) \(journals)")
            }
        }
        var hwm = "?"
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) {
            hwm = line.dropFirst(6).trimmingCharacters(in: .whitespaces)
        }
        let report = String(format: "fix bench: %d entries, %d changed; setfacl -R %.3f s, apply %.3f s (%.2fx setfacl); "
                            + "find %.3f s, second apply %.3f s (%.2fx find); plan %.3f s, undo %.3f s; threads %d; "
                            + "test process peak RSS %@",
                            entries, changed, setfacl, apply, apply / setfacl, find, again, again / find, plan, undo,
                            options.threads, hwm)
        print(report)
        #expect(changed == entries)
        #expect(apply <= 1.0 * setfacl, "\(report)")
        #expect(again <= 1.5 * find, "\(report)")
    }
}
