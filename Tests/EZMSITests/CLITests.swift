import Foundation
import Testing
@testable import EZMSIChecks
@testable import EZMSICore

/// The command line as users and CI meet it: bad input, exit codes, output contracts, secrets, init, hand-off.
struct CLITests {
    /// No crash, no stack trace, ever.
    static func assertClean(_ out: ProcessOutput, _ context: String) {
        for marker in ["Fatal error", "Stack dump", "Backtrace", "Current stack trace", "SIGSEGV", "swift_"] {
            #expect(!out.stderr.contains(marker) && !out.stdout.contains(marker), "\(context): crash marker \(marker)")
        }
        #expect(out.status < 64, "\(context): exit \(out.status) (signal?)")
    }

    @Test func usageErrorsExit2() throws {
        for args in [["doctor", "--format", "xml"], ["doctor", "--only", "nope.probe"], ["doctor", "--timeout", "-1"],
                     ["frobnicate"], ["init", "/tmp/x", "--program", "NoSuchProgram"]] {
            let out = try ezmsi(args)
            #expect(out.status == 2, "\(args): exit \(out.status) \(out.stderr)")
            #expect(out.stdout.isEmpty, "\(args): usage errors go to stderr")
            Self.assertClean(out, "\(args)")
        }
    }

    @Test func brokenTrackerJsonExits3WithFileAndLine() throws {
        let dir = TempDir("tracker")
        dir.write("tracker.json", "{\n  \"type\": \"Producer\",\n  \"image\": oops\n}\n")
        let out = try ezmsi(["doctor", "--deployment", dir.path])
        #expect(out.status == 3)
        #expect(out.stderr.contains("tracker.json:3"), "\(out.stderr)")
        Self.assertClean(out, "tracker")
        let missing = try ezmsi(["doctor", "--deployment", dir.path + "/nope"])
        #expect(missing.status == 3)
    }

    @Test("bad env-file and config inputs give findings, not crashes", arguments: [
        "missing", "directory", "binary", "bigline", "invalid-utf8", "crlf", "bom", "fifo", "empty",
    ])
    func badInput(_ kind: String) throws {
        let dir = TempDir("bad-\(kind)")
        let args = healthyDeployment(dir)
        let env = dir.path + "/openmsi.env", config = dir.path + "/config.config"
        var expectEnvCode: String?, expectConfigCode: String?
        switch kind {
        case "missing":
            unlink(env); unlink(config); expectEnvCode = "file-missing"; expectConfigCode = "file-missing"
        case "directory":
            unlink(env); unlink(config); mkdir(env, 0o755); mkdir(config, 0o755)
            expectEnvCode = "file-is-directory"; expectConfigCode = "file-is-directory"
        case "binary":
            var bytes = [UInt8](repeating: 0, count: 4096)
            for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 7) }
            dir.write("openmsi.env", bytes: bytes, mode: 0o600); dir.write("config.config", bytes: bytes)
            expectEnvCode = "invalid-utf8"; expectConfigCode = "UnicodeDecodeError"
        case "bigline":
            dir.write("openmsi.env", "A=" + String(repeating: "x", count: 10_000_000) + "\n", mode: 0o600)
            dir.write("config.config", "[broker]\nbootstrap.servers = " + String(repeating: "y", count: 10_000_000) + "\n")
            expectEnvCode = "line-too-long"
        case "invalid-utf8":
            dir.write("openmsi.env", bytes: Array("A=1\nB=\u{e9}".utf8.dropLast(1)) + [0xff, 0x0a], mode: 0o600)
            dir.write("config.config", bytes: Array("[broker]\nx = ".utf8) + [0xc3, 0x28, 0x0a])
            expectEnvCode = "invalid-utf8"; expectConfigCode = "UnicodeDecodeError"
        case "crlf":
            dir.write("openmsi.env", ExampleFacts.goodEnv.replacingOccurrences(of: "\n", with: "\r\n"), mode: 0o600)
            dir.write("config.config", ExampleFacts.goodProducerConfig.replacingOccurrences(of: "\n", with: "\r\n"))
        case "bom":
            dir.write("openmsi.env", "\u{FEFF}" + ExampleFacts.goodEnv, mode: 0o600)
            dir.write("config.config", "\u{FEFF}" + ExampleFacts.goodProducerConfig)
            expectConfigCode = "bom"
        case "fifo":
            unlink(env); mkfifo(env, 0o600); expectEnvCode = "file-not-regular"
        case "empty":
            dir.write("openmsi.env", "", mode: 0o600); dir.write("config.config", "")
            expectConfigCode = "no-sections"
        default:
            Issue.record("unknown case")
        }
        let out = try ezmsi(["doctor", "--format", "json", "--skip", "docker."] + args, timeout: 60)
        Self.assertClean(out, kind)
        let report = try decodeJSON(out.stdout)
        let codes = ConfigParserDifferentialTests.codes(report)
        if let expectEnvCode { #expect(codes.contains(expectEnvCode), "\(kind): \(codes)"); #expect(out.status == 1) }
        if let expectConfigCode { #expect(codes.contains(expectConfigCode), "\(kind): \(codes)"); #expect(out.status == 1) }
        if kind == "crlf" { #expect(out.status == 0, "CRLF files are fine for docker and configparser: \(codes)") }
        // The located findings name the file and the line.
        if kind == "invalid-utf8" {
            let located = (report["checks"] as? [[String: Any]] ?? []).flatMap { $0["findings"] as? [[String: Any]] ?? [] }
                .compactMap { $0["location"] as? [String: Any] }
            #expect(located.contains { $0["file"] as? String == env && $0["line"] as? Int == 2 })
            #expect(located.contains { $0["file"] as? String == config && $0["line"] as? Int == 2 })
        }
    }

    @Test func unreadableFilesForTheInvokingUser() throws {
        let dir = TempDir("unreadable")
        let args = healthyDeployment(dir)
        chmod(dir.path, 0o755)
        chmod(dir.path + "/openmsi.env", 0o600)
        chmod(dir.path + "/config.config", 0o600)
        let out = try ezmsi(["doctor", "--format", "json", "--skip", "docker."] + args, env: ["HOME": "/tmp"], asUser: 65534)
        Self.assertClean(out, "unreadable")
        let codes = ConfigParserDifferentialTests.codes(try decodeJSON(out.stdout))
        #expect(codes.contains("file-unreadable"), "\(codes)")
        #expect(out.status == 1)
    }

    @Test func jsonGoesToStdoutAloneWithTheDocumentedShape() throws {
        let dir = TempDir("json")
        let out = try ezmsi(["doctor", "--format", "json", "--skip", "docker."] + healthyDeployment(dir))
        #expect(out.stderr.isEmpty, "\(out.stderr)")
        let report = try decodeJSON(out.stdout)
        for key in ["schemaVersion", "tool", "startedAt", "durationMs", "deployment", "summary", "checks"] {
            #expect(report[key] != nil, "missing \(key)")
        }
        #expect((report["tool"] as? [String: Any])?["version"] as? String == EZMSI.version)
        let summary = try #require(report["summary"] as? [String: Any])
        #expect(summary["status"] as? String == "pass" || summary["status"] as? String == "skip")
        // docker.cli, docker.daemon, docker.image (--skip docker.), folder.prove (not requested), and the two broker
        // probes (EZMSI_OFFLINE=1, set by the test helper).
        #expect((summary["counts"] as? [String: Int])?["skip"] == 6)
        for c in report["checks"] as? [[String: Any]] ?? [] {
            for key in ["id", "title", "status", "message", "durationMs", "findings", "blockedBy", "fixes"] {
                #expect(c[key] != nil, "check \(c["id"] ?? "?") lacks \(key)")
            }
        }
    }

    @Test func strictMakesWarningsFail() throws {
        let dir = TempDir("strict")
        let args = healthyDeployment(dir)
        chmod(dir.path + "/openmsi.env", 0o644)   // a warning
        let lenient = try ezmsi(["doctor", "--skip", "docker."] + args)
        #expect(lenient.status == 0, "\(lenient.stdout)")
        let strict = try ezmsi(["doctor", "--strict", "--skip", "docker."] + args)
        #expect(strict.status == 1)
    }

    @Test func coloursOnlyOnATerminalAndNeverWithNoColor() throws {
        let dir = TempDir("color")
        let args = ["doctor", "--skip", "docker."] + healthyDeployment(dir)
        let piped = try ezmsi(args)
        #expect(!piped.stdout.contains("\u{1B}["), "no colours into a pipe")
        let line = ([Repo.binary] + args).map(ShellWords.quote).joined(separator: " ")
        let tty = try Subprocess.run("/usr/bin/script", ["-qec", line, "/dev/null"], environment: ["PATH": "/usr/bin:/bin", "TERM": "xterm"])
        #expect(tty.stdout.contains("\u{1B}["), "colours on a terminal")
        let noColor = try Subprocess.run("/usr/bin/script", ["-qec", line, "/dev/null"], environment: ["PATH": "/usr/bin:/bin", "TERM": "xterm", "NO_COLOR": "1"])
        #expect(!noColor.stdout.contains("\u{1B}["), "NO_COLOR wins")
    }

    @Test func checksListsTheCatalogue() throws {
        let human = try ezmsi(["checks"])
        #expect(human.status == 0)
        for id in ["docker.cli", "docker.daemon", "docker.image", "env.file", "env.credentials", "config.syntax", "config.keys",
                   "command.program", "identity.alignment", "folder.access", "folder.tree", "mounts.readable", "folder.prove"] {
            #expect(human.stdout.contains(id))
        }
        let json = try decodeJSON(try ezmsi(["checks", "--format", "json"]).stdout)
        #expect((json["checks"] as? [[String: Any]])?.count == Catalogue.all.count)
    }

    @Test func initWritesADeploymentAndNeverOverwrites() throws {
        let dir = TempDir("init")
        let target = dir.path + "/lab"
        let out = try ezmsi(["init", target, "--program", "DataFileUploadDirectory"])
        #expect(out.status == 0, "\(out.stderr)")
        var st = stat()
        stat(target + "/openmsi.env", &st)
        #expect(st.st_mode & 0o777 == 0o600)
        let env = try String(contentsOfFile: target + "/openmsi.env", encoding: .utf8)
        #expect(env == "CONFLUENT_BOOTSTRAP_SERVERS=\nCONFLUENT_USERNAME=\nCONFLUENT_PASSWORD=\n")
        let gitignore = try String(contentsOfFile: target + "/.gitignore", encoding: .utf8)
        #expect(gitignore.contains("openmsi.env"))
        let config = ConfigParser.parse(text: try String(contentsOfFile: target + "/config.config", encoding: .utf8), path: "c")
        #expect(config.section("producer")?.option("value.serializer")?.raw == "DataFileChunkSerializer")
        let tracker = try decodeJSON(try String(contentsOfFile: target + "/tracker.json", encoding: .utf8))
        for field in Tracker.recipeFields { #expect(tracker[field] != nil, "tracker lacks \(field)") }
        // A second run refuses and changes nothing.
        _ = FileManager.default.createFile(atPath: target + "/openmsi.env", contents: Data("CONFLUENT_PASSWORD=kept\n".utf8))
        let again = try ezmsi(["init", target, "--program", "DataFileUploadDirectory"])
        #expect(again.status == 3)
        let kept = try String(contentsOfFile: target + "/openmsi.env", encoding: .utf8)
        #expect(kept == "CONFLUENT_PASSWORD=kept\n")
        // The doctor reads the new deployment (the empty credentials fail, as they should).
        _ = dir.mkdir("lab/data")
        let doctor = try ezmsi(["doctor", "--deployment", target, "--format", "json", "--skip", "docker."])
        let doctorReport = try decodeJSON(doctor.stdout)
        #expect(ConfigParserDifferentialTests.codes(doctorReport).contains("credential-missing"), "the overwritten-then-kept env-file lacks two credentials")
        #expect(check(doctorReport, "command.program")?["status"] as? String == "pass")
    }
}
