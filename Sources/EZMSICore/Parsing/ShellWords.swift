/// POSIX shell word splitting (quotes and backslashes; no expansion), for commands written as one string.
public enum ShellWords {
    public struct UnterminatedQuote: Error, CustomStringConvertible {
        public var description: String { "a quote is not closed" }
    }

    public static func split(_ line: String) throws -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var iterator = Array(line).makeIterator()
        while let c = iterator.next() {
            switch c {
            case " ", "\t", "\n":
                if inWord { words.append(current); current = ""; inWord = false }
            case "'":
                inWord = true
                var closed = false
                while let d = iterator.next() { if d == "'" { closed = true; break }; current.append(d) }
                if !closed { throw UnterminatedQuote() }
            case "\"":
                inWord = true
                var closed = false
                while let d = iterator.next() {
                    if d == "\"" { closed = true; break }
                    if d == "\\" {
                        guard let e = iterator.next() else { break }
                        if !["$", "`", "\"", "\\", "\n"].contains(e) { current.append("\\") }
                        current.append(e)
                    } else {
                        current.append(d)
                    }
                }
                if !closed { throw UnterminatedQuote() }
            case "\\":
                inWord = true
                if let e = iterator.next() { if e != "\n" { current.append(e) } }
            default:
                inWord = true
                current.append(c)
            }
        }
        if inWord { words.append(current) }
        return words
    }

    /// Quotes one word for a POSIX shell, only when needed.
    public static func quote(_ word: String) -> String {
        if word.isEmpty { return "''" }
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")
        if word.allSatisfy({ safe.contains($0) }) { return word }
        if word.unicodeScalars.contains(where: isControl) {
            // A control character (a hostile file name: ESC, newline…) would act on the terminal or split the line:
            // bash's $'…' quoting writes it as a visible escape and still gives the exact bytes to the command.
            var out = "$'"
            for u in word.unicodeScalars {
                switch u {
                case "'": out += "\\'"
                case "\\": out += "\\\\"
                default:
                    if isControl(u) {
                        for byte in String(u).utf8 { out += "\\x" + String(byte, radix: 16, uppercase: false).leftPad(2) }
                    } else {
                        out.unicodeScalars.append(u)
                    }
                }
            }
            return out + "'"
        }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// C0, DEL and C1 controls.
    static func isControl(_ u: Unicode.Scalar) -> Bool { u.value < 0x20 || (0x7F..<0xA0).contains(u.value) }

    public static func join(_ words: [String]) -> String { words.map(quote).joined(separator: " ") }
}

private extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
