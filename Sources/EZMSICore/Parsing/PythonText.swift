/// Small pieces of Python's text semantics that our re-implementations must match exactly.
enum PythonText {
    /// `str.isspace()` for one scalar: bidi class WS/B/S or category Zs.
    static func isSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// `str.strip()`.
    static func strip(_ s: Substring.UnicodeScalarView) -> String {
        var lo = s.startIndex, hi = s.endIndex
        while lo < hi, isSpace(s[lo]) { lo = s.index(after: lo) }
        while hi > lo, isSpace(s[s.index(before: hi)]) { hi = s.index(before: hi) }
        return String(String.UnicodeScalarView(s[lo..<hi]))
    }

    static func strip(_ s: String) -> String { strip(Substring(s).unicodeScalars) }

    static func rstrip(_ s: String) -> String {
        let v = s.unicodeScalars
        var hi = v.endIndex
        while hi > v.startIndex, isSpace(v[v.index(before: hi)]) { hi = v.index(before: hi) }
        return String(String.UnicodeScalarView(v[v.startIndex..<hi]))
    }

    /// `str.lower()`, including the context-dependent final sigma (Σ → ς at the end of a word).
    static func lower(_ s: String) -> String {
        guard s.unicodeScalars.contains("\u{03A3}") else { return s.lowercased() }
        let scalars = Array(s.unicodeScalars)
        var out = ""
        for (i, c) in scalars.enumerated() {
            if c == "\u{03A3}" {
                // Final_Sigma: a cased letter before and none after, skipping case-ignorable characters.
                var j = i - 1
                while j >= 0, scalars[j].properties.isCaseIgnorable { j -= 1 }
                var k = i + 1
                while k < scalars.count, scalars[k].properties.isCaseIgnorable { k += 1 }
                let before = j >= 0 && scalars[j].properties.isCased
                let after = k < scalars.count && scalars[k].properties.isCased
                out += before && !after ? "ς" : "σ"
            } else {
                out += String(c).lowercased()
            }
        }
        return out
    }

    /// Splits text the way Python's text-mode file iteration does (universal newlines: `\n`, `\r\n` and a lone
    /// `\r` all end a line). Each returned line excludes its terminator.
    static func universalLines(_ text: String) -> [Substring.UnicodeScalarView] {
        var lines: [Substring.UnicodeScalarView] = []
        let v = text.unicodeScalars
        var start = v.startIndex
        var i = start
        while i < v.endIndex {
            let c = v[i]
            if c == "\n" || c == "\r" {
                lines.append(v[start..<i])
                var next = v.index(after: i)
                if c == "\r", next < v.endIndex, v[next] == "\n" { next = v.index(after: next) }
                start = next
                i = next
            } else {
                i = v.index(after: i)
            }
        }
        if start < v.endIndex { lines.append(v[start..<v.endIndex]) }
        return lines
    }

    /// Decodes strict UTF-8 as Python does; on failure returns the 1-based line of the first invalid byte.
    static func decodeUTF8(_ bytes: [UInt8]) -> Result<String, InvalidUTF8> {
        if let s = String(validating: bytes, as: UTF8.self) { return .success(s) }
        // Find the first invalid position by decoding incrementally.
        var line = 1
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        var lineAtScalarStart = 1
        var consumed = 0
        _ = consumed
        while true {
            lineAtScalarStart = line
            switch decoder.decode(&iterator) {
            case .scalarValue(let s):
                offset += UTF8.width(s)
                if s == "\n" { line += 1 }
            case .emptyInput:
                return .failure(InvalidUTF8(line: line, byteOffset: offset))
            case .error:
                return .failure(InvalidUTF8(line: lineAtScalarStart, byteOffset: offset))
            }
            consumed += 1
        }
    }

    struct InvalidUTF8: Error, Equatable {
        var line: Int
        var byteOffset: Int
    }
}
