import Foundation
import Glibc
import Testing
@testable import EZMSICore

extension Adversarial {
    /// Class 8: names with terminal escapes, carriage returns, C1 controls and newlines that forge a CI annotation.
    /// The human output of doctor, fix (dry run and --yes) and undo (which lists replaced entries by name) contains no
    /// raw ESC, CR, other C0 but tab and newline, DEL or C1, and no line starting with `::` (ezmsi's human output
    /// never writes one).
    @Suite struct HostileNames {
        /// stdout and stderr together, as the exact bytes (through od, since the test's runner decodes text).
        static let rawOutput = ["/bin/bash", "-c", "set -o pipefail; \"$@\" 2>&1 | od -An -v -tx1", "bash"]

        static func bytes(_ hex: String) -> [UInt8] {
            hex.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { UInt8($0, radix: 16) }
        }

        @Test func hostileNamesCannotDriveTheTerminalOrForgeAnnotations() throws {
            let s = try AdvScratch("names")
            let data = s.path + "/data"
            try Adversary.sh("""
                set -e; mkdir -m 0755 \(Adversary.q(data)); cd \(Adversary.q(data))
                for n in $'\\e[2Jclear.csv' $'x\\n::error file=x::forged.csv' $'cr\\rname.csv' $'c1-\\xc2\\x9b31m.csv' \
                         $'raw\\x9b31m.csv' $'bell\\a.csv' $'\\e]0;title\\a.csv'; do
                    printf x > "$n"; chmod 600 "$n"
                done
                mkdir -m 0700 $'dir\\e[31m'; printf x > $'dir\\e[31m/inner\\r.csv'; chmod 600 $'dir\\e[31m/inner\\r.csv'
                """)
            let args = s.deploymentArgs(folder: data)
            let env = ["XDG_STATE_HOME": s.state]
            var outputs: [(String, ProcessOutput)] = []
            outputs.append(("doctor", try ezmsi(["doctor"] + args, env: env, prefix: Self.rawOutput)))
            outputs.append(("fix (dry run)", try ezmsi(["fix"] + args, env: env, prefix: Self.rawOutput)))
            outputs.append(("fix --yes", try ezmsi(["fix", "--yes"] + args, env: env, prefix: Self.rawOutput)))
            // Replace every file by a copy (a new inode): undo then lists each as skipped, by name.
            try Adversary.sh("""
                cd \(Adversary.q(data)) && for f in * */*; do [ -f "$f" ] && cp -p -- "$f" "$f.new" && mv -- "$f.new" "$f"; done; true
                """)
            outputs.append(("undo", try ezmsi(["undo"], env: env, prefix: Self.rawOutput)))
            outputs.append(("doctor after", try ezmsi(["doctor"] + args, env: env, prefix: Self.rawOutput)))
            var failures: [String] = []
            var all = ""
            for (label, out) in outputs {
                let b = Self.bytes(out.stdout)
                all += String(decoding: b, as: UTF8.self)
                let controls = TerminalSafety.controls(in: b)
                if !controls.isEmpty { failures.append("\(label) (exit \(out.status)): " + controls.joined(separator: "; ")) }
                let forged = TerminalSafety.forgedAnnotations(in: b)
                if !forged.isEmpty { failures.append("\(label): lines ezmsi did not write: \(forged.prefix(3))") }
            }
            #expect(all.contains("forged.csv") && all.contains("clear.csv"), "the names never reached the output, so this proves nothing:\n\(all.prefix(2000))")
            #expect(failures.isEmpty, "hostile names reach the terminal raw:\n\(failures.joined(separator: "\n"))")
        }
    }

    /// Class 9: system folders. `ezmsi fix --yes` on `/`, `/etc`, `/usr/../etc`, `/usr/lib`, `/home`, `/tmp`, `/var`
    /// and a home directory (`/root`) exits 3 with a message naming the folder, before writing any journal record.
    /// It runs in a private mount namespace where every mount is read-only (bind remount, this namespace only) and the
    /// state folder a tmpfs, so a fixer that does not refuse cannot harm the machine. A new folder under `/var/lib` and
    /// `/tmp/<x>/scans` are accepted (a real fix and undo).
    @Suite struct SystemFolders {
        static let refused = ["/", "/etc", "/usr/../etc", "/usr/lib", "/home", "/tmp", "/var", "/root"]

        @Test func systemFoldersAreRefusedAndDataFoldersAccepted() throws {
            let s = try AdvScratch("system")
            let roState = s.path + "/ro-state"
            mkdir(roState, 0o700)
            let script = """
                while read -r _ _ _ _ mp _; do
                    mp=$(printf '%b' "$mp")
                    case "$mp" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue;; esac
                    mount -o remount,bind,ro "$mp" 2>/dev/null
                done < /proc/self/mountinfo
                mount -t tmpfs -o size=64m,mode=0700 ezmsi-adv \(Adversary.q(roState)) || exit 96
                for p in / "$EZMSI_ADV_FOLDER"; do
                    case "$(findmnt -no OPTIONS -T "$p")" in ro|ro,*) ;; *) echo "ezmsi-adv: $p is not read-only here" >&2; exit 97;; esac
                done
                timeout -s KILL 8 "$@"; rc=$?
                echo "ezmsi-adv-records=$(cat \(Adversary.q(roState))/ezmsi/journals/*.jsonl 2>/dev/null | grep -c '"path"')"
                exit $rc
                """
            var failures: [String] = []
            for folder in Self.refused {
                let start = Date()
                let out = try ezmsi(["fix", "--yes", "--plan", "acl"] + s.deploymentArgs(folder: folder),
                                    env: ["XDG_STATE_HOME": roState, "EZMSI_ADV_FOLDER": folder],
                                    prefix: ["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/bash", "-c", script, "bash"],
                                    timeout: 30)
                try #require(out.status != 96 && out.status != 97, "the read-only namespace could not be set up: \(out.stderr)")
                let records = out.stdout.split(separator: "\n").last { $0.hasPrefix("ezmsi-adv-records=") }
                    .map { String($0.dropFirst("ezmsi-adv-records=".count)) } ?? "?"
                let seconds = String(format: "%.1f", Date().timeIntervalSince(start))
                let normalized = (folder as NSString).standardizingPath
                let message = out.stderr + out.stdout
                if out.status != 3 || records != "0" || !(message.contains(folder) || message.contains(normalized)) {
                    let why = out.status == 137 ? "killed after 8 s (it walked the folder)" : "exited \(out.status)"
                    failures.append("\(folder): \(why) in \(seconds) s, \(records) journal records, not exit 3 naming the folder: " +
                                    "\(out.stderr.prefix(200).replacingOccurrences(of: "\n", with: " | "))")
                }
            }

            // Accepted: a new folder under /var/lib and /tmp/<x>/scans (real fix and undo).
            let varLib = "/var/lib/ezmsi-adv-" + String(UUID().uuidString.prefix(8)).lowercased()
            let scans = s.path + "/scans"
            defer { _ = try? Adversary.sh("rm -rf \(Adversary.q(varLib))") }
            for folder in [varLib, scans] {
                try Adversary.sh("mkdir -m 0700 \(Adversary.q(folder)) && printf x > \(Adversary.q(folder))/scan.csv && chmod 600 \(Adversary.q(folder))/scan.csv")
                let before = try s.snapshot(folder)
                let fix = try s.fix(folder, plan: "acl")
                if fix.status == 3 || !fix.stdout.contains("journal") {
                    failures.append("\(folder) (a data folder) was refused: exit \(fix.status): \(fix.stderr.prefix(300))")
                    continue
                }
                let undo = try s.undo()
                if try s.snapshot(folder) != before { failures.append("\(folder): undo did not restore it: \(undo.stdout) \(undo.stderr)") }
            }
            #expect(failures.isEmpty, "system folders:\n\(failures.joined(separator: "\n"))")
        }
    }
}
