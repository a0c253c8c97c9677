import Foundation

/// `ezmsi doctor --format junit`: the report as JUnit XML, the shape GitLab, Jenkins and GitHub test reporters read.
///
/// One `<testsuite>` for the run inside `<testsuites>`, one `<testcase classname="ezmsi.FAMILY" name="PROBE-ID"
/// time="SECONDS">` per probe. fail and blocked give `<failure>`, error gives `<error>`, skip gives `<skipped>`; warn
/// passes with its findings in `<system-out>` (with `--strict` it is a `<failure>`); acknowledged passes with a note in
/// `<system-out>`. Messages carry file:line and the fix. Validated against Tests/Fixtures/junit/junit.xsd.
public enum JUnitRenderer {
    public static func render(_ unescaped: Report) -> String {
        let report = unescaped.visible()   // each outside field escaped before the layout adds its own lines
        var cases = ""
        var failures = 0, errors = 0, skipped = 0
        for check in report.checks {
            var body = ""
            switch check.status {
            case .fail, .blocked:
                failures += 1
                body += element("failure", message: FormatText.headline(check), type: check.status.rawValue, text: FormatText.plain(check))
            case .warn where report.summary.strict:
                failures += 1
                body += element("failure", message: "warning (--strict): " + FormatText.headline(check), type: "warn",
                                text: FormatText.plain(check))
            case .error:
                errors += 1
                body += element("error", message: FormatText.headline(check), type: "error", text: FormatText.plain(check))
            case .skip:
                skipped += 1
                body += "      <skipped message=\"\(XML.attribute(check.message))\"/>\n"
            case .pass, .warn, .acknowledged:
                break
            }
            if body.isEmpty {
                // Passing (also warn and acknowledged): what the probe said goes to system-out. A failure, error or
                // skip element already carries it.
                var out = FormatText.plain(check)
                if check.status == .acknowledged {
                    out = "acknowledged: every warning and failure of this probe is acknowledged (it passes)\n" + out
                }
                body += "      <system-out>\(XML.text(out))</system-out>\n"
            }
            cases += "    <testcase classname=\"\(XML.attribute("ezmsi." + FormatText.family(check.id)))\" " +
                "name=\"\(XML.attribute(check.id))\" time=\"\(FormatText.seconds(check.durationMs))\">\n" + body + "    </testcase>\n"
        }
        let tests = report.checks.count
        let time = FormatText.seconds(report.durationMs)
        // <testsuites> carries only the attributes every consumer's schema allows there (Jenkins' junit-10 has no
        // `skipped` or `timestamp` on it); <testsuite> carries all of them.
        let rootCounts = "tests=\"\(tests)\" failures=\"\(failures)\" errors=\"\(errors)\" time=\"\(time)\""
        let counts = "tests=\"\(tests)\" failures=\"\(failures)\" errors=\"\(errors)\" skipped=\"\(skipped)\" time=\"\(time)\""
        let d = report.deployment
        var properties = ""
        for (name, value) in [("ezmsi.version", report.tool.version), ("schemaVersion", String(report.schemaVersion)),
                              ("deployment", d.directory), ("image", d.image), ("command", ShellWords.join(d.command)),
                              ("strict", String(report.summary.strict)), ("status", report.summary.status.rawValue),
                              ("exitCode", String(report.summary.exitCode))] {
            properties += "      <property name=\"\(XML.attribute(name))\" value=\"\(XML.attribute(value))\"/>\n"
        }
        let summary = "ezmsi doctor: \(FormatText.verdict(report)) — \(FormatText.counts(report)) (\(FormatText.duration(report.durationMs)))"
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <testsuites name="ezmsi doctor" \(rootCounts)>
              <testsuite name="ezmsi doctor \(XML.attribute(d.directory))" \(counts) timestamp="\(XML.attribute(report.startedAt))">
                <properties>
            \(properties)    </properties>
            \(cases)    <system-out>\(XML.text(summary))</system-out>
              </testsuite>
            </testsuites>

            """
    }

    static func element(_ name: String, message: String, type: String, text: String) -> String {
        "      <\(name) message=\"\(XML.attribute(message))\" type=\"\(XML.attribute(type))\">\(XML.text(text))</\(name)>\n"
    }
}

/// XML 1.0 escaping. Characters XML 1.0 cannot carry at all (most C0 controls, U+FFFE, U+FFFF) become U+FFFD.
enum XML {
    static func legal(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x9, 0xA, 0xD, 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: return true
        default: return false
        }
    }

    static func text(_ s: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(s.unicodeScalars.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\r": out += "&#13;"
            case _ where !legal(scalar): out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// For a double-quoted attribute value; tabs and line breaks as character references so that they survive
    /// attribute-value normalisation.
    static func attribute(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "\n": out += "&#10;"
            case "\r": out += "&#13;"
            case "\t": out += "&#9;"
            case _ where !legal(scalar): out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
