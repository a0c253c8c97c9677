import Foundation

/// `ezmsi doctor --format markdown`: the report for pasting into a ticket (GitHub/GitLab flavoured Markdown).
///
/// A summary line, a table of every probe (status, id, message, duration), then the details of every probe that did
/// not pass cleanly: its findings with file:line, expected/actual, the fix and its commands in code blocks.
public enum MarkdownRenderer {
    static let icons: [Status: String] = [.pass: "✅", .acknowledged: "☑️", .warn: "⚠️", .fail: "❌", .error: "💥",
                                          .blocked: "⛔", .skip: "⏭️"]

    public static func render(_ unescaped: Report) -> String {
        let report = unescaped.visible()   // each outside field escaped before the layout adds its own lines
        let d = report.deployment
        var out = "### ezmsi doctor: \(FormatText.verdict(report)) — \(FormatText.counts(report)) (\(FormatText.duration(report.durationMs)))\n\n"
        out += "- deployment: \(code(d.directory))\n"
        out += "- image: \(code(d.image))\n"
        if !d.command.isEmpty { out += "- command: \(code(ShellWords.join(d.command)))\n" }
        out += "- ezmsi \(escape(report.tool.version)), started \(escape(report.startedAt))" +
            (report.summary.strict ? ", `--strict`" : "") + ", exit code \(report.summary.exitCode)\n\n"

        out += "| status | probe | message | duration |\n|---|---|---|---:|\n"
        for check in report.checks {
            let status = "\(icons[check.status] ?? "") \(check.status.rawValue)"
            out += "| \(cell(status)) | \(cell(code(check.id))) | \(cell(escape(check.message, pipes: false))) | \(cell(FormatText.duration(check.durationMs))) |\n"
        }

        let detailed = report.checks.filter { ![.pass, .skip].contains($0.status) || !FormatText.problems($0).isEmpty }
        if !detailed.isEmpty { out += "\n#### Details\n" }
        for check in detailed {
            out += "\n**\(icons[check.status] ?? "") \(code(check.id))** — \(escape(check.title)): \(check.status.rawValue)"
            out += check.status == .acknowledged ? " (every warning and failure is acknowledged; it passes)\n\n" : "\n\n"
            if !check.blockedBy.isEmpty {
                out += "- blocked by \(check.blockedBy.map(code).joined(separator: ", ")): \(escape(check.message))\n"
            } else if FormatText.problems(check).isEmpty {
                out += "- \(escape(check.message))\n"
            }
            for finding in FormatText.problems(check) {
                out += "- **\(finding.severity.rawValue)** \(code(finding.code)): \(escape(finding.message))"
                if let loc = finding.location { out += " — \(code(loc.description))" }
                out += "\n"
                if let e = finding.evidence {
                    if let x = e.expected { out += "  - expected: \(code(x))\n" }
                    if let a = e.actual { out += "  - actual: \(code(a))\n" }
                }
                if let ack = finding.acknowledgement { out += "  - \(escape(ack.text))\n" }
                if let r = finding.remediation {
                    out += "  - fix: \(escape(r.text))\n"
                    if !r.commands.isEmpty { out += fenced(r.commands, indent: "    ") }
                }
            }
            for fix in check.fixes {
                out += "- ezmsi fix \(code(fix.id)): \(escape(fix.title)) (privilege: \(escape(fix.privilege)))\n"
                if !fix.commands.isEmpty { out += fenced(fix.commands, indent: "  ") }
            }
        }
        return out
    }

    /// Inline code that shows `s` verbatim: the fence is one backtick longer than the longest run of backticks
    /// inside, padded with a space when `s` starts or ends with a backtick (CommonMark 6.1). Line breaks become
    /// spaces (a code span cannot hold one).
    static func code(_ s: String) -> String {
        let flat = s.replacingOccurrences(of: "\r\n", with: " ").replacingOccurrences(of: "\n", with: " ")
            .replacingOccurrences(of: "\r", with: " ")
        var longest = 0, run = 0
        for c in flat {
            if c == "`" { run += 1; longest = max(longest, run) } else { run = 0 }
        }
        let fence = String(repeating: "`", count: longest + 1)
        let pad = flat.hasPrefix("`") || flat.hasSuffix("`") || (flat.hasPrefix(" ") && flat.hasSuffix(" ") && !flat.allSatisfy { $0 == " " }) ? " " : ""
        if flat.isEmpty { return "` `" }
        return fence + pad + flat + pad + fence
    }

    /// Plain text with Markdown's punctuation escaped, on one line. `pipes: false` leaves `|` to `cell`.
    static func escape(_ s: String, pipes: Bool = true) -> String {
        var out = ""
        for c in s {
            switch c {
            case "|" where !pipes: out.append(c)
            case "\\", "`", "*", "_", "[", "]", "<", ">", "#", "|", "~", "!", "&":
                out.append("\\"); out.append(c)
            case "\r\n", "\n", "\r": out.append(" ")
            default: out.append(c)
            }
        }
        return out
    }

    /// A table cell: GFM splits cells on every unescaped `|`, even inside code spans (where `\|` shows as `|`), so
    /// every one is escaped. Give it text escaped with `pipes: false`, or code spans.
    static func cell(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }

    /// Commands in a fenced code block whose fence is longer than any backtick run inside.
    static func fenced(_ lines: [String], indent: String) -> String {
        var longest = 0
        for line in lines {
            var run = 0
            for c in line { if c == "`" { run += 1; longest = max(longest, run) } else { run = 0 } }
        }
        let fence = String(repeating: "`", count: max(3, longest + 1))
        var out = indent + fence + "sh\n"
        for line in lines {
            for part in line.split(separator: "\n", omittingEmptySubsequences: false) { out += indent + part + "\n" }
        }
        return out + indent + fence + "\n"
    }
}
