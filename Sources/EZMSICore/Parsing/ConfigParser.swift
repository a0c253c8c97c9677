import Foundation

/// One `key = value` of a config file, as Python's `configparser` stores it before interpolation.
public struct ConfigOption: Equatable, Sendable {
    /// Lower-cased by `optionxform`, as OpenMSIStream sees it.
    public var key: String
    /// The key exactly as written.
    public var writtenKey: String
    /// The raw value: first line stripped, continuation lines joined with `\n`, trailing whitespace removed.
    public var raw: String
    /// Line of the key (1-based).
    public var line: Int
    /// True when the value spans continuation lines.
    public var continued: Bool
}

public struct ConfigSection: Equatable, Sendable {
    public var name: String
    public var line: Int
    public var options: [ConfigOption]

    public func option(_ key: String) -> ConfigOption? { options.first { $0.key == key } }
}

/// An indented line configparser appended to the previous value although it looks like a header or a key.
public struct SwallowedLine: Equatable, Sendable {
    public var line: Int
    public var text: String
    public var isHeader: Bool
}

/// A syntax problem with the Python exception it corresponds to.
public struct ConfigSyntaxError: Equatable, Sendable {
    /// The Python exception class name, e.g. `MissingSectionHeaderError`.
    public var kind: String
    public var line: Int
    public var message: String
}

/// An interpolation failure, raised by OpenMSIStream when that section is read.
public struct InterpolationFailure: Error, Equatable, Sendable {
    public var kind: String
    public var message: String
}

/// A config file parsed exactly as `configparser.ConfigParser()` with its defaults does (strict, `=`/`:`
/// delimiters, `#`/`;` full-line comments only, empty lines in values, lower-cased keys, case-sensitive sections,
/// `[DEFAULT]` merged into every section, BasicInterpolation). Every problem is kept, not only the first.
public struct ConfigFile: Sendable {
    public var path: String
    /// Sections in file order, `[DEFAULT]` excluded.
    public var sections: [ConfigSection]
    /// Options of `[DEFAULT]`.
    public var defaults: [ConfigOption]
    /// Lines of every `[DEFAULT]` header.
    public var defaultHeaderLines: [Int]
    /// Every syntax problem in file order.
    public var errors: [ConfigSyntaxError]
    /// The exception Python itself would raise (the first immediate error, else the first ParsingError line).
    public var pythonError: ConfigSyntaxError?
    /// The text began with U+FEFF, which configparser does not skip.
    public var startsWithBOM: Bool = false
    /// Indented lines that look like a header or a key but were taken as a continuation of the previous value.
    public var swallowedLines: [SwallowedLine] = []

    public func section(_ name: String) -> ConfigSection? { sections.first { $0.name == name } }

    /// `cp.get(section, key)` with interpolation; keys of `[DEFAULT]` are visible in every section.
    public func value(_ section: String, _ key: String) -> Result<String, InterpolationFailure>? {
        let map = lookupMap(section)
        guard let raw = map[key] else { return nil }
        var out = ""
        do {
            try Self.interpolate(raw, map: map, depth: 1, into: &out, option: key, section: section)
            return .success(out)
        } catch let failure as InterpolationFailure {
            return .failure(failure)
        } catch {
            return .failure(InterpolationFailure(kind: "Error", message: "\(error)"))
        }
    }

    /// Effective keys of a section: its own plus `[DEFAULT]`'s, as OpenMSIStream iterates them.
    public func effectiveKeys(_ section: String) -> [String] {
        var keys = self.section(section)?.options.map(\.key) ?? []
        for option in defaults where !keys.contains(option.key) { keys.append(option.key) }
        return keys
    }

    private func lookupMap(_ section: String) -> [String: String] {
        var map: [String: String] = [:]
        for option in defaults { map[option.key] = option.raw }
        if section != "DEFAULT", let s = self.section(section) {
            for option in s.options { map[option.key] = option.raw }
        }
        return map
    }

    private static func interpolate(_ rest: String, map: [String: String], depth: Int, into out: inout String,
                                    option: String, section: String) throws {
        if depth > 10 {
            throw InterpolationFailure(kind: "InterpolationDepthError",
                                       message: "recursion limit exceeded in value substitution for '\(option)'")
        }
        var rest = Substring(rest)
        while !rest.isEmpty {
            guard let p = rest.firstIndex(of: "%") else { out += rest; return }
            out += rest[rest.startIndex..<p]
            rest = rest[p...]
            let next = rest.dropFirst().first
            if next == "%" {
                out += "%"
                rest = rest.dropFirst(2)
            } else if next == "(" {
                // %\(([^)]+)\)s
                let afterParen = rest.dropFirst(2)
                guard let close = afterParen.firstIndex(of: ")"), close > afterParen.startIndex,
                      afterParen[afterParen.index(after: close)...].first == "s" else {
                    throw InterpolationFailure(kind: "InterpolationSyntaxError",
                                               message: "bad interpolation variable reference")
                }
                let name = String(afterParen[afterParen.startIndex..<close]).lowercased()
                rest = afterParen[afterParen.index(close, offsetBy: 2)...]
                guard let v = map[name] else {
                    throw InterpolationFailure(kind: "InterpolationMissingOptionError",
                                               message: "'%(\(name))s' refers to a key that does not exist")
                }
                if v.contains("%") {
                    try interpolate(v, map: map, depth: depth + 1, into: &out, option: option, section: section)
                } else {
                    out += v
                }
            } else {
                throw InterpolationFailure(kind: "InterpolationSyntaxError",
                                           message: "'%' must be followed by '%' or '('")
            }
        }
    }
}

public enum ConfigParser {
    /// Parses bytes. Invalid UTF-8 yields a `UnicodeDecodeError` at its line and no sections.
    public static func parse(bytes: [UInt8], path: String) -> ConfigFile {
        switch PythonText.decodeUTF8(bytes) {
        case .success(let text):
            return parse(text: text, path: path)
        case .failure(let bad):
            let error = ConfigSyntaxError(kind: "UnicodeDecodeError", line: bad.line,
                                          message: "invalid UTF-8 at byte \(bad.byteOffset)")
            return ConfigFile(path: path, sections: [], defaults: [], defaultHeaderLines: [], errors: [error],
                              pythonError: error)
        }
    }

    // Mirrors RawConfigParser._read of CPython 3.11 line by line.
    public static func parse(text: String, path: String) -> ConfigFile {
        var sections: [ConfigSection] = []
        var defaults: [ConfigOption] = []
        var defaultHeaderLines: [Int] = []
        var errors: [ConfigSyntaxError] = []
        var firstImmediate: ConfigSyntaxError?
        var firstParsing: ConfigSyntaxError?

        enum Cursor { case none, defaults, section(Int) }
        var cursor = Cursor.none
        var sectionName: String?
        var seenSections = Set<String>()
        var seenOptions = Set<String>()       // "section\u{0}key"
        var currentOption: Int?              // index into the current section's options
        var pendingDefaults: [[String]] = []
        var sectionPending: [Int: [[String]]] = [:]
        var indentLevel = 0
        var swallowed: [SwallowedLine] = []

        func record(_ e: ConfigSyntaxError, immediate: Bool) {
            errors.append(e)
            if immediate { if firstImmediate == nil { firstImmediate = e } } else if firstParsing == nil { firstParsing = e }
        }
        func appendLine(_ value: String) {
            guard let i = currentOption else { return }
            switch cursor {
            case .none: return
            case .defaults: pendingDefaults[i].append(value)
            case .section(let s): sectionPending[s, default: []][i].append(value)
            }
        }

        let lines = PythonText.universalLines(text)
        for (index, line) in lines.enumerated() {
            let lineno = index + 1
            let stripped = PythonText.strip(line)
            let isComment = stripped.hasPrefix("#") || stripped.hasPrefix(";")
            let value = isComment ? "" : stripped
            if value.isEmpty {
                // Blank lines become part of a multi-line value; comment lines do not.
                if !isComment, currentOption != nil { appendLine("") }
                continue
            }
            let curIndent = line.firstIndex { !PythonText.isSpace($0) }.map { line.distance(from: line.startIndex, to: $0) } ?? 0
            var hasCursor = true
            if case .none = cursor { hasCursor = false }
            if hasCursor, currentOption != nil, curIndent > indentLevel {
                appendLine(value)
                if sectionHeader(value) != nil || splitOption(value) != nil {
                    swallowed.append(SwallowedLine(line: lineno, text: value, isHeader: sectionHeader(value) != nil))
                }
                continue
            }
            indentLevel = curIndent
            if let header = sectionHeader(value) {
                if header == "DEFAULT" {
                    cursor = .defaults
                    defaultHeaderLines.append(lineno)
                } else if let existing = sections.firstIndex(where: { $0.name == header }) {
                    if seenSections.contains(header) {
                        record(ConfigSyntaxError(kind: "DuplicateSectionError", line: lineno,
                                                 message: "section '\(header)' already exists"), immediate: true)
                    }
                    cursor = .section(existing)
                } else {
                    sections.append(ConfigSection(name: header, line: lineno, options: []))
                    cursor = .section(sections.count - 1)
                    seenSections.insert(header)
                }
                sectionName = header
                currentOption = nil
                continue
            }
            guard hasCursor else {
                record(ConfigSyntaxError(kind: "MissingSectionHeaderError", line: lineno,
                                         message: "the file must start with a section header such as [broker]"),
                       immediate: true)
                // Python stops here; keep reading as if a nameless section existed to find more problems.
                break
            }
            guard let (writtenKey, rawValue) = splitOption(value) else {
                record(ConfigSyntaxError(kind: "ParsingError", line: lineno,
                                         message: "line has no '=' or ':' between a key and a value"), immediate: false)
                continue
            }
            if writtenKey.isEmpty {
                record(ConfigSyntaxError(kind: "ParsingError", line: lineno, message: "line has a value but no key"),
                       immediate: false)
            }
            let key = PythonText.lower(writtenKey)
            let token = (sectionName ?? "") + "\u{0}" + key
            if seenOptions.contains(token) {
                record(ConfigSyntaxError(kind: "DuplicateOptionError", line: lineno,
                                         message: "key '\(key)' already appears in section [\(sectionName ?? "")]"),
                       immediate: true)
            }
            seenOptions.insert(token)
            let option = ConfigOption(key: key, writtenKey: writtenKey, raw: rawValue, line: lineno, continued: false)
            switch cursor {
            case .none: break
            case .defaults:
                if let i = defaults.firstIndex(where: { $0.key == key }) {
                    defaults[i] = option; pendingDefaults[i] = [rawValue]; currentOption = i
                } else {
                    defaults.append(option); pendingDefaults.append([rawValue]); currentOption = defaults.count - 1
                }
            case .section(let s):
                var list = sectionPending[s] ?? []
                if let i = sections[s].options.firstIndex(where: { $0.key == key }) {
                    sections[s].options[i] = option; list[i] = [rawValue]; currentOption = i
                } else {
                    sections[s].options.append(option); list.append([rawValue]); currentOption = list.count - 1
                }
                sectionPending[s] = list
            }
            // An empty option name is falsy in Python: it never takes continuation or blank lines.
            if key.isEmpty { currentOption = nil }
        }

        // _join_multiline_values: '\n'.join(lines).rstrip()
        func join(_ parts: [String]) -> String { PythonText.rstrip(parts.joined(separator: "\n")) }
        for i in defaults.indices {
            defaults[i].raw = join(pendingDefaults[i])
            defaults[i].continued = pendingDefaults[i].dropFirst().contains { !$0.isEmpty }
        }
        for s in sections.indices {
            let list = sectionPending[s] ?? []
            for i in sections[s].options.indices {
                sections[s].options[i].raw = join(list[i])
                sections[s].options[i].continued = list[i].dropFirst().contains { !$0.isEmpty }
            }
        }
        return ConfigFile(path: path, sections: sections, defaults: defaults, defaultHeaderLines: defaultHeaderLines,
                          errors: errors, pythonError: firstImmediate ?? firstParsing,
                          startsWithBOM: text.unicodeScalars.first == "\u{FEFF}", swallowedLines: swallowed)
    }

    /// SECTCRE `\[(?P<header>.+)\]` matched at the start of the stripped line (greedy: the last `]` closes).
    static func sectionHeader(_ value: String) -> String? {
        guard value.hasPrefix("["), let close = value.lastIndex(of: "]") else { return nil }
        let inner = value[value.index(after: value.startIndex)..<close]
        guard !inner.isEmpty else { return nil }
        // `.` does not match a newline; our lines hold none.
        return String(inner)
    }

    /// OPTCRE: `(?P<option>.*?)\s*(?P<vi>=|:)\s*(?P<value>.*)$` — the first `=` or `:` splits.
    static func splitOption(_ value: String) -> (String, String)? {
        let scalars = value.unicodeScalars
        guard let d = scalars.firstIndex(where: { $0 == "=" || $0 == ":" }) else { return nil }
        let key = PythonText.rstrip(String(String.UnicodeScalarView(scalars[scalars.startIndex..<d])))
        let rest = PythonText.strip(scalars[scalars.index(after: d)...])
        return (key, rest)
    }
}
