import Foundation
import Testing
@testable import EZMSIChecks
@testable import EZMSICore

/// Names and values from outside (folder and file names, config sections, command arguments, container logs) that
/// try to rewrite the terminal or forge a line or a CI annotation are shown visibly in every text format and in
/// `ezmsi status`, and exactly in JSON.
struct HostileNamesTests {
    /// Clears the screen, sets the window title, then tries to start lines of its own (LF, CR, NEL) that look like
    /// GitHub annotations and findings; DEL and CSI (C1) too.
    static func hostile(_ marker: String) -> String {
        "h\u{1B}[2J\u{1B}]0;pwned\u{07}\n::error file=f,line=1::\(marker)\r::warning ::\(marker)\u{85}\u{9B}31m\u{7F}\u{202E}!"
    }

    /// Control characters by their definition (C0, DEL, C1), independent of the code under test; the layout's own
    /// line feeds are allowed.
    static func rawControls(_ text: String) -> [String] {
        text.unicodeScalars.filter { s in (s.value < 0x20 && s != "\n") || (0x7F...0x9F).contains(s.value) }
            .map { String(format: "U+%04X", $0.value) }
    }

    /// Lines that start (after leading whitespace, as GitHub's runner reads them) with a workflow command.
    static func commandLines(_ text: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.drop { $0 == " " || $0 == "\t" }.hasPrefix("::") }
    }

    /// The reading rule documented in VisibleText, written out independently: `\\`, `\n`, `\r`, `\t`, `\xHH`,
    /// `\u{H…}` are escapes; any other backslash stands for itself.
    static func decode(_ shown: String) -> String? {
        let s = Array(shown.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < s.count {
            guard s[i] == "\\", i + 1 < s.count else { out.append(s[i]); i += 1; continue }
            switch s[i + 1] {
            case "\\": out.append("\\"); i += 2
            case "n": out.append("\n"); i += 2
            case "r": out.append("\r"); i += 2
            case "t": out.append("\t"); i += 2
            case "x":
                guard i + 3 < s.count, let v = UInt32(String(String.UnicodeScalarView(s[i + 2...i + 3])), radix: 16) else { return nil }
                out.append(Unicode.Scalar(v)!); i += 4
            case "u":
                guard let close = s[i...].firstIndex(of: "}"), s[i + 2] == "{",
                      let v = UInt32(String(String.UnicodeScalarView(s[i + 3..<close])), radix: 16), let u = Unicode.Scalar(v) else { return nil }
                out.append(u); i = close + 1
            default: out.append("\\"); i += 1
            }
        }
        return String(out)
    }

    @Test func visibleTextNotationIsExactAndDecodesBack() throws {
        #expect(VisibleText.escape("plain /path/ä b|c") == "plain /path/ä b|c")
        #expect(VisibleText.escape("a\u{1B}[2Jb") == "a\\x1b[2Jb")
        #expect(VisibleText.escape("l1\nl2\r\tx\u{0}\u{7F}") == "l1\\nl2\\r\\tx\\x00\\x7f")
        #expect(VisibleText.escape("\u{85}\u{9B}\u{2028}\u{202E}") == "\\u{0085}\\u{009b}\\u{2028}\\u{202e}")
        #expect(VisibleText.escape("C:\\data\\scans") == "C:\\data\\scans", "a backslash that reads as nothing else stays single")
        #expect(VisibleText.escape("C:\\new") == "C:\\\\new")
        #expect(VisibleText.escape("lit \\x1b") == "lit \\\\x1b", "a literal \\x1b is not shown like ESC")
        #expect(VisibleText.escape("end\\") == "end\\\\")
        #expect(VisibleText.lines("one\n::error ::x\u{1B}\n", prefix: "  │ ") == "  │ one\n  │ ::error ::x\\x1b\n")
        // Random strings over an alphabet of the tricky parts: the shown text has no control character and decodes
        // back to exactly the original (unambiguous).
        let alphabet: [String] = ["\\", "n", "x", "u", "{", "}", "1", "b", "\u{1B}", "\n", "\r", "\t", "\u{7F}", "\u{85}",
                                  "\u{9B}", "\u{202E}", "a", "é", " ", "::", "0"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            let s = (0..<Int.random(in: 0...12, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }.joined()
            let shown = VisibleText.escape(s)
            #expect(Self.rawControls(shown).isEmpty && !shown.contains("\u{202E}"), "\(shown.debugDescription)")
            #expect(Self.decode(shown) == s, "\(s.debugDescription) → \(shown.debugDescription)")
        }
    }

    /// The same within one line, for a config section header (configparser reads CR and LF as line ends).
    static func hostileInline(_ marker: String) -> String {
        "h\u{1B}[2J\u{1B}]0;pwned\u{07}::error file=f,line=1::\(marker)\u{9B}31m\u{7F}\u{202E}!"
    }

    /// A deployment whose folder name, config section, command argument and (with Docker) data file names are hostile.
    static func hostileDeployment(_ dir: TempDir) -> (args: [String], deployment: String, file: String) {
        let sub = dir.mkdir(hostile("FORGED-DIR"))
        dir.write(hostile("FORGED-DIR") + "/openmsi.env", ExampleFacts.goodEnv, mode: 0o600)
        dir.write(hostile("FORGED-DIR") + "/config.config",
                  ExampleFacts.goodProducerConfig + "\n[s\(hostileInline("FORGED-SECTION"))]\nkey = value\n")
        let data = dir.mkdir(hostile("FORGED-DIR") + "/data")
        chown(data, 1000, 1000)
        // Only root can read it: folder.tree names it as an example.
        let file = dir.write(hostile("FORGED-DIR") + "/data/" + hostile("FORGED-FILE"), "x", mode: 0o600)
        return (["--deployment", sub, "--folder", data, "--", "DataFileUploadDirectory", "data", "--config", "config.config",
                 "--topic_name", "t" + hostile("FORGED-ARG")], sub, file)
    }

    @Test func hostileNamesFlowThroughEveryDoctorFormatVisibly() throws {
        let dir = TempDir("hostile")
        let (args, deployment, file) = Self.hostileDeployment(dir)
        // With the test engine the folder probes run too (and name the hostile file); without it they are blocked.
        let selection = TestDocker.available ? [] : ["--skip", "docker."]
        var markers = ["FORGED-DIR", "FORGED-SECTION", "FORGED-ARG"]
        if TestDocker.available { markers.append("FORGED-FILE") }

        let json = try ezmsi(["doctor", "--offline", "--format", "json"] + selection + args, timeout: 120)
        CLITests.assertClean(json, "json")
        let report = try JSONDecoder().decode(Report.self, from: Data(json.stdout.utf8))
        // JSON is exact: the names come back byte for byte.
        #expect(report.deployment.directory == deployment)
        #expect(report.deployment.command.last == "t" + Self.hostile("FORGED-ARG"))
        let jsonStrings = report.checks.flatMap { c in [c.message] + c.findings.flatMap { [$0.message, $0.location?.file ?? ""] } }
        #expect(jsonStrings.contains { $0.contains(Self.hostileInline("FORGED-SECTION")) }, "the hostile section is named exactly")
        if TestDocker.available { #expect(jsonStrings.contains { $0.contains(Self.hostile("FORGED-FILE")) }, "\(json.stdout.prefix(3000))") }

        for format in ["human", "markdown", "junit", "sarif", "github"] {
            let out = try ezmsi(["doctor", "--offline", "--format", format] + selection + args, timeout: 120)
            CLITests.assertClean(out, format)
            #expect(out.status == report.summary.exitCode, "\(format)")
            #expect(Self.rawControls(out.stdout).isEmpty, "\(format) prints raw \(Self.rawControls(out.stdout))")
            #expect(Self.rawControls(out.stderr).isEmpty, "\(format) stderr prints raw \(Self.rawControls(out.stderr))")
            // (GitHub annotations carry findings only, not the command line.)
            for marker in markers where !(format == "github" && marker == "FORGED-ARG") {
                #expect(out.stdout.contains(marker), "\(format): \(marker) did not reach the output")
            }
            switch format {
            case "github":
                // Every line is one of ezmsi's annotations (no forged one), as many as the report has problems.
                try FormatTests.checkGitHub(out.stdout, against: report, exactTimes: false, "hostile")
                for annotation in out.stdout.split(separator: "\n").compactMap({ Annotation.parse(String($0)) }) {
                    #expect(Self.commandLines(annotation.message).isEmpty, "a forged command inside \(annotation.message.debugDescription)")
                    #expect(Self.rawControls(annotation.message).isEmpty && Self.rawControls(annotation.properties.values.joined()).isEmpty)
                }
            case "sarif":
                // JSON-encoded, so raw bytes cannot appear anyway: what a viewer shows is the decoded strings.
                try FormatOracle.expectValid(FormatOracle.sarifSchema, [out.stdout], "hostile sarif")
                var strings: [String] = []
                func walk(_ v: Any) {
                    if let s = v as? String { strings.append(s) } else if let a = v as? [Any] { a.forEach(walk) }
                    else if let d = v as? [String: Any] { d.values.forEach(walk) }
                }
                walk(try decodeJSON(out.stdout))
                #expect(strings.allSatisfy { Self.rawControls($0).isEmpty }, "\(strings.filter { !Self.rawControls($0).isEmpty })")
                #expect(strings.allSatisfy { Self.commandLines($0).isEmpty })
                // The artifact URI still points at the exact file (percent-encoding is exact).
                let uris = strings.filter { $0.hasPrefix("file://") }.compactMap { URL(string: $0)?.path }
                #expect(uris.contains { $0.hasPrefix(deployment) }, "\(uris)")
                if TestDocker.available { #expect(uris.contains(file), "\(uris)") }
            case "junit":
                let verdict = try FormatOracle.junit(out.stdout)
                #expect(verdict.ok, "\(verdict.problems)")
                let texts = verdict.cases.flatMap { [$0["text"] as? String ?? "", $0["out"] as? String ?? "", $0["message"] as? String ?? ""] }
                #expect(texts.allSatisfy { Self.rawControls($0).isEmpty }, "parsed JUnit text holds raw controls")
                #expect(texts.allSatisfy { Self.commandLines($0).isEmpty })
                #expect(!out.stdout.contains("\u{FFFD}"), "controls are shown, not replaced by U+FFFD")
                #expect(Self.commandLines(out.stdout).isEmpty)
            default:
                #expect(Self.commandLines(out.stdout).isEmpty, "\(format): forged lines \(Self.commandLines(out.stdout))")
                #expect(Self.commandLines(out.stderr).isEmpty)
            }
            if format == "human" {
                // Shown visibly, in the documented notation, on the line where it belongs.
                #expect(out.stdout.contains("h\\x1b[2J\\x1b]0;pwned\\x07\\n::error file=f,line=1::FORGED-DIR\\r::warning ::FORGED-DIR\\u{0085}\\u{009b}31m\\x7f\\u{202e}!"))
                #expect(out.stdout.split(separator: "\n").allSatisfy { !$0.hasPrefix("::") })
            }
        }
    }

    @Test func statusRendersOutsideValuesVisibly() throws {
        let h = Self.hostile("FORGED-STATUS")
        let record = DeploymentRecord(recordedBy: "ezmsi", mode: "daemon", containerName: "c" + h, containerID: "abc", image: "img" + h,
                                      imageID: "sha256:" + h, imageDigest: nil, command: ["docker", "run"], config: nil, envFile: nil,
                                      host: HostFacts(hostname: "host" + h, os: "Linux", kernel: "6", architecture: "x86_64", dockerEngine: nil),
                                      startedAt: "2026-01-01T00:00:00Z" + h)
        let container = ContainerState(id: "abc" + h, name: "c", status: "exited" + h, running: false, startedAt: "s" + h,
                                       finishedAt: "f" + h, exitCode: 2, restartCount: 0, oomKilled: false, imageID: "other" + h)
        let status = DeploymentStatus.evaluate(record: record, container: container, currentImageID: nil,
                                               logs: ["first" + h, h, "::error ::FORGED-LOG"])
        for color in [false, true] {
            let text = status.renderHuman(color: color)
            let allowed = color ? text.replacingOccurrences(of: "\u{1B}[", with: "[") : text   // its own colours only
            #expect(Self.rawControls(allowed).isEmpty, "\(text.debugDescription)")
            #expect(Self.commandLines(text).isEmpty, "\(Self.commandLines(text))")
            #expect(text.contains("FORGED-STATUS") && text.contains("    │ ::error ::FORGED-LOG"))
            let logLines = text.split(separator: "\n").filter { $0.contains("FORGED-LOG") || $0.contains("first") }
            #expect(logLines.count == 2 && logLines.allSatisfy { $0.hasPrefix("    │ ") }, "\(logLines)")
        }
        // Colour escapes are ezmsi's own: without colour there are none; with colour only SGR sequences.
        let coloured = status.renderHuman(color: true)
        #expect(coloured.components(separatedBy: "\u{1B}[").dropFirst().allSatisfy { $0.first.map { "0123".contains($0) } == true })
    }
}

/// `ezmsi status` on a real container whose log lines are hostile.
@Suite(.enabled(if: TestDocker.available))
struct HostileStatusTests {
    @Test func containerLogsCannotForgeLinesInStatus() throws {
        let dir = TempDir("hostile-status")
        var args = healthyDeployment(dir, env: DeploymentFormsTests.longRunningEnv)
        let h = HostileNamesTests.hostile("FORGED-LOG")
        args[args.firstIndex(of: "xrd")!] = "xrd" + h   // the fake program prints its arguments
        let name = "ezmsi-" + URL(fileURLWithPath: dir.path).lastPathComponent.lowercased()
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        let run = try ezmsi(["run", "--network", "none", "--force"] + args, timeout: 120)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(HostileNamesTests.rawControls(run.stdout + run.stderr).isEmpty, "run echoes raw controls")
        var json = try decodeJSON(try ezmsi(["status", "--format", "json", "--deployment", dir.path]).stdout)
        for _ in 0..<20 where (json["logs"] as? [String])?.isEmpty != false {
            usleep(250_000)
            json = try decodeJSON(try ezmsi(["status", "--format", "json", "--deployment", dir.path]).stdout)
        }
        // JSON: exactly what the container wrote (docker splits lines at LF only).
        let logs = try #require(json["logs"] as? [String])
        #expect(logs.joined(separator: "\n").contains("--topic_name xrd" + h), "\(logs)")
        let human = try ezmsi(["status", "--deployment", dir.path])
        #expect(human.status == 0, "\(human.stdout)\(human.stderr)")
        #expect(HostileNamesTests.rawControls(human.stdout).isEmpty, "\(human.stdout.debugDescription)")
        #expect(HostileNamesTests.commandLines(human.stdout).isEmpty, "\(HostileNamesTests.commandLines(human.stdout))")
        let forged = human.stdout.split(separator: "\n").filter { $0.contains("FORGED-LOG") || $0.contains("FAKE-OPENMSISTREAM") }
        #expect(forged.count == 2 && forged.allSatisfy { $0.hasPrefix("    │ ") }, "\(forged)")
        #expect(human.stdout.contains("\\x1b[2J"))
    }
}
