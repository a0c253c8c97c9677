import Foundation

/// Whether to colour output: only on a terminal, never with NO_COLOR (https://no-color.org: any non-empty value).
public enum Terminal {
    public static func wantsColor(fd: Int32, environment: [String: String]) -> Bool {
        if let v = environment["NO_COLOR"], !v.isEmpty { return false }
        if environment["TERM"] == "dumb" { return false }
        return isatty(fd) == 1
    }
}

struct Style {
    let color: Bool
    func paint(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
    func bold(_ s: String) -> String { paint(s, "1") }
    func dim(_ s: String) -> String { paint(s, "2") }

    func mark(_ status: Status) -> String {
        switch status {
        case .pass: return paint("✓", "32")
        case .acknowledged: return paint("✓", "36")
        case .warn: return paint("!", "33")
        case .fail: return paint("✗", "31")
        case .error: return paint("✗", "35")
        case .blocked: return paint("⊘", "90")
        case .skip: return paint("–", "90")
        }
    }

    func mark(_ severity: Severity) -> String {
        switch severity {
        case .info: return paint("·", "90")
        case .warn: return paint("!", "33")
        case .fail: return paint("✗", "31")
        }
    }
}

public enum HumanRenderer {
    static let groupTitles = ["docker": "Docker", "env": "Env-file", "config": "Config", "command": "Command",
                              "folder": "Folder", "identity": "Identity", "mounts": "Mounts",
                              "custom_image": "Custom image", "tracker": "Tracker", "broker": "Broker"]

    public static func render(_ unescaped: Report, color: Bool) -> String {
        let report = unescaped.visible()   // each outside field escaped before the layout adds its own lines
        let style = Style(color: color)
        var out = ""
        let d = report.deployment
        out += style.bold("ezmsi doctor") + "  " + d.directory + "\n"
        if d.command.isEmpty {
            out += "  " + style.dim("no OpenMSIStream command given") + "\n"
        } else {
            out += "  " + ShellWords.join(d.command) + style.dim("  on \(d.image)") + "\n"
        }
        var groups: [(String, [CheckResult])] = []
        for check in report.checks {
            let family = String(check.id.split(separator: ".").first ?? "")
            if let i = groups.firstIndex(where: { $0.0 == family }) { groups[i].1.append(check) } else { groups.append((family, [check])) }
        }
        let width = (report.checks.map(\.id.count).max() ?? 10) + 2
        for (family, checks) in groups {
            out += "\n" + style.bold(groupTitles[family] ?? family.capitalized) + "\n"
            for check in checks {
                let label = check.status == .error ? " " + style.paint("error:", "35") : ""
                out += "  \(style.mark(check.status)) \(check.id.padding(toLength: width, withPad: " ", startingAt: 0))\(label) \(check.message)\n"
                for finding in check.findings {
                    var line = "      \(style.mark(finding.severity)) \(finding.message)"
                    if let loc = finding.location { line += style.dim("  (\(loc))") }
                    out += line + "\n"
                    if let ack = finding.acknowledgement {
                        let what = ack.expired ? style.paint("acknowledgement expired", "31") + " on \(ack.expires)"
                            : style.paint("acknowledged", "36") + " until \(ack.expires)"
                        out += "          \(what) by \(ack.owner): \(ack.reason)" + style.dim("  (\(ack.source))") + "\n"
                    }
                    if let e = finding.evidence {
                        if let x = e.expected { out += style.dim("          expected: \(x)") + "\n" }
                        if let a = e.actual { out += style.dim("          actual:   \(a)") + "\n" }
                    }
                    if finding.severity != .info, let r = finding.remediation {
                        out += "          fix: \(r.text)\n"
                        for command in r.commands { out += "            " + style.paint("$ \(command)", "36") + "\n" }
                    }
                }
            }
        }
        let c = report.summary.counts
        var parts: [String] = []
        for (status, word) in [(Status.pass, "passed"), (.acknowledged, "acknowledged"), (.warn, "warnings"), (.fail, "failed"), (.error, "errors"),
                               (.blocked, "blocked"), (.skip, "skipped")] where (c[status.rawValue] ?? 0) > 0 {
            parts.append("\(c[status.rawValue]!) \(word)")
        }
        let verdict = report.summary.exitCode == 0 ? style.paint("ready", "32") : style.paint("not ready", "31")
        out += "\n\(style.bold("Summary:")) \(verdict) — \(parts.joined(separator: ", ")) (\(Int(report.durationMs.rounded())) ms)\n"
        return out
    }
}

public enum JSONRenderer {
    public static func render<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
