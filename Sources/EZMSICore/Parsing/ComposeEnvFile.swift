/// One variable as docker-compose 1.29 reads it from an `env_file:`.
public struct ComposeEnvEntry: Equatable, Sendable {
    public var key: String
    /// The value after quotes, escapes, inline comment and `${VAR}` interpolation; nil for a bare key (`KEY`, no `=`),
    /// which compose fills from its own environment (or leaves unset).
    public var value: String?
    /// The value before `${VAR}` interpolation.
    public var uninterpolated: String?
    /// The line the key is on. Lines are counted as Python's universal newlines count them (`\n`, `\r\n` and a lone
    /// `\r` each end a line), which is an editor's count for LF and CRLF files.
    public var line: Int
    /// `'` or `"` if the value was quoted (the quotes are not part of the value).
    public var quote: Unicode.Scalar?
    /// `export KEY=…`: the prefix is accepted and ignored.
    public var exportPrefix: Bool
    /// An inline comment was cut off (` #…` in an unquoted value, or `#…` after the closing quote).
    public var commentDropped: Bool
    /// Whitespace around `=` or at the end of an unquoted value was dropped.
    public var whitespaceDropped: Bool
    /// Backslash escapes were decoded (`\n`, `\t`, `\"`, `\\`… in double quotes; `\'` and `\\` in single quotes).
    public var escapesDecoded: Bool
    /// A quoted value that continues onto following lines.
    public var multiline: Bool
    /// The line the value ends on (after `line` for a multi-line quoted value).
    public var endLine: Int
    /// The `${NAME}` / `${NAME:-default}` references that were replaced, by name.
    public var variables: [String]
}

/// A statement python-dotenv cannot parse: compose logs a warning and skips it (the file is still used).
public struct ComposeEnvSkip: Equatable, Sendable {
    /// The line python-dotenv names. It is where the whitespace before the statement starts, so blank lines before a
    /// bad line make it smaller than `statementLine`.
    public var line: Int
    /// The line the unparsable statement starts on.
    public var statementLine: Int

    /// The warning compose prints on stderr.
    public var warning: String { "Python-dotenv could not parse statement starting at line \(line)" }
}

/// An env-file compose refuses: `docker-compose` stops with a traceback (exit 1).
public struct ComposeEnvFileError: Equatable, Sendable, Error {
    /// The last line of compose's traceback, e.g.
    /// `UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 14: invalid start byte`.
    public var message: String
    public var code: String
    /// The line of the offending byte (counting `\n`), when there is one.
    public var line: Int?
}

/// An env-file as docker-compose 1.29.2 reads `env_file:` (compose's `env_vars_from_file`, i.e. python-dotenv 0.21
/// `dotenv_values(path, encoding='utf-8-sig', interpolate=True)`, then `resolve_env_var`):
/// - the file is decoded strictly as UTF-8 with one leading BOM removed (invalid UTF-8 is fatal), and read with
///   universal newlines (`\r\n` and a lone `\r` become `\n`);
/// - leading whitespace and blank lines are skipped, `#` starts a comment line, an `export ` prefix is ignored;
/// - a key is `'any text'` or a run of characters other than `=`, `#` and whitespace; whitespace around `=` is dropped;
/// - `'…'` and `"…"` values lose their quotes, may span lines, and decode `\\ \'` (single) or
///   `\\ \' \" \a \b \f \n \r \t \v` (double); after the closing quote only whitespace and a `#` comment may follow;
/// - an unquoted value runs to the end of the line, is cut at the first whitespace followed by `#`, and right-trimmed;
/// - a statement that does not parse is skipped with a warning;
/// - every value (quoted or not) then has `${NAME}` and `${NAME:-default}` replaced, looking NAME up first in the
///   keys above it in the file (a bare key there counts as empty), then in compose's environment; the default is
///   used only if NAME is unset. `$NAME` and `$$` are left alone.
public struct ComposeEnvFile: Sendable {
    public var path: String
    /// Every binding in file order (a key may repeat; the last one wins).
    public var entries: [ComposeEnvEntry]
    /// The statements compose skipped, with the warning it prints.
    public var skipped: [ComposeEnvSkip]
    /// Set when compose refuses the whole file; `entries` is then empty.
    public var error: ComposeEnvFileError?

    public func lastEntry(_ key: String) -> ComposeEnvEntry? { entries.last { $0.key == key } }

    /// python-dotenv's result: each key's last value (nil for a bare key).
    public var values: [String: String?] {
        var out: [String: String?] = [:]
        for e in entries { out[e.key] = .some(e.value) }
        return out
    }

    /// What `docker-compose config` lists under `environment:`: a bare key takes `host`'s value, or stays nil
    /// (compose then passes `KEY` without a value, and the container does not get it).
    public func environment(host: [String: String]) -> [String: String?] {
        var out: [String: String?] = [:]
        for (key, value) in values { out[key] = .some(value ?? host[key]) }
        return out
    }

    /// The variables the container gets from this file under compose.
    public func resolved(host: [String: String]) -> [String: String] {
        var out: [String: String] = [:]
        for (key, value) in environment(host: host) { if let value { out[key] = value } }
        return out
    }
}

public enum ComposeEnvFileParser {
    /// Parses `bytes` as compose reads an `env_file:`; `environment` is the environment of the `docker-compose`
    /// process, used for `${VAR}` interpolation (bare keys are resolved later, by `ComposeEnvFile.environment(host:)`).
    public static func parse(bytes: [UInt8], path: String, environment: [String: String]) -> ComposeEnvFile {
        let text: [Unicode.Scalar]
        switch decode(bytes) {
        case .failure(let error):
            return ComposeEnvFile(path: path, entries: [], skipped: [], error: error)
        case .success(let scalars):
            text = scalars
        }
        var reader = Reader(text: text)
        var raw: [ComposeEnvEntry] = []
        var skipped: [ComposeEnvSkip] = []
        while reader.hasNext {
            switch reader.binding() {
            case .entry(let e): raw.append(e)
            case .skip(let s): skipped.append(s)
            case .nothing: break
            }
        }
        // resolve_variables(override=True): earlier keys of the file shadow the environment.
        var seen: [String: String?] = [:]
        var entries: [ComposeEnvEntry] = []
        for var entry in raw {
            if let value = entry.uninterpolated {
                let (result, names) = interpolate(Array(value.unicodeScalars)) { name in
                    if let fromFile = seen[name] { return .some(fromFile ?? "") }
                    return environment[name]
                }
                entry.value = result
                entry.variables = names
            }
            seen[entry.key] = .some(entry.value)
            entries.append(entry)
        }
        return ComposeEnvFile(path: path, entries: entries, skipped: skipped, error: nil)
    }

    // MARK: - Decoding: open(path, encoding='utf-8-sig').read() with universal newlines

    static func decode(_ bytes: [UInt8]) -> Result<[Unicode.Scalar], ComposeEnvFileError> {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        var start = 0
        if bytes.count < 3 {
            // utf_8_sig's incremental decoder waits for more input while the data could still be a BOM, and drops
            // it at the end of the file.
            if Array(bom.prefix(bytes.count)) == bytes { return .success([]) }
        } else if Array(bytes[0..<3]) == bom {
            start = 3
        }
        if let bad = firstUTF8Error(bytes, from: start) {
            let position = bad.start - start   // utf_8_sig reports positions after the BOM
            let what = bad.end - bad.start == 1
                ? "byte 0x" + hex(bytes[bad.start]) + " in position \(position)"
                : "bytes in position \(position)-\(position + bad.end - bad.start - 1)"
            let line = 1 + bytes[0..<bad.start].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
            return .failure(ComposeEnvFileError(
                message: "UnicodeDecodeError: 'utf-8' codec can't decode \(what): \(bad.reason)",
                code: "invalid-utf8", line: line))
        }
        let scalars = Array(String(decoding: bytes[start...], as: UTF8.self).unicodeScalars)
        // Universal newlines: \r\n and \r become \n.
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(scalars.count)
        var i = 0
        while i < scalars.count {
            if scalars[i] == "\r" {
                out.append("\n")
                i += (i + 1 < scalars.count && scalars[i + 1] == "\n") ? 2 : 1
            } else {
                out.append(scalars[i])
                i += 1
            }
        }
        return .success(out)
    }

    private static func hex(_ b: UInt8) -> String {
        let s = String(b, radix: 16)
        return s.count == 1 ? "0" + s : s
    }

    /// The first error of CPython's strict UTF-8 decoder (Objects/stringlib/codecs.h): the byte range it reports and
    /// its reason.
    static func firstUTF8Error(_ b: [UInt8], from start: Int) -> (start: Int, end: Int, reason: String)? {
        func cont(_ x: UInt8) -> Bool { x & 0xC0 == 0x80 }
        let n = b.count
        var s = start
        while s < n {
            let ch = b[s]
            if ch < 0x80 { s += 1; continue }
            let invalidStart = (s, s + 1, "invalid start byte")
            func continuation(_ k: Int) -> (Int, Int, String) { (s, s + k, "invalid continuation byte") }
            let endOfData = (s, n, "unexpected end of data")
            if ch < 0xE0 {
                if ch < 0xC2 { return invalidStart }
                if n - s < 2 { return endOfData }
                if !cont(b[s + 1]) { return continuation(1) }
                s += 2
            } else if ch < 0xF0 {
                func badSecond(_ c2: UInt8) -> Bool { !cont(c2) || (c2 < 0xA0 ? ch == 0xE0 : ch == 0xED) }
                if n - s < 3 {
                    if n - s < 2 { return endOfData }
                    if badSecond(b[s + 1]) { return continuation(1) }
                    return endOfData
                }
                if badSecond(b[s + 1]) { return continuation(1) }
                if !cont(b[s + 2]) { return continuation(2) }
                s += 3
            } else if ch < 0xF5 {
                func badSecond(_ c2: UInt8) -> Bool { !cont(c2) || (c2 < 0x90 ? ch == 0xF0 : ch == 0xF4) }
                if n - s < 4 {
                    if n - s < 2 { return endOfData }
                    if badSecond(b[s + 1]) { return continuation(1) }
                    if n - s < 3 { return endOfData }
                    if !cont(b[s + 2]) { return continuation(2) }
                    return endOfData
                }
                if badSecond(b[s + 1]) { return continuation(1) }
                if !cont(b[s + 2]) { return continuation(2) }
                if !cont(b[s + 3]) { return continuation(3) }
                s += 4
            } else {
                return invalidStart
            }
        }
        return nil
    }

    // MARK: - python-dotenv 0.21 parser (dotenv/parser.py)

    /// Python's `str.isspace()`, which is what `\s` matches in a `str` regex.
    static func isPySpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// `[^\S\r\n]`: whitespace other than a line end.
    static func isInlineSpace(_ c: Unicode.Scalar) -> Bool { c != "\n" && c != "\r" && isPySpace(c) }

    enum Binding {
        case entry(ComposeEnvEntry)
        case skip(ComposeEnvSkip)
        case nothing
    }

    struct ParseError: Error {}

    struct Reader {
        let text: [Unicode.Scalar]
        var pos = 0
        var line = 1

        init(text: [Unicode.Scalar]) { self.text = text }

        var hasNext: Bool { pos < text.count }
        func peek(_ offset: Int = 0) -> Unicode.Scalar? { pos + offset < text.count ? text[pos + offset] : nil }

        /// Position.advance: moves to `end`, counting `\r\n`, `\n` and `\r` as one line each.
        mutating func advance(to end: Int) {
            var i = pos
            while i < end {
                if text[i] == "\r" {
                    line += 1
                    if i + 1 < end, text[i + 1] == "\n" { i += 1 }
                } else if text[i] == "\n" {
                    line += 1
                }
                i += 1
            }
            pos = end
        }

        func scan(from start: Int, while predicate: (Unicode.Scalar) -> Bool) -> Int {
            var i = start
            while i < text.count, predicate(text[i]) { i += 1 }
            return i
        }

        func string(_ range: Range<Int>) -> String {
            var s = String.UnicodeScalarView()
            s.append(contentsOf: text[range])
            return String(s)
        }

        mutating func binding() -> Binding {
            let markLine = line
            advance(to: scan(from: pos) { ComposeEnvFileParser.isPySpace($0) })   // _multiline_whitespace
            guard hasNext else { return .nothing }
            let statementLine = line
            do {
                return try statement().map(Binding.entry) ?? .nothing
            } catch {
                // _rest_of_line: [^\r\n]*(?:\r|\n|\r\n)?
                var end = scan(from: pos) { $0 != "\r" && $0 != "\n" }
                if end < text.count { end += 1 }
                advance(to: end)
                return .skip(ComposeEnvSkip(line: markLine, statementLine: statementLine))
            }
        }

        /// One binding after the leading whitespace; nil for a comment line.
        mutating func statement() throws -> ComposeEnvEntry? {
            // _export: (?:export[^\S\r\n]+)?
            var exported = false
            let export: [Unicode.Scalar] = ["e", "x", "p", "o", "r", "t"]
            if pos + 6 < text.count, Array(text[pos..<pos + 6]) == export, ComposeEnvFileParser.isInlineSpace(text[pos + 6]) {
                advance(to: scan(from: pos + 6) { ComposeEnvFileParser.isInlineSpace($0) })
                exported = true
            }
            let keyLine = line
            var key: String?
            switch peek() {
            case "#":
                key = nil
            case "'":
                // '([^']+)'
                let close = scan(from: pos + 1) { $0 != "'" }
                guard close < text.count, close > pos + 1 else { throw ParseError() }
                key = string(pos + 1..<close)
                advance(to: close + 1)
            default:
                // ([^=\#\s]+)
                let end = scan(from: pos) { $0 != "=" && $0 != "#" && !ComposeEnvFileParser.isPySpace($0) }
                guard end > pos else { throw ParseError() }
                key = string(pos..<end)
                advance(to: end)
            }
            let beforeEq = scan(from: pos) { ComposeEnvFileParser.isInlineSpace($0) }   // _whitespace
            let spaceBeforeEq = beforeEq > pos
            advance(to: beforeEq)
            var value: String?
            var quote: Unicode.Scalar?
            var commentDropped = false, whitespaceDropped = false, escapesDecoded = false, multiline = false
            if peek() == "=" {
                let afterEq = scan(from: pos + 1) { ComposeEnvFileParser.isInlineSpace($0) }   // _equal_sign
                whitespaceDropped = spaceBeforeEq || afterEq > pos + 1
                advance(to: afterEq)
                switch peek() {
                case .some(let q) where q == "'" || q == "\"":
                    guard let (content, end) = quoted(q) else { throw ParseError() }
                    let rawValue = Array(text[content])
                    let decoded = ComposeEnvFileParser.decodeEscapes(rawValue, double: q == "\"")
                    escapesDecoded = decoded != rawValue
                    multiline = rawValue.contains("\n") || rawValue.contains("\r")
                    quote = q
                    value = String(String.UnicodeScalarView(decoded))
                    advance(to: end)
                case nil, "\n", "\r":
                    value = ""
                default:
                    let end = scan(from: pos) { $0 != "\r" && $0 != "\n" }
                    let part = Array(text[pos..<end])
                    advance(to: end)
                    let uncommented = ComposeEnvFileParser.dropInlineComment(part)
                    commentDropped = uncommented.count != part.count
                    var trimmed = uncommented
                    while let last = trimmed.last, ComposeEnvFileParser.isPySpace(last) { trimmed.removeLast() }
                    if trimmed.count != uncommented.count { whitespaceDropped = true }
                    value = String(String.UnicodeScalarView(trimmed))
                }
            }
            let valueEndLine = line
            // _comment: (?:[^\S\r\n]*#[^\r\n]*)?
            let hash = scan(from: pos) { ComposeEnvFileParser.isInlineSpace($0) }
            if hash < text.count, text[hash] == "#" {
                advance(to: scan(from: hash) { $0 != "\r" && $0 != "\n" })
                if value != nil { commentDropped = true }
            }
            // _end_of_line: [^\S\r\n]*(?:\r\n|\n|\r|$)
            var end = scan(from: pos) { ComposeEnvFileParser.isInlineSpace($0) }
            if end < text.count {
                if text[end] == "\r", end + 1 < text.count, text[end + 1] == "\n" {
                    end += 2
                } else if text[end] == "\n" || text[end] == "\r" {
                    end += 1
                } else {
                    throw ParseError()
                }
            }
            advance(to: end)
            guard let key else { return nil }
            return ComposeEnvEntry(key: key, value: value, uninterpolated: value, line: keyLine, quote: quote,
                                   exportPrefix: exported, commentDropped: commentDropped,
                                   whitespaceDropped: whitespaceDropped, escapesDecoded: escapesDecoded,
                                   multiline: multiline, endLine: valueEndLine, variables: [])
        }

        /// `q((?:\\q|[^q])*)q` from `pos` (at the opening quote), with the regex engine's backtracking: the value
        /// ends at the first quote not taken by a `\q` pair; failing that, at the quote of the last `\q` pair.
        /// Returns the content range and the end of the match.
        func quoted(_ q: Unicode.Scalar) -> (Range<Int>, Int)? {
            var i = pos + 1
            var lastPairQuote: Int?
            while i < text.count {
                if text[i] == "\\", i + 1 < text.count, text[i + 1] == q {
                    lastPairQuote = i + 1
                    i += 2
                } else if text[i] == q {
                    return (pos + 1..<i, i + 1)
                } else {
                    i += 1
                }
            }
            guard let close = lastPairQuote else { return nil }
            return (pos + 1..<close, close + 1)
        }
    }

    /// `decode_escapes`: `\\[\\'"abfnrtv]` (double quotes) or `\\[\\']` (single quotes), left to right.
    static func decodeEscapes(_ s: [Unicode.Scalar], double: Bool) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if s[i] == "\\", i + 1 < s.count {
                let replacement: Unicode.Scalar?
                switch s[i + 1] {
                case "\\": replacement = "\\"
                case "'": replacement = "'"
                case "\"": replacement = double ? "\"" : nil
                case "a": replacement = double ? "\u{07}" : nil
                case "b": replacement = double ? "\u{08}" : nil
                case "f": replacement = double ? "\u{0C}" : nil
                case "n": replacement = double ? "\n" : nil
                case "r": replacement = double ? "\r" : nil
                case "t": replacement = double ? "\t" : nil
                case "v": replacement = double ? "\u{0B}" : nil
                default: replacement = nil
                }
                if let replacement {
                    out.append(replacement)
                    i += 2
                    continue
                }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    /// `re.sub(r"\s+#.*", "", part)`: cut at the whitespace run before the first `#` that follows whitespace.
    static func dropInlineComment(_ part: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var j = 1
        while j < part.count {
            if part[j] == "#", isPySpace(part[j - 1]) {
                var i = j - 1
                while i > 0, isPySpace(part[i - 1]) { i -= 1 }
                return Array(part[..<i])
            }
            j += 1
        }
        return part
    }

    // MARK: - python-dotenv 0.21 interpolation (dotenv/variables.py)

    /// Replaces each `${NAME}` / `${NAME:-DEFAULT}` (regex `\$\{([^}:]*)(?::-([^}]*))?\}`, scanned left to right)
    /// with `lookup(NAME)`, or DEFAULT (or "") when NAME is unset. Returns the result and the names replaced.
    static func interpolate(_ s: [Unicode.Scalar], lookup: (String) -> String?) -> (String, [String]) {
        var out = String.UnicodeScalarView()
        var names: [String] = []
        var i = 0
        while i < s.count {
            if s[i] == "$", i + 1 < s.count, s[i + 1] == "{" {
                var k = i + 2
                while k < s.count, s[k] != "}", s[k] != ":" { k += 1 }
                let name = String(String.UnicodeScalarView(s[(i + 2)..<k]))
                var matched: (end: Int, defaultValue: String?)?
                if k < s.count, s[k] == "}" {
                    matched = (k + 1, nil)
                } else if k + 1 < s.count, s[k] == ":", s[k + 1] == "-" {
                    var d = k + 2
                    while d < s.count, s[d] != "}" { d += 1 }
                    if d < s.count { matched = (d + 1, String(String.UnicodeScalarView(s[(k + 2)..<d]))) }
                }
                if let matched {
                    out.append(contentsOf: (lookup(name) ?? matched.defaultValue ?? "").unicodeScalars)
                    names.append(name)
                    i = matched.end
                    continue
                }
            }
            out.append(s[i])
            i += 1
        }
        return (String(out), names)
    }
}
