import Foundation
import Testing
@testable import EZMSICore

/// A probe for runner tests: sleeps, then reports the given finding.
struct ScriptedProbe: Probe {
    var id: String
    var title = "scripted"
    var rationale = "test"
    var dependsOn: [String] = []
    var examples: [ProbeExample] { [] }
    var seconds: Double = 0
    var finding: Finding?
    var network = false
    var needsNetwork: Bool { network }

    func check(_ facts: Facts) throws -> ProbeOutcome {
        if seconds > 0 { Thread.sleep(forTimeInterval: seconds) }
        return ProbeOutcome("done", findings: finding.map { [$0] } ?? [])
    }
}

/// CI gating: acknowledgements and their expiry, the run deadline, --offline, slow-probe notices, --retry-until.
struct GatingTests {
    static let quotedEnv = ExampleFacts.goodEnv.replacingOccurrences(of: "CONFLUENT_PASSWORD=s3cretpw", with: "CONFLUENT_PASSWORD=\"s3cretpw\"")

    func acknowledgementsFile(_ dir: TempDir, _ entries: [String]) {
        dir.write("acknowledgements.json", "{\n  \"acknowledgements\": [\n" + entries.joined(separator: ",\n") + "\n  ]\n}\n")
    }

    static func day(_ offset: Int) -> String { Acknowledgements.format(Date().addingTimeInterval(Double(offset) * 86_400)) }

    @Test func acknowledgedFindingIsShownAndNoLongerFailsExpiredOneFailsAgain() throws {
        let dir = TempDir("ack")
        let args = ["doctor", "--strict", "--only", "env.file", "--format", "json"] + healthyDeployment(dir, env: Self.quotedEnv)
        // Without an acknowledgement the quoted password warns, which fails under --strict.
        var out = try ezmsi(args)
        #expect(out.status == 1)
        #expect(check(try decodeJSON(out.stdout), "env.file")?["status"] as? String == "warn")

        acknowledgementsFile(dir, ["""
            { "probe": "env.file", "finding": "quoted-value", "reason": "the broker password really is quoted",
              "owner": "ada@lab.example.org", "expires": "\(Self.day(30))" }
            """])
        out = try ezmsi(args)
        #expect(out.status == 0, "\(out.stdout)\n\(out.stderr)")
        var envCheck = try #require(check(try decodeJSON(out.stdout), "env.file"))
        #expect(envCheck["status"] as? String == "acknowledged")
        let finding = try #require((envCheck["findings"] as? [[String: Any]])?.first { $0["code"] as? String == "quoted-value" })
        let note = try #require(finding["acknowledgement"] as? [String: Any])
        #expect(note["owner"] as? String == "ada@lab.example.org")
        #expect(note["expired"] as? Bool == false)
        let human = try ezmsi(args.filter { $0 != "--format" && $0 != "json" })
        #expect(human.stdout.contains("acknowledged until \(Self.day(30)) by ada@lab.example.org"), "\(human.stdout)")

        // Expired yesterday: the run fails and says why.
        acknowledgementsFile(dir, ["""
            { "probe": "env.file", "finding": "quoted-value", "reason": "r", "owner": "ada", "expires": "\(Self.day(-1))" }
            """])
        out = try ezmsi(args)
        #expect(out.status == 1)
        envCheck = try #require(check(try decodeJSON(out.stdout), "env.file"))
        #expect(envCheck["status"] as? String == "fail")
        #expect((envCheck["findings"] as? [[String: Any]])?.contains { $0["code"] as? String == "acknowledgement-expired" } == true)

        // Narrowed to another finding code: nothing is acknowledged, and the unused entry is pointed out.
        acknowledgementsFile(dir, ["""
            { "probe": "env.file", "finding": "duplicate-key", "reason": "r", "owner": "ada", "expires": "\(Self.day(5))" }
            """])
        out = try ezmsi(args)
        #expect(out.status == 1)
        #expect(out.stderr.contains("found nothing to acknowledge"))
    }

    @Test func noBlanketAcknowledgementAndBrokenFilesAreInputErrors() throws {
        let dir = TempDir("ackbad")
        let args = ["doctor", "--skip", "docker."] + healthyDeployment(dir)
        let cases: [(String, String)] = [
            ("{ \"probe\": \"*\", \"reason\": \"r\", \"owner\": \"o\", \"expires\": \"\(Self.day(1))\" }", "no probe is called \"*\""),
            ("{ \"probe\": \"env.\", \"reason\": \"r\", \"owner\": \"o\", \"expires\": \"\(Self.day(1))\" }", "no probe is called"),
            ("{ \"probe\": \"env.file\", \"owner\": \"o\", \"expires\": \"\(Self.day(1))\" }", "\"reason\" is missing"),
            ("{ \"probe\": \"env.file\", \"reason\": \"r\", \"expires\": \"\(Self.day(1))\" }", "\"owner\" is missing"),
            ("{ \"probe\": \"env.file\", \"reason\": \"r\", \"owner\": \"o\", \"expires\": \"2026-02-30\" }", "must be a date"),
            ("{ \"probe\": \"env.file\", \"reason\": \"r\", \"owner\": \"o\" }", "must be a date"),
            ("{ \"probe\": \"env.file\", \"reason\": \"r\", \"owner\": \"o\", \"expires\": \"\(Self.day(400))\" }", "more than 366 days"),
            ("{ \"probe\": \"env.file\", \"reason\": \"r\", \"owner\": \"o\", \"expires\": \"\(Self.day(1))\", \"all\": true }", "unknown field"),
        ]
        for (entry, message) in cases {
            acknowledgementsFile(dir, [entry])
            let out = try ezmsi(args)
            #expect(out.status == 3, "\(entry): \(out.stderr)")
            #expect(out.stderr.contains(message), "\(entry): \(out.stderr)")
            #expect(out.stderr.contains("acknowledgements.json:3"), "names file and line: \(out.stderr)")
        }
        dir.write("acknowledgements.json", "{ \"acknowledgements\": [ }\n")
        let broken = try ezmsi(args)
        #expect(broken.status == 3 && broken.stderr.contains("acknowledgements.json:1"), "\(broken.stderr)")
    }

    @Test func deadlineEndsTheRunWithACompleteReport() throws {
        let dir = TempDir("deadline")
        let path = dir.path + "/hang.sock"
        let fd = try boundSocket(path)
        listen(fd, 16)   // accepts, never answers
        defer { close(fd) }
        let start = Date()
        let out = try ezmsi(["doctor", "--format", "json", "--timeout", "30", "--deadline", "1.5"] + healthyDeployment(dir),
                            env: ["DOCKER_HOST": "unix://" + path])
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed < 6, "took \(elapsed) s")
        #expect(out.status == 1)
        let report = try decodeJSON(out.stdout)
        let checks = try #require(report["checks"] as? [[String: Any]])
        #expect(checks.count == (try catalogueCount()), "every probe is in the report")
        let daemon = try #require(check(report, "docker.daemon"))
        #expect(daemon["status"] as? String == "error")
        #expect((daemon["message"] as? String)?.contains("--deadline") == true)
        #expect(check(report, "env.file")?["status"] as? String == "pass", "probes that finished keep their result")
        for c in checks { #expect(c["durationMs"] is Double, "every check has a duration") }
    }

    @Test func offlineSkipsNetworkProbesAndSlowProbesGetANotice() throws {
        let facts = ExampleFacts.make()
        let probes: [any Probe] = [
            ScriptedProbe(id: "t.network", network: true),
            ScriptedProbe(id: "t.slow", seconds: 0.3),
            ScriptedProbe(id: "t.fast"),
        ]
        let offline = try Runner.run(probes, facts: facts, options: RunOptions(timeout: 5, offline: true, slowAfter: 0.2))
        #expect(offline[0].status == .skip)
        #expect(offline[0].message.contains("--offline"))
        #expect(offline[1].status == .pass)
        #expect(offline[1].findings.map(\.code) == ["slow-probe"])
        #expect(offline[2].findings.isEmpty)
        let online = try Runner.run(probes, facts: facts, options: RunOptions(timeout: 5))
        #expect(online[0].status == .pass)
    }

    @Test func acknowledgementsApplyOnlyToWhatTheyName() {
        let checks = [
            CheckResult(id: "a.b", title: "", status: .fail, message: "", durationMs: 1,
                        findings: [.fail("x", "x"), .warn("y", "y")]),
            CheckResult(id: "c.d", title: "", status: .error, message: "", durationMs: 1),
        ]
        let acks = Acknowledgements(path: "/a.json", entries: [
            .init(probe: "a.b", finding: "x", reason: "r", owner: "o", expires: GatingTests.day(3), line: 2),
            .init(probe: "c.d", finding: nil, reason: "r", owner: "o", expires: GatingTests.day(3), line: 3),
        ])
        let (applied, unused) = acks.apply(to: checks)
        #expect(applied[0].status == .warn, "y is still open")
        #expect(applied[0].findings[0].acknowledgement?.expired == false)
        #expect(applied[1].status == .error, "errors cannot be acknowledged")
        #expect(unused.map(\.probe) == ["c.d"])
        let whole = Acknowledgements(path: "/a.json", entries: [
            .init(probe: "a.b", finding: nil, reason: "r", owner: "o", expires: GatingTests.day(0), line: 2),
        ]).apply(to: checks).checks
        #expect(whole[0].status == .acknowledged, "an entry without a finding code covers the probe, through its expiry day")
    }

    @Test func retryUntilWaitsForTheDeploymentToBecomeReady() throws {
        let dir = TempDir("retry")
        let args = healthyDeployment(dir)
        let env = try String(contentsOfFile: dir.path + "/openmsi.env", encoding: .utf8)
        unlink(dir.path + "/openmsi.env")
        // The env-file appears 2 s later, as a boot script's mount or copy would make it.
        DispatchQueue.global().asyncAfter(deadline: .now() + 2) { dir.write("openmsi.env", env, mode: 0o600) }
        let out = try ezmsi(["doctor", "--skip", "docker.", "--retry-until", "30", "--retry-every", "0.5"] + args)
        #expect(out.status == 0, "\(out.stdout)\n\(out.stderr)")
        #expect(out.stderr.contains("attempt 1: failing: env.file"))
        #expect(out.stderr.contains("passed after"))
        // Never ready: gives up at the limit with the final status.
        unlink(dir.path + "/openmsi.env")
        let start = Date()
        let never = try ezmsi(["doctor", "--skip", "docker.", "--retry-until", "2", "--retry-every", "0.5"] + args)
        #expect(never.status == 1)
        #expect(Date().timeIntervalSince(start) < 10)
        #expect(never.stderr.contains("still failing after"))
    }
}

func catalogueCount() throws -> Int {
    let json = try decodeJSON(try ezmsi(["checks", "--format", "json"]).stdout)
    return (json["checks"] as? [Any])?.count ?? -1
}
