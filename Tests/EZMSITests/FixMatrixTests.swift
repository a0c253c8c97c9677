import Foundation
import Testing
@testable import EZMSIChecks
@testable import EZMSICore

/// Issue 3's fix guarantees on the oracle matrix and through the CLI: after `fix --yes` the real container succeeds
/// in every case; after `undo` recursive stat and ACL dumps equal the originals; outside files are never touched;
/// a fix killed midway is undone completely.
@Suite(.serialized, .enabled(if: TestDocker.available))
struct FixTests {
    static func dump(_ root: String) throws -> String {
        let out = try Subprocess.run("/usr/bin/env", ["python3", Repo.root + "/Tests/Oracles/permission_matrix.py", "dump", root], timeout: 120)
        guard out.status == 0 else { throw TestFailure("dump failed: \(out.stderr)") }
        return out.stdout
    }

    /// Runs `ezmsi fix --yes --format json` on one case folder; returns (changed, journal).
    static func cliFix(deployment: String, folder: String, kind: PermissionMatrixTests.Kind, user: String?, state: String) throws -> (Int, String) {
        var args = ["fix", "--yes", "--format", "json", "--deployment", deployment, "--folder", folder]
        if let user { args += ["--user", user] }
        let out = try ezmsi(args + ["--"] + kind.command, env: ["XDG_STATE_HOME": state])
        guard out.status == 0 || out.status == 1 else { throw TestFailure("ezmsi fix exited \(out.status): \(out.stderr)") }
        let applied = try decodeJSON(out.stdout)["applied"] as? [String: Any] ?? [:]
        return (applied["changed"] as? Int ?? -1, applied["journal"] as? String ?? "")
    }

    @Test func afterFixTheContainerSucceedsEverywhereAndUndoRestoresExactly() throws {
        let root = try PermissionMatrixTests.generate("fix")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cases = try PermissionMatrixTests.cases(root)
        let original = try Self.dump(root)
        let state = TempDir("state")
        let deployment = TempDir("deployment")
        deployment.write("openmsi.env", ExampleFacts.goodEnv, mode: 0o600)
        deployment.write("config.config", ExampleFacts.goodProducerConfig)
        for user in PermissionMatrixTests.users {
            for kind in PermissionMatrixTests.Kind.allCases {
                var journals: [String] = []
                for c in cases {
                    // Exactly what a user runs: ezmsi fix --yes (identity resolved through the image, the acl plan).
                    let (changed, journal) = try Self.cliFix(deployment: deployment.path, folder: root + "/" + c + "/data", kind: kind,
                                                             user: user, state: state.path)
                    #expect(changed >= 0, "\(c) \(kind): fix reported nothing")
                    journals.append(journal)
                    // Idempotent: a second run changes nothing.
                    let (again, _) = try Self.cliFix(deployment: deployment.path, folder: root + "/" + c + "/data", kind: kind,
                                                     user: user, state: state.path)
                    #expect(again == 0, "\(c) \(kind) \(user ?? "image user"): second fix changed \(again)")
                }
                let truth = try PermissionMatrixTests.containerVerdicts(root: root, kind: kind, user: user)
                let failing = cases.filter { truth[$0] != "OK" }
                #expect(failing.isEmpty, "after fix, \(kind) \(user ?? "image user"): \(failing.prefix(10).map { "\($0) \(truth[$0] ?? "?")" })")
                for journal in journals.reversed() where !journal.isEmpty {
                    let undo = try ezmsi(["undo", journal])
                    #expect(undo.status == 0, "\(undo.stdout) \(undo.stderr)")
                }
                // Files outside every case (the symlink targets) are part of the dump: never touched, and all restored.
                let restored = try Self.dump(root)
                #expect(restored == original, "\(kind) \(user ?? "image user"): undo did not restore the original dump")
            }
        }
    }

    @Test func symlinkToAnOutsideFileIsNeverTouched() throws {
        let dir = TempDir("outside")
        let outside = dir.write("outside.txt", "secret", mode: 0o600)
        let data = dir.mkdir("data", mode: 0o700)
        dir.write("data/in.txt", "x", mode: 0o600)
        symlink(outside, data + "/link")
        symlink("../outside.txt", data + "/rel-link")
        var before = stat(); lstat(outside, &before)
        let journals = TempDir("journals")
        let id = ContainerIdentity(uid: 1000, gid: 1000, groups: [27])
        for kind in FixPlanKind.allCases {
            let outcome = try FolderFixer.apply(kind: kind, root: data, identity: id, need: .readTreeWriteRoot, journalDirectory: journals.path)
            #expect(outcome.changed > 0)
            var after = stat(); lstat(outside, &after)
            #expect(after.st_mode == before.st_mode && after.st_uid == before.st_uid && after.st_ctim.tv_nsec == before.st_ctim.tv_nsec &&
                    after.st_ctim.tv_sec == before.st_ctim.tv_sec, "\(kind) touched the outside file")
            let xattr = try Subprocess.run("/usr/bin/getfacl", ["-c", "-n", outside])
            #expect(!xattr.stdout.contains("user:1000"))
            if !outcome.journal.isEmpty { _ = try FolderFixer.undo(journal: outcome.journal) }
        }
    }

    @Test func aFixKilledMidwayIsUndoneCompletely() throws {
        let dir = TempDir("killed")
        chmod(dir.path, 0o755)
        let data = dir.mkdir("data", mode: 0o750)
        for d in 0..<40 {
            let sub = data + "/d\(d)"
            mkdir(sub, 0o750)
            for f in 0..<1000 { let fd = open(sub + "/f\(f)", O_CREAT | O_WRONLY, 0o640); close(fd) }
        }
        let original = try Self.dump(data)
        let state = TempDir("state")
        let envFile = dir.write("openmsi.env", ExampleFacts.goodEnv, mode: 0o600)
        let config = dir.write("config.config", ExampleFacts.goodProducerConfig)
        var env = ProcessInfo.processInfo.environment
        env["DOCKER_HOST"] = TestDocker.host
        env["XDG_STATE_HOME"] = state.path
        let process = try ChildProcess.spawn(Repo.binary, ["fix", "--yes", "--deployment", dir.path, "--env-file", envFile, "--config", config, "--folder", data,
                                                           "--", "DataFileUploadDirectory", "data", "--config", "config.config"],
                                             environment: env, stdout: .null, stderr: .null)
        // Kill it once its journal holds three batches (8192 records of about 190 bytes each: with two workers, at least
        // one batch's changes are made by then), well before it can finish 40,000 entries.
        let journalDir = state.path + "/ezmsi/journals"
        let deadline = Date().addingTimeInterval(20)
        var journal: String?
        while Date() < deadline {
            if let name = try? FileManager.default.contentsOfDirectory(atPath: journalDir).first(where: { $0.hasSuffix(".jsonl") }),
               let size = (try? FileManager.default.attributesOfItem(atPath: journalDir + "/" + name))?[.size] as? Int, size > 4_700_000 {
                journal = journalDir + "/" + name
                break
            }
            usleep(200)
        }
        process.send(SIGKILL)
        process.waitForExit()
        let path = try #require(journal, "the fix wrote no journal")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains("\"complete\""), "the fix finished before it was killed; make the tree bigger")
        #expect(try Self.dump(data) != original, "the killed fix changed nothing yet")
        let undo = try ezmsi(["undo", "--accept-cut", path])  // SIGKILL may land inside a journal write
        #expect(undo.status == 0, "\(undo.stdout) \(undo.stderr)")
        #expect(try Self.dump(data) == original, "undo after a kill did not restore the original")
    }

    @Test func cliDryRunShowsRankedPlansAndApplyReportsTheOutcome() throws {
        let dir = TempDir("cli")
        var args = healthyDeployment(dir)
        chown(dir.path + "/data", 0, 0)
        chmod(dir.path + "/data", 0o755)
        let state = TempDir("state")
        let dry = try ezmsi(["fix"] + args, env: ["XDG_STATE_HOME": state.path])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("1. acl"))
        #expect(dry.stdout.contains("2. chown"))
        #expect(dry.stdout.contains("3. user"))
        var st = stat(); stat(dir.path + "/data", &st)
        #expect(st.st_mode & 0o777 == 0o755, "a dry run changes nothing")
        args.insert("--yes", at: 0)
        let applied = try ezmsi(["fix"] + args, env: ["XDG_STATE_HOME": state.path])
        #expect(applied.status == 0, "\(applied.stdout) \(applied.stderr)")
        #expect(applied.stdout.contains("journal:"))
        let again = try ezmsi(["fix"] + args, env: ["XDG_STATE_HOME": state.path])
        #expect(again.stdout.contains("changed 0 entries"))
        let undo = try ezmsi(["undo"], env: ["XDG_STATE_HOME": state.path])
        #expect(undo.status == 0)
    }
}

/// `ezmsi doctor --prove`: a real container agrees with the static verdict, both ways.
@Suite(.enabled(if: TestDocker.available))
struct ProveTests {
    @Test func proveAgreesOnAUsableAndAnUnusableFolder() throws {
        let dir = TempDir("prove")
        chmod(dir.path, 0o755)
        let args = ["doctor", "--prove", "--format", "json", "--only", "folder."] + healthyDeployment(dir)
        var report = try decodeJSON(try ezmsi(args).stdout)
        #expect(check(report, "folder.prove")?["status"] as? String == "pass")
        #expect((check(report, "folder.prove")?["details"] as? [String: String])?["container"] == "OK")
        chown(dir.path + "/data", 0, 0)
        chmod(dir.path + "/data", 0o755)
        report = try decodeJSON(try ezmsi(args).stdout)
        #expect(check(report, "folder.access")?["status"] as? String == "fail")
        #expect(check(report, "folder.prove")?["status"] as? String == "pass", "the container agrees that it cannot write")
        #expect((check(report, "folder.prove")?["details"] as? [String: String])?["container"]?.hasPrefix("FAIL") == true)
    }
}
