import Foundation

/// What the SARIF renderer needs to know about a probe beyond what the report carries: the catalogue entry.
public struct ProbeRule: Sendable {
    public var id: String
    public var title: String
    public var rationale: String
    public var dependsOn: [String]

    public init(id: String, title: String, rationale: String, dependsOn: [String] = []) {
        self.id = id
        self.title = title
        self.rationale = rationale
        self.dependsOn = dependsOn
    }
}

extension AcknowledgementNote {
    /// One line for the non-human formats: `acknowledged by OWNER until EXPIRES: REASON (FILE:LINE)`.
    var text: String {
        let verb = expired ? "acknowledgement expired on \(expires)" : "acknowledged until \(expires)"
        return "\(verb) by \(owner): \(reason) (\(source))"
    }
}

/// Helpers the report formats share.
enum FormatText {
    /// `docker.daemon` → `docker`.
    static func family(_ id: String) -> String { String(id.split(separator: ".").first ?? Substring(id)) }

    /// Milliseconds as seconds with millisecond precision, as JUnit and friends want them: `0.012`.
    static func seconds(_ ms: Double) -> String { String(format: "%.3f", max(0, ms) / 1000) }

    /// A duration for people: `0.4 ms`, `12 ms`, `1.3 s`.
    static func duration(_ ms: Double) -> String {
        if ms < 1 { return String(format: "%.1f ms", max(0, ms)) }
        if ms < 1000 { return "\(Int(ms.rounded())) ms" }
        return String(format: "%.1f s", ms / 1000)
    }

    /// `2 passed, 1 warning, 3 failed` in the human report's words and order.
    static func counts(_ report: Report) -> String {
        let c = report.summary.counts
        var parts: [String] = []
        for (status, one, many) in [(Status.pass, "passed", "passed"), (.acknowledged, "acknowledged", "acknowledged"),
                                    (.warn, "warning", "warnings"), (.fail, "failed", "failed"), (.error, "error", "errors"),
                                    (.blocked, "blocked", "blocked"), (.skip, "skipped", "skipped")] {
            let n = c[status.rawValue] ?? 0
            if n > 0 { parts.append("\(n) \(n == 1 ? one : many)") }
        }
        return parts.isEmpty ? "no probes ran" : parts.joined(separator: ", ")
    }

    static func verdict(_ report: Report) -> String { report.summary.exitCode == 0 ? "ready" : "not ready" }

    /// The findings that explain a status: warn and fail ones (info findings only explain a pass).
    static func problems(_ check: CheckResult) -> [Finding] { check.findings.filter { $0.severity != .info } }

    /// One finding as plain text: the message, where, what was expected, and the fix with its commands.
    static func plain(_ finding: Finding, withFix: Bool = true) -> String {
        var text = finding.message
        if let loc = finding.location { text += " (\(loc))" }
        if let e = finding.evidence {
            if let x = e.expected { text += "\n  expected: \(x)" }
            if let a = e.actual { text += "\n  actual:   \(a)" }
        }
        if withFix, finding.severity != .info, let r = finding.remediation {
            text += "\n  fix: \(r.text)"
            for command in r.commands { text += "\n    $ \(command)" }
        }
        if let ack = finding.acknowledgement { text += "\n  \(ack.text)" }
        return text
    }

    /// Everything a probe said, as plain text: its message, blockers, findings and fixes.
    static func plain(_ check: CheckResult) -> String {
        var text = "\(check.status.rawValue): \(check.message)"
        if !check.blockedBy.isEmpty { text += "\nblocked by: \(check.blockedBy.joined(separator: ", "))" }
        for finding in check.findings {
            text += "\n[\(finding.severity.rawValue)] \(finding.code): " + plain(finding).replacingOccurrences(of: "\n", with: "\n  ")
        }
        for fix in check.fixes {
            text += "\nfix \(fix.id): \(fix.title) (privilege: \(fix.privilege))"
            for command in fix.commands { text += "\n    $ \(command)" }
        }
        return text
    }

    /// A one-line headline for a non-passing probe: its worst finding with file:line, or its message.
    static func headline(_ check: CheckResult) -> String {
        let worst = check.findings.filter { $0.severity == .fail }.first ?? check.findings.filter { $0.severity == .warn }.first
        guard let worst else {
            if check.status == .blocked, !check.blockedBy.isEmpty {
                return "blocked by \(check.blockedBy.joined(separator: ", ")): \(check.message)"
            }
            return check.message
        }
        var text = worst.message
        if let loc = worst.location { text += " (\(loc))" }
        if let fix = worst.remediation?.text { text += " — fix: \(fix)" }
        return text
    }

    /// The slowest probes first.
    static func slowest(_ report: Report, count: Int) -> [CheckResult] {
        Array(report.checks.sorted { $0.durationMs > $1.durationMs }.prefix(count))
    }
}

extension Secrets.Scrubber {
    /// A string as JSONEncoder writes it inside quotes (it escapes `"`, `\\`, `/` and control characters).
    static func jsonEscaped(_ s: String) -> String {
        guard let data = try? JSONEncoder().encode([s]) else { return s }
        let text = String(decoding: data, as: UTF8.self)
        return String(text.dropFirst(2).dropLast(2))
    }

    /// The report with every secret cut out of every string, before a format encodes it. The output scrub cannot do
    /// this alone: XML, Markdown, SARIF URIs and GitHub workflow commands escape characters (`&`, `_`, `:`, `,`, `%`),
    /// and an escaped secret no longer matches. (The output is scrubbed again as written.)
    public func scrub(_ report: Report) -> Report {
        guard !secrets.isEmpty, let data = try? JSONEncoder().encode(report) else { return report }
        // The walk below costs four JSON passes; it is only needed when a secret, as JSONEncoder writes it, is in the
        // encoding at all (the usual case is that none is).
        let encoded = String(decoding: data, as: UTF8.self)
        guard secrets.contains(where: { encoded.contains($0) || encoded.contains(Self.jsonEscaped($0)) }) else { return report }
        return report.mapStrings(data, scrub) ?? report
    }
}

extension Report {
    /// The report with every string field shown visibly (`VisibleText.escape`): each field on its own, so that the
    /// text formats can then lay the fields out on lines of their own. Escaping fields, not the finished text, is
    /// what keeps ezmsi's own layout (its line breaks) intact while no outside value (a file name, a config value,
    /// docker's message) can add a line break, an escape sequence or an annotation of its own. Probes need not
    /// remember to escape what they interpolate: every field is escaped here, whatever it holds.
    public func visible() -> Report {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        guard let data = try? encoder.encode(self) else { return self }
        // JSON writes every control character and backslash with a backslash; C1 and bidi controls it leaves raw.
        // Without either, nothing needs escaping (the usual case), and the four JSON passes below are skipped.
        let encoded = String(decoding: data, as: UTF8.self)
        guard encoded.contains("\\") || encoded.unicodeScalars.contains(where: VisibleText.needsEscape) else { return self }
        return mapStrings(data, VisibleText.escape) ?? self
    }

    /// The report (given as its JSON encoding) with `f` applied to every string it holds, keys included.
    func mapStrings(_ data: Data, _ f: (String) -> String) -> Report? {
        guard let tree = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return nil }
        func walk(_ value: Any) -> Any {
            switch value {
            case let s as String: return f(s)
            case let a as [Any]: return a.map(walk)
            case let d as [String: Any]: return Dictionary(d.map { (f($0.key), walk($0.value)) }, uniquingKeysWith: { a, _ in a })
            default: return value
            }
        }
        guard let mapped = try? JSONSerialization.data(withJSONObject: walk(tree)) else { return nil }
        return try? JSONDecoder().decode(Report.self, from: mapped)
    }
}
