/// One line of an env-file that becomes (or would become) a variable.
public struct EnvEntry: Equatable, Sendable {
    public var key: String
    /// nil for a bare key (`KEY` without `=`), which docker replaces by the host's value or drops.
    public var value: String?
    public var line: Int
}

/// A line docker refuses; docker then refuses the whole file (exit 125).
public struct EnvFileError: Equatable, Sendable {
    public var line: Int
    /// The text docker prints after `invalid env file (<path>): ` (CLI ≥ 28).
    public var dockerMessage: String
    public var code: String
}

/// An env-file parsed with the docker CLI's `--env-file` rules (docker/cli `pkg/kvfile`, CLI 28):
/// lines split on `\n` with one trailing `\r` dropped; strict UTF-8 per line; one BOM removed on line 1; leading
/// Unicode whitespace trimmed, trailing kept; `#` comments only at the start; split at the first `=`; keys with
/// space or tab are refused; quotes are kept; a bare key takes the host's value or is dropped; lines of 64 KiB or more
/// are refused.
public struct EnvFile: Sendable {
    public var path: String
    public var entries: [EnvEntry]
    /// The first error, which is the one docker reports (it stops there).
    public var error: EnvFileError?

    /// The environment the container gets from this file, given the host's environment (last one wins).
    public func resolved(host: [String: String]) -> [String: String] {
        var env: [String: String] = [:]
        for e in entries {
            if let v = e.value { env[e.key] = v } else if let v = host[e.key] { env[e.key] = v }
        }
        return env
    }

    public func lastEntry(_ key: String) -> EnvEntry? { entries.last { $0.key == key } }
}

public enum EnvFileParser {
    static let maxLine = 64 * 1024   // bufio.MaxScanTokenSize: a token of this size or more fails

    public static func parse(bytes: [UInt8], path: String) -> EnvFile {
        var entries: [EnvEntry] = []
        var lineNumber = 0
        var start = 0
        let n = bytes.count
        while start < n {
            lineNumber += 1
            var end = start
            while end < n, bytes[end] != 0x0A { end += 1 }
            // bufio.Scanner fails when a token (line incl. a possible \r) reaches the buffer size.
            let hasNewline = end < n
            if end - start >= maxLine {
                return EnvFile(path: path, entries: entries, error: EnvFileError(
                    line: lineNumber, dockerMessage: "bufio.Scanner: token too long", code: "line-too-long"))
            }
            _ = hasNewline
            var lineEnd = end
            if lineEnd > start, bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            var slice = Array(bytes[start..<lineEnd])
            start = end + 1
            guard var text = String(validating: slice, as: UTF8.self) else {
                let list = slice.map { String($0, radix: 10) }.joined(separator: " ")
                return EnvFile(path: path, entries: entries, error: EnvFileError(
                    line: lineNumber, dockerMessage: "invalid utf8 bytes at line \(lineNumber): [\(list)]",
                    code: "invalid-utf8"))
            }
            if lineNumber == 1, text.unicodeScalars.first == "\u{FEFF}" {
                text = String(String.UnicodeScalarView(text.unicodeScalars.dropFirst()))
            }
            slice = []
            // strings.TrimLeftFunc(line, unicode.IsSpace)
            let scalars = text.unicodeScalars
            let firstNonSpace = scalars.firstIndex { !isGoSpace($0) } ?? scalars.endIndex
            let trimmed = String(String.UnicodeScalarView(scalars[firstNonSpace...]))
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let key: String
            let value: String?
            if let eq = trimmed.firstIndex(of: "=") {
                key = String(trimmed[trimmed.startIndex..<eq])
                value = String(trimmed[trimmed.index(after: eq)...])
            } else {
                key = trimmed
                value = nil
            }
            if value != nil, key.isEmpty {
                return EnvFile(path: path, entries: entries, error: EnvFileError(
                    line: lineNumber, dockerMessage: "no variable name on line '\(trimmed)'", code: "empty-key"))
            }
            if key.contains(" ") || key.contains("\t") {
                return EnvFile(path: path, entries: entries, error: EnvFileError(
                    line: lineNumber, dockerMessage: "variable '\(key)' contains whitespaces",
                    code: key.hasPrefix("export ") ? "export-prefix" : "key-whitespace"))
            }
            entries.append(EnvEntry(key: key, value: value, line: lineNumber))
        }
        return EnvFile(path: path, entries: entries, error: nil)
    }

    /// Go's `unicode.IsSpace`.
    static func isGoSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }
}
