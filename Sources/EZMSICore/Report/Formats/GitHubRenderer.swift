import Foundation

/// `ezmsi doctor --format github`: GitHub Actions workflow commands, so that findings show as annotations.
///
/// One line per warn/fail finding: `::error file=F,line=L,title=T::message` (fail, and warn with `--strict`),
/// `::warning …` (warn), `::notice …` (acknowledged, unexpired); a probe that is `error` or `blocked` without such findings gets one
/// line of its own; info findings are left out (GitHub shows only ten annotations of each kind per step). A final
/// `::notice` sums the run up and names the slowest probes. Paths under `workspace` ($GITHUB_WORKSPACE) are made
/// relative to it, as GitHub wants them.
public enum GitHubRenderer {
    public static func render(_ unescaped: Report, workspace: String? = nil) -> String {
        let report = unescaped.visible()   // each outside field escaped before the layout adds its own lines
        var out = ""
        for check in report.checks {
            var wrote = false
            for finding in FormatText.problems(check) {
                let ack = finding.acknowledgement
                let command: String
                if let ack, !ack.expired {
                    command = "notice"
                } else if finding.severity == .fail || report.summary.strict {
                    command = "error"
                } else {
                    command = "warning"
                }
                var message = finding.message
                if let loc = finding.location { message += " (\(loc))" }
                if let e = finding.evidence {
                    if let x = e.expected { message += "\nexpected: \(x)" }
                    if let a = e.actual { message += "\nactual: \(a)" }
                }
                if let r = finding.remediation {
                    message += "\nfix: \(r.text)"
                    for c in r.commands { message += "\n$ \(c)" }
                }
                if let ack { message += "\n" + ack.text }
                var properties: [(String, String)] = []
                if let loc = finding.location {
                    properties.append(("file", relative(loc.file, to: workspace)))
                    if let line = loc.line, line >= 1 { properties.append(("line", String(line))) }
                }
                properties.append(("title", "ezmsi \(check.id): \(finding.code) (\(FormatText.duration(check.durationMs)))"))
                out += line(command, properties, message)
                wrote = true
            }
            if !wrote, check.status == .error || check.status == .blocked {
                let message = check.status == .blocked && !check.blockedBy.isEmpty
                    ? "not checked: blocked by \(check.blockedBy.joined(separator: ", ")): \(check.message)" : check.message
                out += line("error", [("title", "ezmsi \(check.id): \(check.status.rawValue)")], message)
            }
        }
        let slowest = FormatText.slowest(report, count: 3).map { "\($0.id) \(FormatText.duration($0.durationMs))" }
        out += line("notice", [("title", "ezmsi doctor: \(FormatText.verdict(report))")],
                    "\(FormatText.counts(report)) in \(FormatText.duration(report.durationMs)); slowest: \(slowest.joined(separator: ", "))")
        return out
    }

    /// `::command key=value,key=value::data`, escaped as @actions/core does (toCommandValue/escapeData/escapeProperty).
    static func line(_ command: String, _ properties: [(String, String)], _ data: String) -> String {
        let props = properties.map { "\($0.0)=\(escapeProperty($0.1))" }.joined(separator: ",")
        return "::\(command)\(props.isEmpty ? "" : " " + props)::\(escapeData(data))\n"
    }

    public static func escapeData(_ s: String) -> String {
        s.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "\r", with: "%0D")
            .replacingOccurrences(of: "\n", with: "%0A")
    }

    public static func escapeProperty(_ s: String) -> String {
        escapeData(s).replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: ",", with: "%2C")
    }

    static func relative(_ path: String, to workspace: String?) -> String {
        guard let workspace, !workspace.isEmpty else { return path }
        let base = workspace.hasSuffix("/") ? String(workspace.dropLast()) : workspace
        if path.hasPrefix(base + "/") { return String(path.dropFirst(base.count + 1)) }
        return path
    }
}
