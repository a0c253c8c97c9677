import Foundation
import Glibc
import Testing
@testable import EZMSICore

/// `ezmsi undo` per folder, as a user types it: the newest fix of the deployment's folder, `--list`, `--dry-run`, and
/// a bare `undo` that names the folders and refuses without a terminal when several have open journals.
@Suite(.serialized) struct UndoCommandTests {
    static func program(_ folder: String) -> [String] { ["--", "DataFileUploadDirectory", "data", "--config", "config.config"] }

    @Test(.enabled(if: PermShell.isRoot)) func undoPerFolderListDryRunAndAmbiguity() throws {
        let dir = TempDir("undo-cli")
        _ = healthyDeployment(dir)
        let a = dir.mkdir("scans-a", mode: 0o700), b = dir.mkdir("scans-b", mode: 0o700)
        chown(a, 0, 0)
        chown(b, 0, 0)
        let state = TempDir("undo-cli-state")
        let env = ["XDG_STATE_HOME": state.path]
        func args(_ folder: String) -> [String] { ["--deployment", dir.path, "--folder", folder] }
        func mode(_ p: String) -> mode_t { var st = stat(); lstat(p, &st); return st.st_mode & 0o7777 }
        for folder in [a, b] {
            let fix = try ezmsi(["fix", "--yes"] + args(folder) + Self.program(folder), env: env)
            #expect(fix.stdout.contains("undo with: ezmsi undo "), "\(fix.stdout)\(fix.stderr)")
        }
        #expect(try FileACL.read(path: a).access.perms(.user(1000)) == .rwx)

        // Two folders have open journals: a bare undo names them and, without a terminal, refuses.
        let bare = try ezmsi(["undo"], env: env)
        #expect(bare.status == 2 && bare.stderr.contains(a) && bare.stderr.contains(b), "\(bare.status) \(bare.stderr)")
        #expect(bare.stderr.contains("ezmsi undo --folder DIR"))

        let list = try ezmsi(["undo", "--list"], env: env)
        #expect(list.status == 0 && list.stdout.components(separatedBy: "  open  ").count == 3, "\(list.stdout)")
        let listJSON = try ezmsi(["undo", "--list", "--format", "json"], env: env)
        let summaries = try #require(try JSONSerialization.jsonObject(with: Data(listJSON.stdout.utf8)) as? [[String: Any]])
        #expect(Set(summaries.compactMap { $0["root"] as? String }) == [a, b])

        // The dry run says what it would restore and changes nothing.
        let dry = try ezmsi(["undo", "--dry-run"] + args(a), env: env)
        #expect(dry.status == 0 && dry.stdout.hasPrefix("would restore 1 entry of \(a)"), "\(dry.stdout)\(dry.stderr)")
        #expect(try FileACL.read(path: a).access.perms(.user(1000)) == .rwx)

        // The deployment's folder picks its own newest fix; the other folder stays fixed.
        let undoA = try ezmsi(["undo"] + args(a), env: env)
        #expect(undoA.status == 0 && undoA.stdout.hasPrefix("restored 1 entry of \(a)"), "\(undoA.stdout)\(undoA.stderr)")
        #expect(try FileACL.read(path: a).origin == .modeBits && mode(a) == 0o700)
        #expect(try FileACL.read(path: b).access.perms(.user(1000)) == .rwx)
        let again = try ezmsi(["undo"] + args(a), env: env)
        #expect(again.status == 3 && again.stderr.contains("no open fix journal for \(a)"), "\(again.stderr)")

        // Now only one folder has an open journal: a bare undo takes it.
        let last = try ezmsi(["undo"], env: env)
        #expect(last.status == 0 && last.stdout.hasPrefix("restored 1 entry of \(b)"), "\(last.stdout)\(last.stderr)")
        let after = try ezmsi(["undo", "--list"], env: env)
        #expect(after.stdout.components(separatedBy: "  undone  ").count == 3, "\(after.stdout)")
    }

    /// A fix on a system folder is refused before anything is read or written, with exit 3 and the reason.
    @Test func fixRefusesSystemFoldersWithExit3() throws {
        let dir = TempDir("undo-sys")
        _ = healthyDeployment(dir)
        let state = TempDir("undo-sys-state")
        for folder in ["/etc", "/usr/../etc", "/home"] {
            let out = try ezmsi(["fix", "--yes", "--deployment", dir.path, "--folder", folder] + Self.program(folder),
                                env: ["XDG_STATE_HOME": state.path])
            #expect(out.status == 3 && out.stderr.contains("refusing to change"), "\(folder): \(out.status) \(out.stderr)")
        }
        #expect((try? FileManager.default.contentsOfDirectory(atPath: state.path + "/ezmsi/journals"))?.isEmpty ?? true)
    }
}
