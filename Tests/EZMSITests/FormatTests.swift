import Foundation
import Testing
@testable import EZMSIChecks
@testable import EZMSICore

/// The oracles of the report formats: python3 `jsonschema` against schemas/ and the official SARIF 2.1.0 schema
/// (Tests/Oracles/validate_json.py), libxml2's XSD validator plus Python's XML parser for JUnit
/// (Tests/Oracles/junit_oracle.py, Tests/Fixtures/junit/junit.xsd). scripts/test provides them (ensure_format_oracles).
enum FormatOracle {
    static let validateJSON = Repo.root + "/Tests/Oracles/validate_json.py"
    static let junitOracle = Repo.root + "/Tests/Oracles/junit_oracle.py"

    static var sarifSchema: String {
        ProcessInfo.processInfo.environment["EZMSI_SARIF_SCHEMA"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "/tmp/ezmsi-ci/schemas/sarif-schema-2.1.0.json"
    }

    static func python(_ args: [String]) throws -> ProcessOutput {
        let env = ProcessInfo.processInfo.environment
        let python = Subprocess.which("python3", path: env["PATH"]) ?? "/usr/bin/python3"
        return try Subprocess.run(python, args, environment: env, timeout: 120)
    }

    /// Validates documents against a schema (a name in schemas/, or a path). Returns the oracle's verdict per document.
    static func validate(_ schema: String, _ documents: [String], _ dir: TempDir) throws -> ProcessOutput {
        if schema.hasPrefix("/") && !FileManager.default.fileExists(atPath: schema) {
            throw TestFailure("\(schema) is missing: run scripts/test, or `source scripts/lib/env.sh && ensure_format_oracles`")
        }
        var paths: [String] = []
        for (n, document) in documents.enumerated() { paths.append(dir.write("doc-\(UUID().uuidString.prefix(6))-\(n).json", document)) }
        return try python([validateJSON, schema] + paths)
    }

    static func expectValid(_ schema: String, _ documents: [String], _ context: String) throws {
        let dir = TempDir("schema")
        let out = try validate(schema, documents, dir)
        #expect(out.status == 0, "\(context): \(schema): \(out.stdout)\(out.stderr)")
    }

    /// The JUnit oracle: nil when invalid (reasons recorded), else what a CI reporter sees.
    static func junit(_ xml: String) throws -> (ok: Bool, cases: [[String: Any]], suites: [[String: Any]], problems: String) {
        let dir = TempDir("junit")
        let path = dir.write("report.xml", xml)
        let out = try python([junitOracle, path])
        guard out.status == 0, let object = try? decodeJSON(out.stdout) else { return (false, [], [], out.stderr + out.stdout) }
        return (true, object["cases"] as? [[String: Any]] ?? [], object["suites"] as? [[String: Any]] ?? [], "")
    }
}

/// A GitHub workflow command parsed back: `::name key=value,key=value::data`, unescaped as the runner does.
struct Annotation: Equatable {
    var command: String
    var properties: [String: String]
    var message: String

    static let pattern = try! NSRegularExpression(pattern: #"^::(error|warning|notice)(?: ([a-zA-Z]+=[^,:]*(?:,[a-zA-Z]+=[^,:]*)*))?::(.*)$"#)

    static func unescape(_ s: String) -> String {
        s.replacingOccurrences(of: "%0D", with: "\r").replacingOccurrences(of: "%0A", with: "\n")
            .replacingOccurrences(of: "%3A", with: ":").replacingOccurrences(of: "%2C", with: ",")
            .replacingOccurrences(of: "%25", with: "%")
    }

    /// nil for a line that is not a well-formed annotation (unescaped `,` or `:` in a property, unknown property, raw
    /// line break).
    static func parse(_ line: String) -> Annotation? {
        let ns = line as NSString
        guard let m = pattern.firstMatch(in: line, range: NSRange(location: 0, length: ns.length)) else { return nil }
        var properties: [String: String] = [:]
        if m.range(at: 2).location != NSNotFound {
            for pair in ns.substring(with: m.range(at: 2)).split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2, ["file", "line", "endLine", "col", "endColumn", "title"].contains(kv[0]) else { return nil }
                properties[kv[0]] = unescape(kv[1])
            }
        }
        return Annotation(command: ns.substring(with: m.range(at: 1)), properties: properties,
                          message: unescape(ns.substring(with: m.range(at: 3))))
    }
}

/// A GFM table row split into cells: `|` separates unless escaped; `\|` stands for `|`.
func markdownCells(_ row: String) -> [String]? {
    guard row.hasPrefix("| "), row.hasSuffix(" |") else { return nil }
    var cells: [String] = [], current = "", escaped = false
    for c in row.dropFirst().dropLast() {
        if escaped { current.append(c == "|" ? "|" : "\\" + String(c)); escaped = false; continue }
        if c == "\\" { escaped = true; continue }
        if c == "|" { cells.append(current.trimmingCharacters(in: .whitespaces)); current = ""; continue }
        current.append(c)
    }
    cells.append(current.trimmingCharacters(in: .whitespaces))
    return cells
}

/// The text of a Markdown code span.
func codeSpanText(_ s: String) -> String? {
    let fence = s.prefix { $0 == "`" }
    guard !fence.isEmpty, s.hasSuffix(String(fence)), s.count >= 2 * fence.count else { return nil }
    var inner = String(s.dropFirst(fence.count).dropLast(fence.count))
    if inner.hasPrefix(" ") && inner.hasSuffix(" ") && inner.count >= 2 && !inner.allSatisfy({ $0 == " " }) {
        inner = String(inner.dropFirst().dropLast())
    }
    return inner
}

struct FormatTests {
    static let formats = ["json", "junit", "markdown", "sarif", "github"]

    /// A deployment in a folder whose name holds every character some format must escape.
    static func weirdDeployment(_ dir: TempDir) -> [String] {
        let sub = dir.mkdir("we|ird`dir,a:b%c &<x>_y")
        _ = dir.write("we|ird`dir,a:b%c &<x>_y/openmsi.env",
                      "CONFLUENT_BOOTSTRAP_SERVERS=broker.example:9092\nCONFLUENT_USERNAME=\"lab\"\nCONFLUENT_PASSWORD=s3cretpw\n", mode: 0o600)
        _ = dir.write("we|ird`dir,a:b%c &<x>_y/config.config",
                      "[broker]\nbootstrap.servers = $CONFLUENT_BOOTSTRAP_SERVERS\nsasl.mechanism = PLAIN\n  oops\n[producer]\nkey.serializer = StringSerializer\n")
        _ = dir.mkdir("we|ird`dir,a:b%c &<x>_y/data")
        return ["--deployment", sub, "--folder", sub + "/data", "--", "DataFileUploadDirectory", "data", "--config", "config.config",
                "--topic_name", "xrd"]
    }

    static func dayString(_ offset: Double) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        return f.string(from: Date().addingTimeInterval(offset * 86_400))
    }

    /// (name, arguments, extra environment): healthy, failing with odd paths, acknowledged, strict, Docker unreachable.
    static func cases(_ dir: TempDir, keep: inout [TempDir]) -> [(String, [String], [String: String])] {
        let healthy = TempDir("fmt-healthy")
        let weirdDir = TempDir("fmt-weird")
        let weird = weirdDeployment(weirdDir)
        let acknowledgedDir = TempDir("fmt-ack")
        let acknowledged = weirdDeployment(acknowledgedDir)
        let ackFolder = acknowledged[1]
        _ = FileManager.default.createFile(atPath: ackFolder + "/acknowledgements.json", contents: Data("""
            {"acknowledgements": [
              {"probe": "env.file", "finding": "quoted-value", "reason": "the | quotes `really` belong, here: 100%",
               "owner": "ada@lab.example.org", "expires": "\(dayString(30))"},
              {"probe": "config.syntax", "finding": "continuation", "reason": "known", "owner": "bob", "expires": "\(dayString(30))"}
            ]}
            """.utf8))
        keep.append(contentsOf: [healthy, weirdDir, acknowledgedDir])
        return [
            ("healthy", ["--skip", "docker."] + healthyDeployment(healthy), [:]),
            ("failing", ["--skip", "docker."] + weird, [:]),
            ("acknowledged", ["--skip", "docker."] + acknowledged, [:]),
            ("strict", ["--strict", "--skip", "docker."] + weird, [:]),
            ("docker-unreachable", weird, ["DOCKER_HOST": "unix://" + dir.path + "/no-docker.sock"]),
        ]
    }

    @Test func everyFormatOfRealRunsValidatesAndAgreesWithTheJSONReport() throws {
        let dir = TempDir("fmt")
        var sawStatuses = Set<String>()
        var folders: [TempDir] = []
        for (name, args, env) in Self.cases(dir, keep: &folders) {
            var outputs: [String: ProcessOutput] = [:]
            for format in Self.formats {
                // --offline: the broker probes would depend on this machine's network; the formats do not.
                let out = try ezmsi(["doctor", "--offline", "--format", format] + args, env: env, timeout: 120)
                CLITests.assertClean(out, "\(name) \(format)")
                outputs[format] = out
            }
            let json = outputs["json"]!
            try FormatOracle.expectValid("report", [json.stdout], name)
            let report = try JSONDecoder().decode(Report.self, from: Data(json.stdout.utf8))
            for format in Self.formats {
                #expect(outputs[format]!.status == report.summary.exitCode, "\(name) \(format): exit \(outputs[format]!.status)")
            }
            sawStatuses.formUnion(report.checks.map(\.status.rawValue))
            try Self.checkJUnit(outputs["junit"]!.stdout, against: report, exactTimes: false, name)
            try Self.checkSARIF(outputs["sarif"]!.stdout, against: report, name)
            try Self.checkMarkdown(outputs["markdown"]!.stdout, against: report, name)
            try Self.checkGitHub(outputs["github"]!.stdout, against: report, name)
        }
        // The runs above cover these statuses for real (error comes from the in-process report below).
        for status in ["pass", "warn", "fail", "skip", "blocked", "acknowledged"] {
            #expect(sawStatuses.contains(status), "no run gave \(status): \(sawStatuses.sorted())")
        }
    }

    /// One report with every status, odd characters and acknowledgements (one expired), rendered in every format in
    /// process: the formats agree with it exactly, durations included.
    @Test func oneReportInEveryFormat() throws {
        let report = try Self.syntheticReport(strict: false)
        try FormatOracle.expectValid("report", [JSONRenderer.render(report)], "synthetic")
        try Self.checkJUnit(JUnitRenderer.render(report), against: report, exactTimes: true, "synthetic")
        try Self.checkSARIF(SARIFRenderer.render(report, rules: Catalogue.all.map {
            ProbeRule(id: $0.id, title: $0.title, rationale: $0.rationale, dependsOn: $0.dependsOn)
        }), against: report, "synthetic")
        try Self.checkMarkdown(MarkdownRenderer.render(report), against: report, "synthetic")
        try Self.checkGitHub(GitHubRenderer.render(report), against: report, exactTimes: true, "synthetic")
        let strict = try Self.syntheticReport(strict: true)
        try Self.checkJUnit(JUnitRenderer.render(strict), against: strict, exactTimes: true, "synthetic strict")
        try Self.checkGitHub(GitHubRenderer.render(strict), against: strict, exactTimes: true, "synthetic strict")
        // GitHub paths are relative to the workspace when inside it.
        let relative = GitHubRenderer.render(report, workspace: "/lab/deploy/")
        #expect(relative.contains("file=openmsi.env,line=2,"), "\(relative)")
    }

    /// A secret planted in the env-file that also appears in a path never shows, in any format, escaped or not.
    @Test func secretsStayOutOfEveryFormat() throws {
        let secret = "Pl@nt&d_s3cr:t,4711"
        let dir = TempDir("fmt-secret")
        var args = healthyDeployment(dir, env: ExampleFacts.goodEnv + "PLANTED=\(secret)\n")
        let folder = dir.mkdir("data-\(secret)")
        args[args.firstIndex(of: "--folder")! + 1] = folder
        let variants = [secret, secret.replacingOccurrences(of: "&", with: "&amp;"),
                        MarkdownRenderer.escape(secret), GitHubRenderer.escapeProperty(secret), SARIFRenderer.uri(secret),
                        "s3cr%3At", "s3cr:t%2C4711", "nt\\&d"]
        for format in Self.formats + ["human"] {
            let out = try ezmsi(["doctor", "--offline", "--format", format, "--skip", "docker."] + args)
            for v in variants {
                #expect(!out.stdout.contains(v) && !out.stderr.contains(v), "\(format) shows the secret as \(v)")
            }
            // The secret was there to leak: the path that holds it is in the report, redacted.
            if format == "json" { #expect(out.stdout.contains("data-‹redacted›"), "\(out.stdout.prefix(2000))") }
        }
    }

    @Test func everyJSONOutputMatchesItsSchema() throws {
        let checks = try ezmsi(["checks", "--format", "json"])
        #expect(checks.status == 0)
        try FormatOracle.expectValid("checks", [checks.stdout], "checks")
        let dir = TempDir("fmt-json")
        var commands: [String] = []
        for mode in ["daemon", "foreground", "shell"] {
            let out = try ezmsi(["command", "--format", "json", "--force", "--mode", mode] + healthyDeployment(dir),
                                env: ["DOCKER_HOST": "unix://" + dir.path + "/none.sock"])
            #expect(out.status == 0, "\(out.stderr)")
            commands.append(out.stdout)
        }
        try FormatOracle.expectValid("command", commands, "command")
        let forced = try JSONSerialization.jsonObject(with: Data(commands[0].utf8)) as? [String: Any]
        #expect(forced?["forced"] as? Bool == true)
    }

    /// The validators reject broken documents: the tests above can fail.
    @Test func theOraclesRejectBrokenDocuments() throws {
        let dir = TempDir("fmt-neg")
        let report = try Self.syntheticReport(strict: false)
        let good = JSONRenderer.render(report)
        func mutate(_ text: String, _ change: (inout [String: Any]) -> Void) -> String {
            var object = try! decodeJSON(text)
            change(&object)
            return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        }
        let brokenReports = [
            mutate(good) { $0["schemaVersion"] = 1 },
            mutate(good) { $0["extra"] = true },
            mutate(good) { $0["summary"] = nil },
            mutate(good) { var c = $0["checks"] as! [[String: Any]]; c[0]["status"] = "passed"; $0["checks"] = c },
            mutate(good) { var c = $0["checks"] as! [[String: Any]]; c[0]["durationMs"] = -1; $0["checks"] = c },
            mutate(good) {
                var c = $0["checks"] as! [[String: Any]]
                var f = c[2]["findings"] as! [[String: Any]]
                f[0]["severity"] = "error"
                c[2]["findings"] = f
                $0["checks"] = c
            },
        ]
        let out = try FormatOracle.validate("report", brokenReports, dir)
        #expect(out.status == 1)
        #expect(out.stdout.split(separator: "\n").filter { $0.hasPrefix("invalid ") }.count >= brokenReports.count, "\(out.stdout)")
        #expect(!out.stdout.contains("\nok "), "\(out.stdout)")
        for (schema, document) in [("checks", #"{"schemaVersion": 1, "checks": [{"id": "env.file", "title": "t", "dependsOn": [], "rationale": "r"}]}"#),
                                   ("command", #"{"mode": "detached", "argv": ["docker", "run", "x"], "command": "docker run x", "forced": false, "failing": []}"#),
                                   ("status", #"{"schemaVersion": 1, "state": "gone", "container": null, "drift": [], "logs": []}"#),
                                   ("fix", #"{"folder": "/x", "identity": "1000", "plans": [{"kind": "rm"}], "userPlan": "u", "after": {}}"#)] {
            let rejected = try FormatOracle.validate(schema, [document], dir)
            #expect(rejected.status == 1, "\(schema) accepted a broken document: \(rejected.stdout)\(rejected.stderr)")
        }
        // SARIF: an unknown level and a missing version break the official schema.
        let sarif = SARIFRenderer.render(report, rules: [])
        let badLevel = sarif.replacingOccurrences(of: "\"level\" : \"error\"", with: "\"level\" : \"fatal\"")
        #expect(badLevel != sarif)
        let noVersion = mutate(sarif) { $0["version"] = nil }
        let sarifOut = try FormatOracle.validate(FormatOracle.sarifSchema, [sarif, badLevel, noVersion], dir)
        #expect(sarifOut.stdout.hasPrefix("ok "), "\(sarifOut.stdout)")
        #expect(sarifOut.stdout.split(separator: "\n").filter { $0.hasPrefix("invalid ") }.count >= 2, "\(sarifOut.stdout)")
        // JUnit: a missing time, a wrong count, two outcomes in one testcase, a bare root.
        let junit = JUnitRenderer.render(report)
        #expect(try FormatOracle.junit(junit).ok)
        let noTime = junit.replacingOccurrences(of: #"name="docker.cli" time=""#, with: #"name="docker.cli" tim=""#)
        let wrongCount = junit.replacingOccurrences(of: #"<testsuites name="ezmsi doctor" tests="\#(report.checks.count)""#,
                                                    with: #"<testsuites name="ezmsi doctor" tests="\#(report.checks.count + 1)""#)
        let twoOutcomes = junit.replacingOccurrences(of: "<skipped message=", with: "<skipped/><skipped message=")
        for (label, bad) in [("no time", noTime), ("wrong count", wrongCount), ("two outcomes", twoOutcomes),
                             ("bare suite", "<testsuite name=\"x\" tests=\"0\" failures=\"0\" errors=\"0\"/>")] {
            #expect(bad != junit)
            let verdict = try FormatOracle.junit(bad)
            #expect(!verdict.ok, "the JUnit oracle accepted \(label)")
        }
        // GitHub: unescaped separators in a property are caught by the parser.
        #expect(Annotation.parse("::error file=/a,b:c.env,line=2::x") == nil)
        #expect(Annotation.parse("::error file=/a%2Cb%3Ac.env,line=2::x%0Ay")?.properties["file"] == "/a,b:c.env")
        #expect(Annotation.parse("::warning title=t::a%25b%0D%0Ac")?.message == "a%b\r\nc")
        // Markdown: a cell with a raw pipe splits the row.
        #expect(markdownCells("| fail | `a|b` | m | 1 ms |")?.count == 5)
        #expect(markdownCells("| fail | `a\\|b` | m | 1 ms |")?.count == 4)
    }

    @Test func escapingDetails() {
        #expect(GitHubRenderer.escapeData("50% done\r\nnext") == "50%25 done%0D%0Anext")
        #expect(GitHubRenderer.escapeProperty("/a,b:c%") == "/a%2Cb%3Ac%25")
        #expect(MarkdownRenderer.code("a`b") == "``a`b``")
        #expect(MarkdownRenderer.code("`x`") == "`` `x` ``")
        #expect(codeSpanText(MarkdownRenderer.code("``a`` `b")) == "``a`` `b")
        #expect(MarkdownRenderer.fenced(["echo ```x```"], indent: "").hasPrefix("````sh\n"))
        #expect(XML.text("a\u{1}b<&>") == "a\u{FFFD}b&lt;&amp;&gt;")
        #expect(XML.attribute("l1\nl2\t\"q\"") == "l1&#10;l2&#9;&quot;q&quot;")
        #expect(SARIFRenderer.uri("/tmp/a b/c%d#e?f") == "file:///tmp/a%20b/c%25d%23e%3Ff")
        #expect(SARIFRenderer.uri("a:b/c") == "./a:b/c")
    }

    // MARK: - the per-format checks

    static func family(_ id: String) -> String { String(id.split(separator: ".")[0]) }

    static func checkJUnit(_ xml: String, against exact: Report, exactTimes: Bool, _ name: String) throws {
        let report = exact.visible()   // the text formats show each field visibly (VisibleText)
        let verdict = try FormatOracle.junit(xml)
        #expect(verdict.ok, "\(name): \(verdict.problems)")
        guard verdict.ok else { return }
        #expect(verdict.suites.count == 1)
        #expect(verdict.cases.count == report.checks.count, "\(name)")
        for (check, testcase) in zip(report.checks, verdict.cases) {
            #expect(testcase["name"] as? String == check.id)
            #expect(testcase["classname"] as? String == "ezmsi." + family(check.id))
            let expected: String
            switch check.status {
            case .fail, .blocked: expected = "failure"
            case .error: expected = "error"
            case .skip: expected = "skipped"
            case .warn: expected = report.summary.strict ? "failure" : "passed"
            case .pass, .acknowledged: expected = "passed"
            }
            #expect(testcase["outcome"] as? String == expected, "\(name) \(check.id) \(check.status)")
            if exactTimes, let t = testcase["time"] as? Double { #expect(abs(t - check.durationMs / 1000) < 0.0006, "\(check.id) time \(t)") }
            let text = (testcase["text"] as? String ?? "") + (testcase["out"] as? String ?? "")
            for finding in check.findings where finding.severity != .info {
                if let loc = finding.location { #expect(text.contains(loc.description), "\(name) \(check.id): no \(loc)") }
                if let fix = finding.remediation {
                    #expect(text.contains(fix.text), "\(name) \(check.id): no fix")
                    for c in fix.commands { #expect(text.contains(c)) }
                }
            }
            if check.status == .acknowledged { #expect((testcase["out"] as? String ?? "").contains("acknowledged")) }
        }
    }

    static func checkSARIF(_ text: String, against report: Report, _ name: String) throws {
        let dir = TempDir("sarif")
        let out = try FormatOracle.validate(FormatOracle.sarifSchema, [text], dir)
        #expect(out.status == 0, "\(name): SARIF 2.1.0 schema: \(out.stdout)\(out.stderr)")
        let log = try decodeJSON(text)
        #expect(log["version"] as? String == "2.1.0")
        let run = try #require((log["runs"] as? [[String: Any]])?.first)
        let driver = try #require((run["tool"] as? [String: Any])?["driver"] as? [String: Any])
        #expect(driver["name"] as? String == "ezmsi")
        #expect(driver["version"] as? String == EZMSI.version)
        let rules = driver["rules"] as? [[String: Any]] ?? []
        let ruleIDs = rules.compactMap { $0["id"] as? String }
        for check in report.checks { #expect(ruleIDs.contains(check.id), "\(name): no rule \(check.id)") }
        let invocation = try #require((run["invocations"] as? [[String: Any]])?.first)
        #expect(invocation["executionSuccessful"] as? Bool == true)
        let probes = (invocation["properties"] as? [String: Any])?["probes"] as? [[String: Any]] ?? []
        #expect(probes.count == report.checks.count)
        let results = run["results"] as? [[String: Any]] ?? []
        var expected: [(String, String, Finding?)] = []
        for check in report.checks {
            for f in check.findings {
                let level = f.severity == .fail ? "error" : f.severity == .info ? "note"
                    : (report.summary.strict ? "error" : "warning")
                expected.append((check.id, level, f))
            }
            if check.findings.allSatisfy({ $0.severity == .info }), check.status == .error || check.status == .blocked {
                expected.append((check.id, check.status == .error ? "error" : "note", nil))
            }
        }
        #expect(results.count == expected.count, "\(name): \(results.count) results for \(expected.count)")
        for (result, (id, level, finding)) in zip(results, expected) {
            #expect(result["ruleId"] as? String == id)
            if let index = result["ruleIndex"] as? Int { #expect(rules[index]["id"] as? String == id) }
            #expect(result["level"] as? String == level, "\(name) \(id)")
            #expect((result["properties"] as? [String: Any])?["durationMs"] != nil)
            let physical = ((result["locations"] as? [[String: Any]])?.first?["physicalLocation"]) as? [String: Any]
            if let location = finding?.location {
                let uri = (physical?["artifactLocation"] as? [String: Any])?["uri"] as? String ?? ""
                #expect(URL(string: uri)?.path == location.file, "\(name): \(uri) is not \(location.file)")
                #expect((physical?["region"] as? [String: Any])?["startLine"] as? Int == location.line)
            } else {
                #expect(physical == nil)
            }
            let suppression = (result["suppressions"] as? [[String: Any]])?.first
            if let ack = finding?.acknowledgement, !ack.expired, finding?.severity != .info {
                #expect(suppression?["status"] as? String == "accepted", "\(name) \(id)")
                #expect(suppression?["justification"] as? String == ack.reason)
            } else {
                #expect(suppression == nil, "\(name) \(id)")
            }
        }
    }

    static func checkMarkdown(_ text: String, against exact: Report, _ name: String) throws {
        let report = exact.visible()   // the text formats show each field visibly (VisibleText)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first?.hasPrefix("### ezmsi doctor: \(report.summary.exitCode == 0 ? "ready" : "not ready")") == true, "\(name)")
        let header = try #require(lines.firstIndex(of: "| status | probe | message | duration |"))
        #expect(lines[header + 1] == "|---|---|---|---:|")
        let rows = Array(lines[(header + 2)...].prefix { $0.hasPrefix("|") })
        #expect(rows.count == report.checks.count, "\(name)")
        for (row, check) in zip(rows, report.checks) {
            let cells = markdownCells(row)
            #expect(cells?.count == 4, "\(name): \(row)")
            guard let cells, cells.count == 4 else { continue }
            #expect(cells[0].hasSuffix(check.status.rawValue))
            #expect(codeSpanText(cells[1]) == check.id)
            #expect(cells[3].hasSuffix("ms") || cells[3].hasSuffix(" s"))
        }
        for check in report.checks where check.status != .pass && check.status != .skip {
            for finding in check.findings where finding.severity != .info {
                if let loc = finding.location { #expect(text.contains(MarkdownRenderer.code(loc.description)), "\(name): \(loc)") }
                for c in finding.remediation?.commands ?? [] { #expect(lines.contains { $0.hasSuffix(c) }, "\(name): \(c)") }
            }
        }
    }

    /// `exactTimes`: the text was rendered from `report` itself (not from another run of the same deployment), so the
    /// slowest probes it names are `report`'s.
    static func checkGitHub(_ text: String, against exact: Report, exactTimes: Bool = false, _ name: String) throws {
        let report = exact.visible()   // the text formats show each field visibly (VisibleText)
        let lines = text.split(separator: "\n").map(String.init)
        let annotations = lines.compactMap(Annotation.parse)
        #expect(annotations.count == lines.count, "\(name): lines that are not annotations: \(lines.filter { Annotation.parse($0) == nil })")
        var expected: [(String, Finding?)] = []
        for check in report.checks {
            let problems = check.findings.filter { $0.severity != .info }
            for f in problems {
                let command = f.acknowledgement.map { !$0.expired } == true ? "notice"
                    : (f.severity == .fail || report.summary.strict ? "error" : "warning")
                expected.append((command, f))
            }
            if problems.isEmpty, check.status == .error || check.status == .blocked { expected.append(("error", nil)) }
        }
        #expect(annotations.count == expected.count + 1, "\(name): \(annotations.count) annotations for \(expected.count) + summary")
        for (annotation, (command, finding)) in zip(annotations, expected) {
            #expect(annotation.command == command, "\(name): \(annotation)")
            if let loc = finding?.location {
                #expect(annotation.properties["file"] == loc.file, "\(name): \(annotation.properties)")
                #expect(annotation.properties["line"] == loc.line.map(String.init))
            }
            if let finding { #expect(annotation.message.hasPrefix(finding.message)) }
            if let fix = finding?.remediation { #expect(annotation.message.contains("fix: " + fix.text)) }
        }
        let summary = try #require(annotations.last)
        #expect(summary.command == "notice")
        #expect(summary.message.contains("slowest: "))
        let named = summary.message.components(separatedBy: "slowest: ").last?.split(separator: ",")
            .compactMap { $0.split(separator: " ").first.map(String.init) } ?? []
        #expect(named.count == min(3, report.checks.count) && named.allSatisfy { id in report.checks.contains { $0.id == id } }, "\(name): \(named)")
        if exactTimes {
            #expect(named == Array(report.checks.sorted { $0.durationMs > $1.durationMs }.prefix(3).map(\.id)), "\(name): \(named)")
        }
    }

    // MARK: - a report with everything

    static func syntheticReport(strict: Bool) throws -> Report {
        let dir = TempDir("fmt-synth")
        var flags = DeploymentFlags()
        flags.deployment = dir.path
        flags.command = ["DataFileUploadDirectory", "data", "--config", "config.config"]
        let deployment = try DeploymentResolver.resolve(flags, cwd: dir.path)
        let env = "/lab/deploy/openmsi.env", odd = "/lab/we|ird`dir,a:b%c &<x>_y/config.config"
        let ack = AcknowledgementNote(reason: "accepted | `for now`, really: 100%", owner: "ada@lab.example.org",
                                      expires: dayString(30), expired: false, source: Location(file: "/lab/deploy/acknowledgements.json", line: 3))
        var acknowledged = Finding.warn("quoted-value", "CONFLUENT_USERNAME's value is in quotes", at: Location(file: env, line: 2),
                                        fix: Remediation("remove the quotes", commands: ["sed -i 's/\"//g' \(env)"]))
        acknowledged.acknowledgement = ack
        var expired = Finding.fail("serializer-missing", "no value.serializer", at: Location(file: odd, line: 5),
                                   fix: Remediation("add it", commands: ["printf 'value.serializer = DataFileChunkSerializer\\n' >> '\(odd)'"]))
        expired.acknowledgement = AcknowledgementNote(reason: "old", owner: "bob", expires: "2020-01-01", expired: true,
                                                      source: Location(file: "/lab/deploy/acknowledgements.json", line: 9))
        let checks: [CheckResult] = [
            CheckResult(id: "docker.cli", title: "Docker client on PATH", status: .skip, message: "skipped (--skip)", durationMs: 0),
            CheckResult(id: "docker.daemon", title: "Docker daemon reachable", status: .error,
                        message: "probe crashed: timed out after 10 s\r\nsecond line \u{1} ctl", durationMs: 10_000.25),
            CheckResult(id: "env.file", title: "Env-file", status: .acknowledged, message: "3 variables | ok `mostly`", durationMs: 0.4321,
                        findings: [acknowledged, .info("note", "info < & > \"note\"")]),
            CheckResult(id: "env.compose", title: "Compose", status: .warn, message: "1 of 3 differ", durationMs: 1.5,
                        findings: [.warn("compose-differs", "differs, here: 50%\nsecond line", at: Location(file: env, line: 2))]),
            CheckResult(id: "config.keys", title: "Config keys", status: .fail, message: "1 problem", durationMs: 2,
                        findings: [expired, .fail("no-line", "a file without a line", at: Location(file: odd))],
                        remediation: expired.remediation,
                        fixes: [FixAction(id: "add-key", title: "Add the key", commands: ["echo ```x``` | tee -a '\(odd)'"])]),
            CheckResult(id: "docker.image", title: "Image present", status: .blocked, message: "not checked", durationMs: 0,
                        blockedBy: ["docker.daemon"]),
            CheckResult(id: "command.program", title: "Program", status: .pass, message: "fine", durationMs: 1234.5678,
                        findings: [.info("slow-probe", "took 1.2 s")]),
        ]
        return Report(checks: checks, deployment: deployment, startedAt: Date(), durationMs: 10_050, strict: strict)
    }
}

/// The formats that need the test Docker engine: a full run with the Docker probes, `ezmsi status` and `ezmsi fix`.
@Suite(.enabled(if: TestDocker.available))
struct FormatDockerTests {
    @Test func fullRunStatusAndFixJSONMatchTheirSchemas() throws {
        // A full doctor run, Docker probes included, in every format (--offline: no broker to talk to here).
        let dir = TempDir("fmtd")
        let args = healthyDeployment(dir, env: DeploymentFormsTests.longRunningEnv)
        for format in FormatTests.formats {
            let out = try ezmsi(["doctor", "--offline", "--format", format] + args, timeout: 120)
            #expect(out.status == 0, "\(format): \(out.stdout)\(out.stderr)")
            if format == "json" {
                try FormatOracle.expectValid("report", [out.stdout], "full run")
                let report = try JSONDecoder().decode(Report.self, from: Data(out.stdout.utf8))
                #expect(report.checks.first { $0.id == "docker.daemon" }?.status == .pass)
                let junit = try ezmsi(["doctor", "--offline", "--format", "junit"] + args, timeout: 120)
                try FormatTests.checkJUnit(junit.stdout, against: report, exactTimes: false, "full run")
            }
            if format == "sarif" { try FormatOracle.expectValid(FormatOracle.sarifSchema, [out.stdout], "full run sarif") }
        }

        // ezmsi status: running, then missing.
        let name = "ezmsi-" + URL(fileURLWithPath: dir.path).lastPathComponent.lowercased()
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        // --force: the broker probes (which `run` cannot skip) fail without a broker; the container starts anyway.
        let run = try ezmsi(["run", "--network", "none", "--force"] + args)
        #expect(run.status == 0, "\(run.stderr)")
        let running = try ezmsi(["status", "--format", "json", "--deployment", dir.path])
        #expect(running.status == 0, "\(running.stdout)\(running.stderr)")
        _ = try TestDocker.run(["rm", "-f", name])
        let missing = try ezmsi(["status", "--format", "json", "--deployment", dir.path])
        #expect(missing.status == 1)
        try FormatOracle.expectValid("status", [running.stdout, missing.stdout], "status")
        #expect(try decodeJSON(missing.stdout)["state"] as? String == "missing")

        // ezmsi fix: the dry run, then --yes (whose `after` is a doctor report).
        let fixDir = TempDir("fmtfix")
        var fixArgs = healthyDeployment(fixDir)
        chown(fixDir.path + "/data", 0, 0)
        chmod(fixDir.path + "/data", 0o700)
        fixArgs[fixArgs.firstIndex(of: "--folder")! + 1] = fixDir.path + "/data"
        let state = TempDir("fmtfix-state")
        let dry = try ezmsi(["fix", "--format", "json"] + fixArgs, env: ["XDG_STATE_HOME": state.path])
        #expect(dry.status == 0, "\(dry.stderr)")
        let applied = try ezmsi(["fix", "--format", "json", "--yes"] + fixArgs, env: ["XDG_STATE_HOME": state.path], timeout: 120)
        #expect(applied.stdout.contains("\"after\""), "\(applied.stdout)\(applied.stderr)")
        let again = try ezmsi(["fix", "--format", "json", "--yes"] + fixArgs, env: ["XDG_STATE_HOME": state.path], timeout: 120)
        try FormatOracle.expectValid("fix", [dry.stdout, applied.stdout, again.stdout], "fix")
    }
}
