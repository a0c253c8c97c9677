/// Text from outside ezmsi (file and folder names, config values, docker's errors, container logs) made safe to
/// print: every character that could move the cursor, recolour or clear the screen, start a new line or hide text is
/// shown as a visible escape instead, so a hostile name can neither rewrite the terminal nor forge a line (a fake
/// `::error` annotation, a fake finding, a fake log line).
///
/// The notation, read left to right:
/// - `\n`, `\r`, `\t`: line feed, carriage return, tab;
/// - `\xHH` (two lowercase hex digits): any other C0 control (U+0000–U+001F, e.g. ESC is `\x1b`) and DEL (U+007F);
/// - `\u{HHHH}`: a C1 control (U+0080–U+009F, e.g. CSI is `\u{009b}`), the line and paragraph separators U+2028 and
///   U+2029, and the bidirectional controls (U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) that reorder what is shown;
/// - `\\`: one backslash, written doubled only where it would otherwise be read as the start of one of the escapes
///   above (before `\`, `n`, `r`, `t`, `x`, `u`, before an escaped character, and at the very end of the text). Every
///   other backslash is shown as itself, so Windows paths and regular expressions stay readable: `C:\data\scans`
///   stays `C:\data\scans`, `C:\new` becomes `C:\\new`.
///
/// So the shown text decodes back to exactly one original, and the only line breaks in ezmsi's output are its own
/// layout's. Apply it to each outside field before laying the fields out (see `Report.visible`), never to a
/// finished multi-line text (that would flatten ezmsi's own layout). JSON output is not escaped this way: JSON's own
/// escaping is exact and machine-readable.
public enum VisibleText {
    /// `s` with every control character shown as an escape (see above). Text without such characters and without a
    /// backslash is returned unchanged.
    public static func escape(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: { needsEscape($0) || $0 == "\\" }) else { return s }
        let scalars = Array(s.unicodeScalars)
        var out = String.UnicodeScalarView()
        for (i, scalar) in scalars.enumerated() {
            if scalar == "\\" {
                let next = i + 1 < scalars.count ? scalars[i + 1] : nil
                let ambiguous = next.map { "\\nrtxu".unicodeScalars.contains($0) || needsEscape($0) } ?? true
                out.append("\\")
                if ambiguous { out.append("\\") }
            } else if needsEscape(scalar) {
                out.append(contentsOf: notation(scalar).unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    /// Multi-line text (a message whose line breaks are its own): each line escaped, the breaks kept.
    public static func escapeEachLine(_ s: String) -> String {
        s.split(separator: "\n", omittingEmptySubsequences: false).map { escape(String($0)) }.joined(separator: "\n")
    }

    /// Several lines of outside text (docker's stderr, a log), each escaped and prefixed with `prefix`. Give a prefix
    /// that is not only whitespace: GitHub Actions reads a workflow command after leading spaces too.
    public static func lines(_ text: String, prefix: String) -> String {
        var body = text
        while body.hasSuffix("\n") { body.removeLast() }
        return body.split(separator: "\n", omittingEmptySubsequences: false)
            .map { prefix + escape(String($0)) + "\n" }.joined()
    }

    /// Whether `scalar` is shown as an escape.
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F, 0x80...0x9F: return true
        case 0x2028, 0x2029, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    static func notation(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        default:
            let hex = String(scalar.value, radix: 16)
            if scalar.value < 0x80 { return "\\x" + (hex.count < 2 ? "0" : "") + hex }
            return "\\u{" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex + "}"
        }
    }
}
