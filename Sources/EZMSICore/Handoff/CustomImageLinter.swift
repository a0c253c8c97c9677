import Foundation

// Lints a deployment's optional `custom_image/` folder: the Dockerfile and the startup script its ENTRYPOINT/CMD
// runs. Pure apart from `CustomImageFolder.disk`, which reads the folder once; every rule works on parsed text.
//
// Where to find a rule: each one is a small static function named after its code, listed in
// `CustomImageLinter.dockerfileRules` / `scriptRules`. The codes are stable (part of the JSON report).
//
//   Dockerfile                          severity  why
//   dockerfile-missing                  fail      custom_image/ without a Dockerfile cannot be built
//   no-from                             fail      nothing to build on
//   instruction-before-from             fail      only ARG may precede the first FROM
//   unknown-instruction                 fail      the builder refuses the file
//   arg-before-from-unscoped            fail      an ARG declared before FROM is empty after FROM unless redeclared
//   from-unpinned                       warn      a tag moves; only `@sha256:` pins the base
//   add-instead-of-copy                 warn      ADD of a local, non-archive file: COPY says what it does
//   chmod-world-writable                fail      --chmod with o+w: anyone in the container can rewrite it
//   chmod-executable-config             warn      --chmod with x on a config/data file
//   chmod-needs-buildkit                warn      the legacy builder rejects --chmod
//   secret-in-image                     fail      an env-file (*.env) copied into a layer ships the credentials
//   exec-form-invalid-json              fail      `["…']` is not JSON, so docker silently runs it as shell form
//   entrypoint-shell-form               fail      /bin/sh -c is PID 1: no signals, docker run args ignored
//   cmd-shell-form                      fail/warn with the official ENTRYPOINT ["bash"] it becomes `bash /bin/sh -c …`
//   user-root                           warn      OpenMSIStream is installed for openmsi, not root
//   dockerfile-no-final-newline         warn
//   Script (the one ENTRYPOINT/CMD names, default startup-script.sh)
//   script-missing                      fail      the Dockerfile copies/runs a script that is not there
//   script-crlf                         fail      `#!/bin/bash\r`: bad interpreter
//   script-shebang-missing              fail/warn first line is not `#!…` (e.g. `#/bin/bash`, missing !)
//   script-no-strict-mode               warn      no `set -euo pipefail`
//   script-no-exec                      fail      the last program is a child of the shell, not PID 1
//   script-unquoted-variable            warn      `$TOPIC_NAME` unquoted is split and globbed
//   script-relative-path                warn      `data`, `config.config` depend on the working directory
//   script-no-consumer-group            warn      a consumer without --consumer_group_id gets a new random group
//   script-not-executable               fail/warn the file lacks the x bit
//   script-no-final-newline             warn

// MARK: - Issues

/// One problem in the custom image folder. `file` is the full path, `line` is 1-based (nil: the whole file).
public struct CustomImageIssue: Equatable, Sendable, Codable, CustomStringConvertible {
    public var code: String
    public var severity: Severity
    public var file: String
    public var line: Int?
    public var message: String
    public var fix: String
    public var commands: [String]

    public init(_ code: String, _ severity: Severity, file: String, line: Int?, _ message: String, fix: String,
                commands: [String] = []) {
        self.code = code
        self.severity = severity
        self.file = file
        self.line = line
        self.message = message
        self.fix = fix
        self.commands = commands
    }

    public var description: String {
        "\(file)\(line.map { ":\($0)" } ?? ""): \(severity.rawValue) \(code): \(message)"
    }
}

// MARK: - The folder (the build context)

/// The files of the build context, as the linter sees them. `disk` reads a real folder; tests may use `memory`.
public struct CustomImageFolder {
    public struct File {
        public var text: String?
        /// st_mode (permission bits matter).
        public var mode: UInt32
        public init(text: String?, mode: UInt32) {
            self.text = text
            self.mode = mode
        }
    }

    public var path: String
    /// Relative paths of the regular files, `/`-separated, sorted.
    public var files: [String]
    /// Relative paths of the directories.
    public var directories: Set<String>
    public var read: (String) -> File?

    public init(path: String, files: [String], directories: Set<String>, read: @escaping (String) -> File?) {
        self.path = path
        self.files = files
        self.directories = directories
        self.read = read
    }

    /// Files given in memory: relative path → (text, permission mode).
    public static func memory(path: String = "/deploy/custom_image", _ files: [String: (String, UInt32)]) -> CustomImageFolder {
        var dirs: Set<String> = []
        for name in files.keys {
            var parts = name.split(separator: "/").dropLast()
            while !parts.isEmpty { dirs.insert(parts.joined(separator: "/")); parts = parts.dropLast() }
        }
        return CustomImageFolder(path: path, files: files.keys.sorted(), directories: dirs) { name in
            files[name].map { File(text: $0.0, mode: 0o100000 | $0.1) }
        }
    }

    /// A real folder; lists at most `limit` entries (a build context is small).
    public static func disk(_ path: String, limit: Int = 5000) -> CustomImageFolder {
        var files: [String] = []
        var dirs: Set<String> = []
        let fm = FileManager.default
        var queue = [""]
        while let rel = queue.popLast(), files.count + dirs.count < limit {
            let abs = rel.isEmpty ? path : path + "/" + rel
            guard let names = try? fm.contentsOfDirectory(atPath: abs) else { continue }
            for name in names.sorted() {
                let child = rel.isEmpty ? name : rel + "/" + name
                var st = stat()
                guard lstat(path + "/" + child, &st) == 0 else { continue }
                switch st.st_mode & S_IFMT {
                case S_IFDIR: dirs.insert(child); if child != ".git" { queue.append(child) }
                case S_IFREG: files.append(child)
                default: break
                }
            }
        }
        return CustomImageFolder(path: path, files: files.sorted(), directories: dirs) { name in
            guard case .success(let snap) = FileReading.read(path + "/" + name) else { return nil }
            return File(text: String(decoding: snap.bytes, as: UTF8.self), mode: snap.mode)
        }
    }

    /// The same folder with every file read now, so that linting it does no I/O (a probe's fact): files up to 1 MiB
    /// whole, larger ones only their first 4 KiB (what the rules read of those: a shebang, a first line).
    public func snapshot() -> CustomImageFolder {
        var contents: [String: File] = [:]
        for name in files {
            guard var file = read(name) else { continue }
            if let text = file.text, text.utf8.count > 1 << 20 { file.text = String(decoding: text.utf8.prefix(4096), as: UTF8.self) }
            contents[name] = file
        }
        return CustomImageFolder(path: path, files: files, directories: directories) { contents[$0] }
    }

    func exists(_ name: String) -> Bool { files.contains(name) }
    func full(_ name: String) -> String { path + "/" + name }
}

// MARK: - Entry points

public enum CustomImageLinter {
    public static let folderName = "custom_image"
    public static let defaultScript = "startup-script.sh"

    /// Lints `directory` (a `custom_image` folder, the Docker build context). Empty when everything is fine.
    public static func lint(directory: String) -> [CustomImageIssue] {
        lint(CustomImageFolder.disk(directory))
    }

    public static func lint(_ folder: CustomImageFolder) -> [CustomImageIssue] {
        let dockerfilePath = folder.full("Dockerfile")
        guard let file = folder.read("Dockerfile"), let text = file.text else {
            return [CustomImageIssue("dockerfile-missing", .fail, file: dockerfilePath, line: nil,
                                     "\(folder.path) has no Dockerfile, so the custom image cannot be built",
                                     fix: "Add a Dockerfile (FROM openmsi/openmsistream@sha256:…) or delete the custom_image folder")]
        }
        let dockerfile = Dockerfile.parse(text)
        let ctx = DockerfileContext(folder: folder, path: dockerfilePath, dockerfile: dockerfile)
        var issues = dockerfileRules.flatMap { $0(ctx) }
        if let use = ctx.scriptUse {
            if let script = folder.read(use.contextFile), let scriptText = script.text {
                let sctx = ScriptContext(folder: folder, path: folder.full(use.contextFile), text: scriptText, mode: script.mode,
                                         use: use, dockerfile: ctx)
                issues += scriptRules.flatMap { $0(sctx) }
            } else if use.copiedAt != nil {
                issues.append(CustomImageIssue(
                    "script-missing", .fail, file: dockerfilePath, line: use.copiedAt ?? use.runAt,
                    "the Dockerfile copies \(use.contextFile) into the image, but \(folder.full(use.contextFile)) does not exist",
                    fix: "Create \(use.contextFile) next to the Dockerfile, or correct the name in COPY and ENTRYPOINT"))
            }
        }
        return issues
    }

    typealias DockerfileRule = (DockerfileContext) -> [CustomImageIssue]
    typealias ScriptRule = (ScriptContext) -> [CustomImageIssue]

    static let dockerfileRules: [DockerfileRule] = [
        noFrom, instructionBeforeFrom, unknownInstruction, argBeforeFromUnscoped, fromUnpinned, addInsteadOfCopy,
        chmodModes, secretInImage, execFormInvalidJSON, entrypointShellForm, cmdShellForm, userRoot, dockerfileNoFinalNewline,
    ]

    static let scriptRules: [ScriptRule] = [
        scriptCRLF, scriptShebangMissing, scriptNoStrictMode, scriptNoExec, scriptUnquotedVariable, scriptRelativePath,
        scriptNoConsumerGroup, scriptNotExecutable, scriptNoFinalNewline,
    ]
}

// MARK: - Dockerfile parser

public struct DockerfileFlag: Equatable, Sendable {
    public var name: String
    public var value: String?
}

public struct DockerfileInstruction: Equatable, Sendable {
    /// Upper-cased, e.g. `COPY`.
    public var keyword: String
    /// First and last physical line (1-based).
    public var line: Int
    public var endLine: Int
    /// Leading `--name[=value]` flags (FROM, COPY, ADD, RUN, HEALTHCHECK only).
    public var flags: [DockerfileFlag]
    /// The text after the keyword and flags, continuation lines joined.
    public var arguments: String
    /// The JSON array (exec form) when the arguments are one.
    public var execForm: [String]?
    /// The arguments start with `[` but are not a JSON array of strings: docker then uses the shell form.
    public var invalidJSON: Bool
    public var heredocs: [String]

    public func flag(_ name: String) -> DockerfileFlag? { flags.last { $0.name == name } }
    /// Exec-form array, or the arguments split on whitespace (how COPY/ADD/FROM read them).
    public var words: [String] { execForm ?? arguments.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }
}

public struct Dockerfile: Sendable {
    /// Parser directives (`# syntax=…`, `# escape=…`, `# check=…`), keys lower-cased.
    public var directives: [String: String]
    public var escape: Character
    public var instructions: [DockerfileInstruction]
    public var endsWithNewline: Bool
    public var lineCount: Int

    static let keywords: Set<String> = ["ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
                                        "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"]
    static let flagged: Set<String> = ["FROM", "COPY", "ADD", "RUN", "HEALTHCHECK"]
    static let jsonCapable: Set<String> = ["RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"]

    /// Parses like BuildKit's dockerfile frontend: directives only at the very top, `#` lines are comments (also
    /// inside continuations), a line ending in the escape character (then optional blanks) continues, heredocs
    /// (`<<EOF`) in RUN/COPY/ADD run to their terminator, and a `[` argument that is not valid JSON is shell form.
    public static func parse(_ text: String) -> Dockerfile {
        let normalized = normalizeNewlines(text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text)
        var lines = normalized.components(separatedBy: "\n")
        let endsWithNewline = normalized.hasSuffix("\n")
        if endsWithNewline { lines.removeLast() }
        var directives: [String: String] = [:]
        var escape: Character = "\\"
        var instructions: [DockerfileInstruction] = []
        var i = 0
        var directivePhase = true
        while i < lines.count {
            let raw = lines[i]
            let trimmed = raw.trimmingCharacters(in: .whitespaces)
            if directivePhase {
                if let (key, value) = directive(trimmed), directives[key] == nil {
                    directives[key] = value
                    if key == "escape", value == "`" { escape = "`" }
                    i += 1
                    continue
                }
                directivePhase = false
            }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { i += 1; continue }
            let start = i + 1
            var joined = ""
            var current = raw
            while true {
                i += 1
                if let body = continued(current, escape: escape) {
                    joined += body
                    while i < lines.count {
                        let t = lines[i].trimmingCharacters(in: .whitespaces)
                        if t.isEmpty || t.hasPrefix("#") { i += 1 } else { break }
                    }
                    if i >= lines.count { break }
                    current = lines[i]
                } else {
                    joined += current
                    break
                }
            }
            var instruction = makeInstruction(joined, line: start, endLine: i)
            // Heredocs: the body lines follow the instruction.
            if ["RUN", "COPY", "ADD"].contains(instruction.keyword) {
                for (word, stripTabs) in heredocMarkers(instruction.arguments) {
                    var body: [String] = []
                    while i < lines.count {
                        let l = stripTabs ? String(lines[i].drop { $0 == "\t" }) : lines[i]
                        i += 1
                        if l == word { break }
                        body.append(lines[i - 1])
                    }
                    instruction.heredocs.append(body.joined(separator: "\n"))
                    instruction.endLine = i
                }
            }
            instructions.append(instruction)
        }
        return Dockerfile(directives: directives, escape: escape, instructions: instructions, endsWithNewline: endsWithNewline,
                          lineCount: lines.count)
    }

    static func directive(_ line: String) -> (String, String)? {
        guard line.hasPrefix("#") else { return nil }
        let body = line.dropFirst()
        guard let eq = body.firstIndex(of: "=") else { return nil }
        let key = body[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
        let value = body[body.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        guard ["syntax", "escape", "check"].contains(key), !value.isEmpty else { return nil }
        return (key, value)
    }

    static func continued(_ line: String, escape: Character) -> String? {
        var s = Substring(line)
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        guard s.last == escape else { return nil }
        return String(s.dropLast())
    }

    static func heredocMarkers(_ args: String) -> [(String, Bool)] {
        var result: [(String, Bool)] = []
        var rest = Substring(args)
        while let r = rest.range(of: "<<") {
            rest = rest[r.upperBound...]
            var strip = false
            if rest.first == "-" { strip = true; rest = rest.dropFirst() }
            var quote: Character?
            if let q = rest.first, q == "\"" || q == "'" { quote = q; rest = rest.dropFirst() }
            let word = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            guard !word.isEmpty, word.first!.isLetter || word.first == "_" else { continue }
            rest = rest.dropFirst(word.count)
            if let quote, rest.first == quote { rest = rest.dropFirst() }
            result.append((String(word), strip))
        }
        return result
    }

    static func makeInstruction(_ text: String, line: Int, endLine: Int) -> DockerfileInstruction {
        let body = text.drop { $0 == " " || $0 == "\t" }
        let keyword = body.prefix { $0 != " " && $0 != "\t" }.uppercased()
        var rest = body.drop { $0 != " " && $0 != "\t" }.drop { $0 == " " || $0 == "\t" }
        var flags: [DockerfileFlag] = []
        if flagged.contains(keyword) {
            while rest.hasPrefix("--") {
                let token = rest.prefix { $0 != " " && $0 != "\t" }
                rest = rest.dropFirst(token.count).drop { $0 == " " || $0 == "\t" }
                let name = token.dropFirst(2)
                if let eq = name.firstIndex(of: "=") {
                    flags.append(DockerfileFlag(name: String(name[..<eq]), value: String(name[name.index(after: eq)...])))
                } else {
                    flags.append(DockerfileFlag(name: String(name), value: nil))
                }
            }
        }
        var arguments = String(rest)
        while let last = arguments.last, last == " " || last == "\t" { arguments.removeLast() }
        var execForm: [String]?
        var invalidJSON = false
        if jsonCapable.contains(keyword), arguments.hasPrefix("[") {
            if let array = try? JSONSerialization.jsonObject(with: Data(arguments.utf8)) as? [Any],
               array.allSatisfy({ $0 is String }) {
                execForm = array as? [String]
            } else {
                invalidJSON = true
            }
        }
        return DockerfileInstruction(keyword: keyword, line: line, endLine: endLine, flags: flags, arguments: arguments,
                                     execForm: execForm, invalidJSON: invalidJSON, heredocs: [])
    }
}

/// `\r\n` → `\n` (Swift treats `\r\n` as one Character, so this is done on scalars).
func normalizeNewlines(_ text: String) -> String {
    guard text.unicodeScalars.contains("\r") else { return text }
    var out = String.UnicodeScalarView()
    let scalars = Array(text.unicodeScalars)
    for (i, s) in scalars.enumerated() where !(s == "\r" && i + 1 < scalars.count && scalars[i + 1] == "\n") { out.append(s) }
    return String(out)
}

/// Dockerfile variable substitution (`$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME:+word}`); `\$` is a literal `$`.
enum DockerVariables {
    struct Reference: Equatable {
        var name: String
        /// `${NAME:-x}` / `${NAME-x}`: the author planned for it being unset.
        var hasDefault: Bool
    }

    static func expand(_ text: String, _ values: [String: String], escape: Character = "\\") -> String {
        scan(text, values, escape: escape, skipSingleQuoted: false).text
    }

    static func references(_ text: String, escape: Character = "\\", skipSingleQuoted: Bool = false) -> [Reference] {
        scan(text, [:], escape: escape, skipSingleQuoted: skipSingleQuoted).references
    }

    static func isNameStart(_ c: Character) -> Bool { c == "_" || (c.isASCII && c.isLetter) }
    static func isName(_ c: Character) -> Bool { c == "_" || (c.isASCII && (c.isLetter || c.isNumber)) }

    static func scan(_ text: String, _ values: [String: String], escape: Character, skipSingleQuoted: Bool,
                     keepUnknown: Bool = false) -> (text: String, references: [Reference]) {
        let c = Array(text)
        var out = ""
        var refs: [Reference] = []
        var inSingle = false
        var i = 0
        while i < c.count {
            let ch = c[i]
            if skipSingleQuoted, ch == "'" { inSingle.toggle(); out.append(ch); i += 1; continue }
            if ch == escape, i + 1 < c.count, c[i + 1] == "$" { out.append("$"); i += 2; continue }
            if ch == "$", !inSingle, i + 1 < c.count {
                if c[i + 1] == "{", let close = c[(i + 2)...].firstIndex(of: "}") {
                    let inner = c[(i + 2)..<close]
                    let name = String(inner.prefix(while: isName))
                    let op = String(inner.dropFirst(name.count))
                    if !name.isEmpty {
                        let value = values[name]
                        var result = value ?? ""
                        var hasDefault = false
                        if op.hasPrefix(":-") { hasDefault = true; if value?.isEmpty ?? true { result = String(op.dropFirst(2)) } }
                        else if op.hasPrefix("-") { hasDefault = true; if value == nil { result = String(op.dropFirst()) } }
                        else if op.hasPrefix(":+") { result = (value?.isEmpty ?? true) ? "" : String(op.dropFirst(2)) }
                        else if op.hasPrefix("+") { result = value == nil ? "" : String(op.dropFirst()) }
                        refs.append(Reference(name: name, hasDefault: hasDefault))
                        out += keepUnknown && value == nil && op.isEmpty ? String(c[i...close]) : result
                        i = close + 1
                        continue
                    }
                } else if isNameStart(c[i + 1]) {
                    var j = i + 1
                    while j < c.count, isName(c[j]) { j += 1 }
                    let name = String(c[(i + 1)..<j])
                    refs.append(Reference(name: name, hasDefault: false))
                    out += values[name] ?? (keepUnknown ? "$" + name : "")
                    i = j
                    continue
                }
            }
            out.append(ch)
            i += 1
        }
        return (out, refs)
    }
}

// MARK: - Dockerfile model: stages, the entry command, the script it runs

/// How the Dockerfile starts the startup script.
enum ScriptInvocation: Equatable {
    /// `ENTRYPOINT ["/home/openmsi/startup-script.sh"]`: execve, so the shebang and the x bit decide.
    case directExec
    /// `ENTRYPOINT ./startup-script.sh` (shell form): sh runs it; without a shebang sh falls back to itself.
    case directShell
    /// `. ./startup-script.sh` / `source …`: read by the calling sh.
    case sourced(shell: String)
    /// `bash startup-script.sh`: the interpreter is explicit.
    case interpreter(String)
    /// Not named by ENTRYPOINT/CMD (the default script is linted anyway).
    case unknown
}

struct ScriptUse {
    /// Relative path in the build context.
    var contextFile: String
    var invocation: ScriptInvocation
    /// Dockerfile line of the ENTRYPOINT/CMD that runs it.
    var runAt: Int?
    /// Dockerfile line of the COPY/ADD that puts it in the image, and its `--chmod`.
    var copiedAt: Int?
    var chmod: String?
}

struct Stage {
    var from: DockerfileInstruction
    var image: String
    var name: String?
    var instructions: [DockerfileInstruction]
}

struct DockerfileContext {
    let folder: CustomImageFolder
    let path: String
    let dockerfile: Dockerfile
    /// ARGs before the first FROM: name → (default, line).
    let globalArgs: [String: (value: String?, line: Int)]
    let preamble: [DockerfileInstruction]
    let stages: [Stage]
    var final: Stage? { stages.last }
    /// The effective ENTRYPOINT and CMD of the final stage.
    let entrypoint: DockerfileInstruction?
    let cmd: DockerfileInstruction?
    private(set) var scriptUse: ScriptUse?

    init(folder: CustomImageFolder, path: String, dockerfile: Dockerfile) {
        self.folder = folder
        self.path = path
        self.dockerfile = dockerfile
        var globals: [String: (value: String?, line: Int)] = [:]
        var preamble: [DockerfileInstruction] = []
        var stages: [Stage] = []
        for ins in dockerfile.instructions {
            if ins.keyword == "FROM" {
                let defaults = globals.compactMapValues { $0.value }
                let words = ins.words
                let image = DockerVariables.expand(words.first ?? "", defaults, escape: dockerfile.escape)
                let name = words.count >= 3 && words[1].uppercased() == "AS" ? words[2] : nil
                stages.append(Stage(from: ins, image: image, name: name, instructions: []))
            } else if stages.isEmpty {
                preamble.append(ins)
                if ins.keyword == "ARG" {
                    for (name, value) in Self.declarations(ins) { globals[name] = (value, ins.line) }
                }
            } else {
                stages[stages.count - 1].instructions.append(ins)
            }
        }
        globalArgs = globals
        self.preamble = preamble
        self.stages = stages
        let final = stages.last
        entrypoint = final?.instructions.last { $0.keyword == "ENTRYPOINT" }
        cmd = final?.instructions.last { $0.keyword == "CMD" }
        scriptUse = findScript()
    }

    /// `ARG A=1 B` / `ENV A=1 B=2` / legacy `ENV A 1`: names with their literal values.
    static func declarations(_ ins: DockerfileInstruction) -> [(String, String?)] {
        let words = ins.words
        if ins.keyword == "ENV", words.count >= 2, !words[0].contains("=") {
            return [(words[0], words.dropFirst().joined(separator: " "))]
        }
        return words.map { word -> (String, String?) in
            guard let eq = word.firstIndex(of: "=") else { return (word, nil) }
            return (String(word[..<eq]), unquote(String(word[word.index(after: eq)...])))
        }
    }

    static func unquote(_ s: String) -> String {
        if s.count >= 2, let f = s.first, f == "\"" || f == "'", s.last == f { return String(s.dropFirst().dropLast()) }
        return s
    }

    /// The base is the official OpenMSIStream image (ENTRYPOINT ["bash"], user openmsi, WORKDIR /home/openmsi).
    var baseIsOfficial: Bool {
        guard var image = final?.image else { return false }
        if let at = image.firstIndex(of: "@") { image = String(image[..<at]) }
        if let colon = image.lastIndex(of: ":"), !image[colon...].contains("/") { image = String(image[..<colon]) }
        for prefix in ["docker.io/", "index.docker.io/"] where image.hasPrefix(prefix) { image = String(image.dropFirst(prefix.count)) }
        return image == ProgramTable.officialImage
    }

    /// Values the final stage sees at `index` (its ARGs and ENVs before that; out-of-scope global ARGs are empty).
    func stageValues(before line: Int) -> [String: String] {
        var values: [String: String] = [:]
        guard let final else { return values }
        for ins in final.instructions where ins.line < line && (ins.keyword == "ARG" || ins.keyword == "ENV") {
            for (name, value) in Self.declarations(ins) {
                if let value { values[name] = DockerVariables.expand(value, values, escape: dockerfile.escape) }
                else if ins.keyword == "ARG", let global = globalArgs[name]?.value { values[name] = global }
            }
        }
        return values
    }

    /// The final stage sets a WORKDIR that is not empty after substitution.
    var workdirGuaranteed: Bool {
        guard let final else { return false }
        return final.instructions.contains { ins in
            ins.keyword == "WORKDIR"
                && !DockerVariables.expand(ins.arguments, stageValues(before: ins.line), escape: dockerfile.escape)
                    .trimmingCharacters(in: .whitespaces).isEmpty
        }
    }

    // The argv docker starts, from ENTRYPOINT/CMD (and the official image's ENTRYPOINT ["bash"] when inherited).
    private func entryArgv() -> (argv: [String], line: Int)? {
        func argv(_ ins: DockerfileInstruction) -> [String] { ins.execForm ?? ["/bin/sh", "-c", ins.arguments] }
        if let entrypoint {
            if entrypoint.execForm == nil { return (argv(entrypoint), entrypoint.line) }
            return (argv(entrypoint) + (cmd.map(argv) ?? []), entrypoint.line)
        }
        if let cmd { return ((baseIsOfficial ? ["bash"] : []) + argv(cmd), cmd.line) }
        return nil
    }

    static let shells: Set<String> = ["sh", "bash", "dash", "ash", "zsh", "ksh"]

    /// `x.sh`, or a file of the build context that starts with `#` (a script, perhaps with a broken #! line).
    func isScriptWord(_ word: String) -> Bool {
        let base = (word as NSString).lastPathComponent
        if base.hasSuffix(".sh") || base.hasSuffix(".bash") { return true }
        guard !base.isEmpty, base != "Dockerfile",
              let file = folder.files.first(where: { ($0 as NSString).lastPathComponent == base }) else { return false }
        return folder.read(file)?.text?.hasPrefix("#") == true
    }

    /// (script word, invocation) from an argv.
    func classify(_ argv: [String], execForm: Bool) -> (String, ScriptInvocation)? {
        guard let first = argv.first else { return nil }
        let base = (first as NSString).lastPathComponent
        if Self.shells.contains(base) {
            if argv.count >= 3, argv[1] == "-c" { return classifyShellText(argv[2], shell: base) }
            if argv.count >= 2, isScriptWord(argv[1]) { return (argv[1], .interpreter(base)) }
            return nil
        }
        if isScriptWord(first) { return (first, execForm ? .directExec : .directShell) }
        // A wrapper such as tini or dumb-init that execs its argument.
        if let word = argv.dropFirst().first(where: isScriptWord) { return (word, .directExec) }
        return nil
    }

    func classifyShellText(_ text: String, shell: String) -> (String, ScriptInvocation)? {
        for command in ShellScript.parse(text).commands {
            var words = command.words.map(\.value)
            if words.first == "exec" { words.removeFirst() }
            guard let first = words.first else { continue }
            if first == "." || first == "source", words.count >= 2, isScriptWord(words[1]) { return (words[1], .sourced(shell: shell)) }
            if let r = classify(words, execForm: false) {
                if case .directExec = r.1 { return (r.0, .directShell) }
                return r
            }
        }
        return nil
    }

    /// The script ENTRYPOINT/CMD runs, mapped back to a file of the build context through COPY/ADD.
    private func findScript() -> ScriptUse? {
        var word: String?
        var invocation = ScriptInvocation.unknown
        var runAt: Int?
        if let entry = entryArgv(), let found = classify(entry.argv, execForm: true) {
            word = found.0
            invocation = found.1
            runAt = entry.line
        }
        let base = ((word ?? CustomImageLinter.defaultScript) as NSString).lastPathComponent
        for ins in (final?.instructions ?? []) where (ins.keyword == "COPY" || ins.keyword == "ADD") && ins.flag("from") == nil {
            let words = ins.words
            guard words.count >= 2 else { continue }
            let sources = words.dropLast()
            let dest = words.last!
            let destIsDirectory = dest.hasSuffix("/") || dest == "." || sources.count > 1
            for source in sources {
                var candidate: String?
                let clean = source.hasPrefix("./") ? String(source.dropFirst(2)) : source
                if clean == "." || clean.isEmpty || folder.directories.contains(clean) {
                    candidate = clean == "." || clean.isEmpty ? base : clean + "/" + base
                } else if destIsDirectory {
                    if fnmatch(clean, base) || (clean as NSString).lastPathComponent == base { candidate = clean }
                } else if (dest as NSString).lastPathComponent == base {
                    candidate = clean
                }
                if let c = candidate, word == nil, !folder.exists(c) { candidate = nil }   // `COPY . x` without the default script
                if let candidate, candidate.contains("*") || candidate.contains("?") {
                    let dir = (candidate as NSString).deletingLastPathComponent
                    return ScriptUse(contextFile: dir.isEmpty ? base : dir + "/" + base, invocation: invocation, runAt: runAt,
                                     copiedAt: ins.line, chmod: ins.flag("chmod")?.value)
                }
                if let candidate {
                    return ScriptUse(contextFile: candidate, invocation: invocation, runAt: runAt, copiedAt: ins.line,
                                     chmod: ins.flag("chmod")?.value)
                }
            }
        }
        if folder.exists(base) { return ScriptUse(contextFile: base, invocation: invocation, runAt: runAt, copiedAt: nil, chmod: nil) }
        return nil
    }

    func fnmatch(_ pattern: String, _ name: String) -> Bool {
        Glibc.fnmatch(pattern, name, 0) == 0
    }
}

// MARK: - Dockerfile rules

extension CustomImageLinter {
    static func issue(_ ctx: DockerfileContext, _ code: String, _ severity: Severity, _ line: Int?, _ message: String,
                      fix: String, commands: [String] = []) -> CustomImageIssue {
        CustomImageIssue(code, severity, file: ctx.path, line: line, message, fix: fix, commands: commands)
    }

    static func noFrom(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        guard ctx.stages.isEmpty else { return [] }
        return [issue(ctx, "no-from", .fail, nil, "the Dockerfile has no FROM line, so there is nothing to build on",
                      fix: "Start the build stage with FROM openmsi/openmsistream@sha256:<digest>")]
    }

    static func instructionBeforeFrom(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        ctx.preamble.filter { $0.keyword != "ARG" && Dockerfile.keywords.contains($0.keyword) }.map {
            issue(ctx, "instruction-before-from", .fail, $0.line, "\($0.keyword) comes before the first FROM; only ARG may",
                  fix: "Move the FROM line above line \($0.line)")
        }
    }

    static func unknownInstruction(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        ctx.dockerfile.instructions.filter { !Dockerfile.keywords.contains($0.keyword) }.map {
            issue(ctx, "unknown-instruction", .fail, $0.line,
                  "unknown instruction \($0.keyword): docker build stops here (a continuation `\\` missing on the line before?)",
                  fix: "Use a Dockerfile instruction (FROM, COPY, RUN, ENTRYPOINT, …) or end the previous line with \\")
        }
    }

    /// `ARG ROOT=/x` before FROM, then `WORKDIR ${ROOT}` after FROM without `ARG ROOT`: the value is empty there.
    static func argBeforeFromUnscoped(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        guard !ctx.globalArgs.isEmpty else { return [] }
        let runtime: Set<String> = ["CMD", "ENTRYPOINT", "HEALTHCHECK", "ONBUILD"]
        var issues: [CustomImageIssue] = []
        for stage in ctx.stages {
            var declared: Set<String> = []
            for ins in stage.instructions {
                var seen: Set<String> = []
                let isShell = ins.keyword == "RUN"
                if !runtime.contains(ins.keyword), !(isShell && ins.execForm != nil) {
                    for ref in DockerVariables.references(ins.arguments, escape: ctx.dockerfile.escape, skipSingleQuoted: isShell)
                    where !ref.hasDefault && !declared.contains(ref.name) && !seen.contains(ref.name) {
                        guard let global = ctx.globalArgs[ref.name] else { continue }
                        seen.insert(ref.name)
                        let what = isShell ? "the RUN command sees it unset" :
                            ins.keyword == "WORKDIR" ? "WORKDIR gets an empty path (the legacy builder stops with \"cannot normalize nothing\"; it only works when the base image's WORKDIR is already right)" :
                            "\(ins.keyword) gets an empty value"
                        issues.append(issue(
                            ctx, "arg-before-from-unscoped", .fail, ins.line,
                            "ARG \(ref.name) is declared before FROM (line \(global.line)), so $\(ref.name) is empty on line \(ins.line): \(what)",
                            fix: "Redeclare it inside the stage: add `ARG \(ref.name)` right after the FROM on line \(stage.from.line) (it keeps the default from line \(global.line)), or move the ARG below FROM"))
                    }
                }
                if ins.keyword == "ARG" || ins.keyword == "ENV" {
                    for (name, _) in DockerfileContext.declarations(ins) { declared.insert(name) }
                }
            }
        }
        return issues
    }

    static func isDigestPinned(_ image: String) -> Bool {
        guard let r = image.range(of: "@sha256:") else { return false }
        let hex = image[r.upperBound...]
        return hex.count == 64 && hex.allSatisfy { $0.isHexDigit }
    }

    static func fromUnpinned(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        var stageNames: Set<String> = []
        var issues: [CustomImageIssue] = []
        for stage in ctx.stages {
            defer { if let name = stage.name { stageNames.insert(name.lowercased()) } }
            let image = stage.image
            if image.isEmpty || image.lowercased() == "scratch" || stageNames.contains(image.lowercased()) || isDigestPinned(image) { continue }
            let tag = image.contains("@") ? image : (image.split(separator: "/").last?.contains(":") == true ? image : image + ":latest")
            issues.append(issue(
                ctx, "from-unpinned", .warn, stage.from.line,
                "FROM \(image) is not pinned by digest: a tag can be moved to another image (openmsi/openmsistream:latest is rebuilt with whatever OpenMSIStream is on PyPI at each release), so the same Dockerfile builds a different image later",
                fix: "Pin the base: FROM \(tag)@sha256:<digest> (the tag stays readable; the digest decides)",
                commands: ["docker pull \(tag) && docker inspect --format '{{index .RepoDigests 0}}' \(tag)"]))
        }
        return issues
    }

    static let archiveSuffixes = [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".tar.Z"]

    static func isRemoteOrArchive(_ source: String) -> Bool {
        let lower = source.lowercased()
        return lower.contains("://") || lower.hasPrefix("git@") || source.hasPrefix("<<") || archiveSuffixes.contains { lower.hasSuffix($0.lowercased()) }
    }

    /// ADD of plain local files: COPY does the same without ADD's URL fetching and archive extraction.
    static func addInsteadOfCopy(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        ctx.dockerfile.instructions.filter { $0.keyword == "ADD" }.compactMap { ins in
            let sources = ins.words.dropLast()
            guard !sources.isEmpty, ins.flag("checksum") == nil, ins.flag("keep-git-dir") == nil,
                  !sources.contains(where: isRemoteOrArchive) else { return nil }
            return issue(ctx, "add-instead-of-copy", .warn, ins.line,
                         "ADD copies plain local files here (\(sources.joined(separator: " "))); ADD also fetches URLs and unpacks archives, so COPY says what is meant",
                         fix: "Write COPY instead of ADD on line \(ins.line) (keep ADD only for URLs and tar archives)")
        }
    }

    /// Permission bits from `--chmod` (octal, or symbolic like `u=rwx,go=rx`), nil when unparsable.
    static func chmodBits(_ spec: String) -> UInt32? {
        if !spec.isEmpty, spec.allSatisfy({ ("0"..."7").contains($0) }) { return UInt32(spec, radix: 8).map { $0 & 0o7777 } }
        var mode: UInt32 = 0
        for clause in spec.split(separator: ",") {
            let who = clause.prefix { "ugoa".contains($0) }
            var rest = clause.dropFirst(who.count)
            guard let op = rest.first, "+-=".contains(op) else { return nil }
            rest = rest.dropFirst()
            var perm: UInt32 = 0
            for p in rest {
                switch p {
                case "r": perm |= 4
                case "w": perm |= 2
                case "x", "X": perm |= 1
                case "s", "t": break
                default: return nil
                }
            }
            var mask: UInt32 = 0
            let w = who.isEmpty ? "a" : String(who)
            if w.contains("u") || w.contains("a") { mask |= perm << 6 }
            if w.contains("g") || w.contains("a") { mask |= perm << 3 }
            if w.contains("o") || w.contains("a") { mask |= perm }
            switch op {
            case "+": mode |= mask
            case "-": mode &= ~mask
            default:
                var clear: UInt32 = 0
                if w.contains("u") || w.contains("a") { clear |= 0o700 }
                if w.contains("g") || w.contains("a") { clear |= 0o070 }
                if w.contains("o") || w.contains("a") { clear |= 0o007 }
                mode = (mode & ~clear) | mask
            }
        }
        return mode
    }

    static func isScriptName(_ name: String, ctx: DockerfileContext) -> Bool {
        let base = (name as NSString).lastPathComponent
        if base.hasSuffix(".sh") || base.hasSuffix(".bash") || base.hasSuffix(".py") { return true }
        if let use = ctx.scriptUse, (use.contextFile as NSString).lastPathComponent == base { return true }
        return ctx.folder.read(name)?.text?.hasPrefix("#!") == true
    }

    /// `--chmod=777`: world-writable (fail), executable config files (warn), and `--chmod` needs BuildKit (warn).
    static func chmodModes(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        var issues: [CustomImageIssue] = []
        for ins in ctx.dockerfile.instructions where ins.keyword == "COPY" || ins.keyword == "ADD" {
            guard let spec = ins.flag("chmod")?.value else { continue }
            let sources = ins.words.dropLast().map { $0.hasPrefix("./") ? String($0.dropFirst(2)) : $0 }
            let scripts = sources.filter { isScriptName($0, ctx: ctx) }
            let files = sources.filter { !scripts.contains($0) && ctx.folder.exists($0) }
            let suggestion = scripts.isEmpty ? "644" : files.isEmpty ? "755" : "755 for scripts and 644 for the others (separate COPY lines)"
            if let bits = chmodBits(spec) {
                if bits & 0o002 != 0 {
                    issues.append(issue(
                        ctx, "chmod-world-writable", .fail, ins.line,
                        "--chmod=\(spec) makes \(sources.joined(separator: ", ")) world-writable in the image: any process in the container, under any user, can rewrite \(scripts.isEmpty ? "it" : "the startup script that runs as PID 1")",
                        fix: "Use --chmod=\(suggestion) (--chown already makes openmsi the owner)"))
                }
                if bits & 0o111 != 0, !files.isEmpty {
                    issues.append(issue(
                        ctx, "chmod-executable-config", .warn, ins.line,
                        "--chmod=\(spec) marks \(files.joined(separator: ", ")) executable (for everyone); config and data files should not be",
                        fix: "Use --chmod=644 for \(files.joined(separator: ", ")) (or 600 with --chown=openmsi:openmsi)"))
                }
            }
            issues.append(issue(
                ctx, "chmod-needs-buildkit", .warn, ins.line,
                "\(ins.keyword) --chmod needs BuildKit: the legacy builder (DOCKER_BUILDKIT=0, Docker before 23, some CI) stops with \"the --chmod option requires BuildKit\"",
                fix: "Build with BuildKit (docker buildx build; the default since Docker 23), or drop --chmod and set the mode on disk (chmod 755 on scripts, 644 on config) so \(ins.keyword) keeps it"))
        }
        return issues
    }

    static func isSecretName(_ name: String) -> Bool {
        let base = (name as NSString).lastPathComponent
        return base == ".env" || base.hasSuffix(".env") || base.hasPrefix(".env.")
    }

    /// `.dockerignore` patterns, in order; `!` re-includes. A pattern also excludes everything below a matched directory.
    static func ignored(_ file: String, patterns: [String]) -> Bool {
        var result = false
        for raw in patterns {
            var p = raw.trimmingCharacters(in: .whitespaces)
            guard !p.isEmpty, !p.hasPrefix("#") else { continue }
            let negate = p.hasPrefix("!")
            if negate { p = String(p.dropFirst()) }
            while p.hasPrefix("/") || p.hasPrefix("./") { p = String(p.drop { $0 == "/" || $0 == "." }) }
            while p.hasSuffix("/") { p.removeLast() }
            let parts = file.split(separator: "/").map(String.init)
            var matched = false
            for end in 1...max(parts.count, 1) where end <= parts.count && !matched {
                if Glibc.fnmatch(p, parts[0..<end].joined(separator: "/"), FNM_PATHNAME) == 0 { matched = true }
                if p.hasPrefix("**/") {   // `**` spans any number of directories
                    let rest = String(p.dropFirst(3))
                    for start in 0..<end where Glibc.fnmatch(rest, parts[start..<end].joined(separator: "/"), FNM_PATHNAME) == 0 {
                        matched = true
                    }
                }
            }
            if matched { result = !negate }
        }
        return result
    }

    /// COPY/ADD that puts an env-file (credentials) into an image layer, by name or through `.`/a directory/a glob.
    static func secretInImage(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        let ignore = (ctx.folder.read(".dockerignore")?.text ?? "").components(separatedBy: "\n")
        let secrets = ctx.folder.files.filter { isSecretName($0) && !ignored($0, patterns: ignore) }
        var issues: [CustomImageIssue] = []
        for ins in ctx.dockerfile.instructions where (ins.keyword == "COPY" || ins.keyword == "ADD") && ins.flag("from") == nil {
            var hits: [String] = []
            for source in ins.words.dropLast() {
                var s = source
                while s.hasPrefix("./") { s = String(s.dropFirst(2)) }
                if s.hasPrefix("/") { s = String(s.drop { $0 == "/" }) }
                if isSecretName(s) && !s.contains("*") { hits.append(s); continue }
                for file in secrets where s == "." || s.isEmpty || file.hasPrefix(s + "/") || Glibc.fnmatch(s, file, FNM_PATHNAME) == 0
                    || (ctx.folder.directories.contains(s) && file.hasPrefix(s + "/")) {
                    hits.append(file)
                }
            }
            guard !hits.isEmpty else { continue }
            let names = Array(Set(hits)).sorted().joined(separator: ", ")
            issues.append(issue(
                ctx, "secret-in-image", .fail, ins.line,
                "\(ins.keyword) puts \(names) into an image layer: the Kafka credentials ship with the image to anyone who can pull or save it, and deleting the file in a later step does not remove the layer",
                fix: "Pass credentials at run time (docker run --env-file openmsi.env); copy only what the image needs and list *.env in .dockerignore",
                commands: ["printf '*.env\\n.env\\n' >> \(ShellWords.quote(ctx.folder.full(".dockerignore")))"]))
        }
        return issues
    }

    static func execFormInvalidJSON(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        ctx.dockerfile.instructions.filter { $0.invalidJSON && ["CMD", "ENTRYPOINT", "RUN", "SHELL"].contains($0.keyword) }.map {
            issue(ctx, "exec-form-invalid-json", .fail, $0.line,
                  "\($0.keyword) \($0.arguments) looks like exec form but is not a JSON array (single quotes? trailing comma?), so docker silently runs it as a shell command: /bin/sh -c '\($0.arguments)'",
                  fix: "Write a JSON array with double quotes: \($0.keyword) [\"/home/openmsi/startup-script.sh\"]")
        }
    }

    static func entrypointShellForm(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        guard let ep = ctx.entrypoint, ep.execForm == nil, !ep.invalidJSON else { return [] }
        let target = ctx.scriptUse.map { "/home/openmsi/" + ($0.contextFile as NSString).lastPathComponent } ?? "/home/openmsi/startup-script.sh"
        let withExec = ep.arguments.hasPrefix("exec ")
        return [issue(
            ctx, "entrypoint-shell-form", withExec ? .warn : .fail, ep.line,
            withExec
                ? "ENTRYPOINT \(ep.arguments) is shell form: it runs under /bin/sh -c and ignores every argument given to docker run (exec makes the program PID 1, so signals do arrive)"
                : "ENTRYPOINT \(ep.arguments) is shell form: it runs under /bin/sh -c (dash, not bash), sh is PID 1 and does not forward SIGTERM (docker stop waits, then SIGKILLs), and arguments given to docker run are ignored",
            fix: "Use the exec form and let the script exec the program: ENTRYPOINT [\"\(target)\"] (the script needs a #! line and the x bit)")]
    }

    static func cmdShellForm(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        guard let cmd = ctx.cmd, cmd.execForm == nil, !cmd.invalidJSON else { return [] }
        if let ep = ctx.entrypoint, ep.execForm == nil { return [] }   // shell-form ENTRYPOINT ignores CMD
        if ctx.entrypoint == nil, ctx.baseIsOfficial {
            return [issue(ctx, "cmd-shell-form", .fail, cmd.line,
                          "CMD \(cmd.arguments) is shell form and the base image's ENTRYPOINT is [\"bash\"], so the container runs `bash /bin/sh -c …`: bash reads the /bin/sh binary as a script and exits 126",
                          fix: "Use the exec form, e.g. CMD [\"-c\", \"\(cmd.arguments)\"] or ENTRYPOINT [\"/home/openmsi/startup-script.sh\"]")]
        }
        return [issue(ctx, "cmd-shell-form", .warn, cmd.line,
                      "CMD \(cmd.arguments) is shell form: /bin/sh -c is PID 1 and does not forward SIGTERM",
                      fix: "Use the exec form: CMD [\"program\", \"arg\", …]")]
    }

    static func userRoot(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        guard let user = ctx.final?.instructions.last(where: { $0.keyword == "USER" }) else { return [] }
        let name = user.arguments.split(separator: ":").first.map(String.init) ?? ""
        guard name == "root" || name == "0" else { return [] }
        return [issue(ctx, "user-root", .warn, user.line,
                      "the image ends as USER \(user.arguments): OpenMSIStream is installed for openmsi (1000:1000) in /home/openmsi/.local, which root's HOME (/root) does not find, and files it writes into mounted folders belong to root",
                      fix: "Add `USER openmsi` after the steps that need root")]
    }

    static func dockerfileNoFinalNewline(_ ctx: DockerfileContext) -> [CustomImageIssue] {
        guard !ctx.dockerfile.endsWithNewline, ctx.dockerfile.lineCount > 0 else { return [] }
        return [issue(ctx, "dockerfile-no-final-newline", .warn, ctx.dockerfile.lineCount,
                      "the Dockerfile does not end with a newline (tools that append lines, and `cat`, run the last line into the next)",
                      fix: "End the file with a newline", commands: ["printf '\\n' >> \(ShellWords.quote(ctx.path))"])]
    }
}

// MARK: - Shell script parser (enough for startup scripts: words, quotes, variables, simple commands)

struct ShellWord {
    /// As written.
    var raw: String
    /// Quotes removed, backslash escapes applied, `$NAME` kept.
    var value: String
    /// `$NAME` / `${NAME}` / `$@` outside double quotes.
    var unquotedVariables: [String]
}

struct ShellCommand {
    var words: [ShellWord]
    var line: Int
}

struct ShellScript {
    var commands: [ShellCommand]

    /// Splits into simple commands at newlines, `;`, `&&`, `||`, `|`, `&`, `(`, `)`; drops comments; joins `\`-newline.
    static func parse(_ text: String) -> ShellScript {
        let s = Array(normalizeNewlines(text).unicodeScalars)
        var commands: [ShellCommand] = []
        var words: [ShellWord] = []
        var raw = String.UnicodeScalarView(), value = String.UnicodeScalarView()
        var vars: [String] = []
        var inWord = false
        var line = 1, commandLine = 1
        var pendingHeredocs: [String] = []
        var i = 0

        func endWord() {
            if inWord {
                words.append(ShellWord(raw: String(raw), value: String(value), unquotedVariables: vars))
                if let h = ShellScript.heredocWord(String(raw)) { pendingHeredocs.append(h) }
            }
            raw = String.UnicodeScalarView(); value = String.UnicodeScalarView(); vars = []; inWord = false
        }
        func endCommand() {
            endWord()
            if !words.isEmpty {
                // `<< EOF` with a space: the delimiter is the next word.
                for (k, w) in words.enumerated() where w.raw == "<<" || w.raw == "<<-" {
                    if k + 1 < words.count { pendingHeredocs.append(ShellScript.unquoted(words[k + 1].raw)) }
                }
                commands.append(ShellCommand(words: words, line: commandLine))
            }
            words = []
        }
        func append(_ c: Unicode.Scalar, raw r: Bool = true) {
            if !inWord { inWord = true; if words.isEmpty { commandLine = line } }
            if r { raw.append(c) }
            value.append(c)
        }
        /// Reads `$…` at i; returns the variable name (or nil for `$(`…`)`, arithmetic, specials) and advances i.
        func readDollar() -> String? {
            raw.append("$"); value.append("$")
            i += 1
            guard i < s.count else { return nil }
            let c = s[i]
            if c == "{" {
                var j = i + 1
                while j < s.count, s[j] != "}" { j += 1 }
                let inner = String(String.UnicodeScalarView(s[(i + 1)..<min(j, s.count)]))
                for u in s[i...min(j, s.count - 1)] { raw.append(u); value.append(u) }
                i = j + 1
                let name = String(inner.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "@" || $0 == "*" })
                return name.isEmpty ? nil : name
            }
            if c == "(" {
                var depth = 0
                while i < s.count {
                    let u = s[i]
                    raw.append(u); value.append(u)
                    if u == "(" { depth += 1 }
                    if u == ")" { depth -= 1; if depth == 0 { i += 1; break } }
                    if u == "\n" { line += 1 }
                    i += 1
                }
                return nil
            }
            if c == "_" || (c.properties.isAlphabetic && c.isASCII) {
                var j = i
                while j < s.count, s[j] == "_" || (s[j].isASCII && (s[j].properties.isAlphabetic || ("0"..."9").contains(s[j]))) { j += 1 }
                let name = String(String.UnicodeScalarView(s[i..<j]))
                for u in s[i..<j] { raw.append(u); value.append(u) }
                i = j
                return name
            }
            if ("0"..."9").contains(c) || c == "@" || c == "*" {
                raw.append(c); value.append(c); i += 1
                return String(c)
            }
            if "#?$!-".unicodeScalars.contains(c) { raw.append(c); value.append(c); i += 1 }
            return nil
        }

        while i < s.count {
            let c = s[i]
            switch c {
            case "\n":
                endCommand()
                line += 1
                i += 1
                // Heredoc bodies are data, not commands.
                for delimiter in pendingHeredocs {
                    while i < s.count {
                        var j = i
                        while j < s.count, s[j] != "\n" { j += 1 }
                        let l = String(String.UnicodeScalarView(s[i..<j]))
                        i = min(j + 1, s.count)
                        line += 1
                        if l.drop(while: { $0 == "\t" }) == delimiter { break }
                    }
                }
                pendingHeredocs = []
            case " ", "\t":
                endWord(); i += 1
            case "#" where !inWord:
                while i < s.count, s[i] != "\n" { i += 1 }
            case "&" where (inWord && (raw.last == ">" || raw.last == "<")) || (i + 1 < s.count && s[i + 1] == ">"),
                 "|" where inWord && raw.last == ">":
                append(c); i += 1   // 2>&1, &>file, >|file
            case ";", "&", "|", "(", ")":
                endCommand(); i += 1
            case "\\":
                if i + 1 < s.count, s[i + 1] == "\n" { line += 1; i += 2; continue }
                raw.append(c)
                if i + 1 < s.count { append(s[i + 1]) } else { inWord = true }
                i += 2
            case "'":
                append(c, raw: true)
                value.removeLast()
                i += 1
                while i < s.count, s[i] != "'" {
                    if s[i] == "\n" { line += 1 }
                    raw.append(s[i]); value.append(s[i]); i += 1
                }
                if i < s.count { raw.append("'") }
                i += 1
            case "\"":
                append(c)
                value.removeLast()
                i += 1
                while i < s.count, s[i] != "\"" {
                    if s[i] == "\\", i + 1 < s.count {
                        raw.append(s[i]); raw.append(s[i + 1])
                        if s[i + 1] != "\n" { value.append(s[i + 1]) } else { line += 1 }
                        i += 2
                        continue
                    }
                    if s[i] == "$" { _ = readDollar(); continue }
                    if s[i] == "\n" { line += 1 }
                    raw.append(s[i]); value.append(s[i]); i += 1
                }
                if i < s.count { raw.append("\"") }
                i += 1
            case "$":
                if !inWord { inWord = true; if words.isEmpty { commandLine = line } }
                if let name = readDollar() { vars.append(name) }
            default:
                append(c); i += 1
            }
        }
        endCommand()
        return ShellScript(commands: commands)
    }

    static func heredocWord(_ raw: String) -> String? {
        guard raw.hasPrefix("<<"), raw.count > 2, !raw.hasPrefix("<<<") else { return nil }
        var w = raw.dropFirst(2)
        if w.first == "-" { w = w.dropFirst() }
        return w.isEmpty ? nil : unquoted(String(w))
    }

    static func unquoted(_ s: String) -> String { s.filter { $0 != "'" && $0 != "\"" && $0 != "\\" } }
}

// MARK: - Script rules

struct ScriptContext {
    let folder: CustomImageFolder
    let path: String
    let text: String
    let mode: UInt32
    let use: ScriptUse
    let dockerfile: DockerfileContext
    let script: ShellScript
    /// Variables assigned with literal values (`X=1`, `export X=1`).
    let variables: [String: String]

    init(folder: CustomImageFolder, path: String, text: String, mode: UInt32, use: ScriptUse, dockerfile: DockerfileContext) {
        self.folder = folder
        self.path = path
        self.text = text
        self.mode = mode
        self.use = use
        self.dockerfile = dockerfile
        script = ShellScript.parse(text)
        var variables: [String: String] = [:]
        for command in script.commands {
            for (name, value) in Self.assignments(command) { variables[name] = Self.resolve(value, variables) }
        }
        self.variables = variables
    }

    static let declarationBuiltins: Set<String> = ["export", "readonly", "declare", "typeset", "local"]
    /// Commands that do not start a long-running program.
    static let builtins: Set<String> = ["export", "readonly", "declare", "typeset", "local", "set", "cd", "echo", "printf", "true",
                                       "false", ":", "shift", "unset", "trap", "umask", "ulimit", "source", ".", "exit", "wait",
                                       "return", "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case",
                                       "esac", "{", "}", "[", "[[", "test", "mkdir", "sleep", "shopt", "alias", "chmod", "chown",
                                       "touch", "rm", "cp", "mv", "ln", "cat", "ls", "env", "printenv", "id", "whoami", "date"]

    static func isAssignment(_ word: String) -> Bool {
        guard let eq = word.firstIndex(of: "="), eq != word.startIndex else { return false }
        return word[..<eq].allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) } && !word.first!.isNumber
    }

    static func assignments(_ command: ShellCommand) -> [(String, String)] {
        var words = command.words.map(\.value)
        if let first = words.first, declarationBuiltins.contains(first) {
            words.removeFirst()
            words.removeAll { $0.hasPrefix("-") }
        } else if !words.allSatisfy(isAssignment) {
            return []
        }
        return words.filter(isAssignment).map { w in
            let eq = w.firstIndex(of: "=")!
            return (String(w[..<eq]), String(w[w.index(after: eq)...]))
        }
    }

    /// Substitutes the variables the script assigned; others (`$HOME`, `$@`) stay as written.
    static func resolve(_ value: String, _ variables: [String: String]) -> String {
        DockerVariables.scan(value, variables, escape: "\u{0}", skipSingleQuoted: false, keepUnknown: true).text
    }

    /// The command's words with the script's literal variables substituted (`$MODULE` → DataFileDownloadDirectory),
    /// without leading `X=1` assignments and `exec`.
    func resolvedWords(_ command: ShellCommand) -> [String] {
        var words = Array(command.words.map { Self.resolve($0.value, variables) }.drop(while: Self.isAssignment))
        if words.first == "exec" { words.removeFirst(); while words.first?.hasPrefix("-") == true { words.removeFirst() } }
        return Array(words.drop(while: Self.isAssignment))
    }

    /// Commands that start a program (not assignments, not builtins).
    var programCommands: [ShellCommand] {
        script.commands.filter { command in
            guard let first = command.words.first?.value, !Self.builtins.contains(first),
                  let program = resolvedWords(command).first else { return false }
            return !Self.builtins.contains(program)
        }
    }

    /// The OpenMSIStream program a command runs, if any.
    func program(_ command: ShellCommand) -> (ProgramSpec, [String])? {
        let words = resolvedWords(command)
        guard let first = words.first, let spec = ProgramTable.program(named: (first as NSString).lastPathComponent) else { return nil }
        return (spec, Array(words.dropFirst()))
    }

    var executedDirectly: Bool {
        switch use.invocation {
        case .directExec, .directShell: return true
        default: return false
        }
    }

    func issue(_ code: String, _ severity: Severity, _ line: Int?, _ message: String, fix: String, commands: [String] = []) -> CustomImageIssue {
        CustomImageIssue(code, severity, file: path, line: line, message, fix: fix, commands: commands)
    }

    var shebang: String? {
        let first = text.prefix { $0 != "\n" && $0 != "\r\n" }
        return first.hasPrefix("#!") ? String(first.dropFirst(2)).trimmingCharacters(in: .whitespaces) : nil
    }
}

extension CustomImageLinter {
    static func scriptCRLF(_ ctx: ScriptContext) -> [CustomImageIssue] {
        guard ctx.text.unicodeScalars.contains("\r") else { return [] }
        return [ctx.issue("script-crlf", .fail, 1,
                          "the script has Windows (CRLF) line ends: the kernel looks for the interpreter \"bash\\r\" (bad interpreter: No such file or directory) and every command gets a stray \\r",
                          fix: "Save it with Unix (LF) line ends; in git: `*.sh text eol=lf` in .gitattributes",
                          commands: ["sed -i 's/\\r$//' \(ShellWords.quote(ctx.path))"])]
    }

    /// First line must be `#!…`; `#/bin/bash` (missing `!`) is a plain comment.
    static func scriptShebangMissing(_ ctx: ScriptContext) -> [CustomImageIssue] {
        guard ctx.shebang == nil else { return [] }
        let first = String(ctx.text.prefix { $0 != "\n" && $0 != "\r\n" })
        let missingBang = first.hasPrefix("#/") || first.hasPrefix("# /")
        let what = missingBang ? "the first line \(first) is missing `!` (it must be #!\(first.dropFirst().trimmingCharacters(in: .whitespaces))), so it is only a comment"
                               : "the script has no #! line"
        let consequence: String
        let severity: Severity
        switch ctx.use.invocation {
        case .directExec:
            severity = .fail
            consequence = "the ENTRYPOINT executes it directly, so the container fails to start (exec format error)"
        case .directShell:
            severity = .fail
            consequence = "sh executes it, gets ENOEXEC and runs it with sh (dash), not bash"
        case .sourced(let shell):
            severity = .warn
            consequence = "it only works because the ENTRYPOINT sources it with `.` into \(shell), so it runs as \(shell), not bash; run directly it fails"
        case .interpreter(let shell):
            severity = .warn
            consequence = "it runs only because \(shell) is named explicitly; run directly it fails"
        case .unknown:
            severity = .warn
            consequence = "executed directly it fails with exec format error"
        }
        return [ctx.issue("script-shebang-missing", severity, 1, "\(what): \(consequence)",
                          fix: missingBang ? "Write #! at the start of line 1: #!/bin/bash" : "Make line 1 #!/bin/bash")]
    }

    static func scriptNoStrictMode(_ ctx: ScriptContext) -> [CustomImageIssue] {
        var e = false, u = false, pipefail = false
        for command in ctx.script.commands where command.words.first?.value == "set" {
            var words = command.words.dropFirst().map(\.value)
            while let w = words.first {
                words.removeFirst()
                if w == "-o", let name = words.first {
                    words.removeFirst()
                    if name == "errexit" { e = true }
                    if name == "nounset" { u = true }
                    if name == "pipefail" { pipefail = true }
                } else if w.hasPrefix("-"), !w.hasPrefix("--") {
                    if w.contains("e") { e = true }
                    if w.contains("u") { u = true }
                    if w.hasSuffix("o"), let name = words.first, name == "pipefail" { pipefail = true; words.removeFirst() }
                }
            }
        }
        let isPOSIXsh = ctx.shebang.map { $0.hasSuffix("/sh") || $0.hasSuffix(" sh") } ?? false
        guard !(e && u && (pipefail || isPOSIXsh)) else { return [] }
        let missing = [e ? nil : "-e", u ? nil : "-u", pipefail || isPOSIXsh ? nil : "-o pipefail"].compactMap { $0 }
        return [ctx.issue("script-no-strict-mode", .warn, nil,
                          "the script does not set \(missing.joined(separator: " ")): a failing step (a typo, an unset variable) does not stop it, and the container keeps running half-configured",
                          fix: "Put `set -euo pipefail` right after the #! line")]
    }

    /// The last program must replace the shell (`exec`), or it is not PID 1 and never sees docker stop's SIGTERM.
    static func scriptNoExec(_ ctx: ScriptContext) -> [CustomImageIssue] {
        // Scripts that wait or trap manage their children themselves.
        if ctx.script.commands.contains(where: { ["wait", "trap"].contains($0.words.first?.value ?? "") }) { return [] }
        guard let last = ctx.programCommands.last, last.words.first?.value != "exec" else { return [] }
        let words = ctx.resolvedWords(last)
        let name = last.words.first!.raw
        let resolved = words.first.map { $0 == name ? "" : " (\($0))" } ?? ""
        return [ctx.issue("script-no-exec", .fail, last.line,
                          "\(name)\(resolved) runs as a child of the shell: the shell stays PID 1, does not pass on docker stop's SIGTERM, so the program is SIGKILLed after the grace period without its clean shutdown",
                          fix: "Start it with exec: exec \(quoted(last))")]
    }

    /// `$TOPIC_NAME` outside double quotes is split at spaces and glob-expanded.
    static func scriptUnquotedVariable(_ ctx: ScriptContext) -> [CustomImageIssue] {
        var issues: [CustomImageIssue] = []
        for command in ctx.script.commands {
            guard let first = command.words.first?.value, !["[[", "case"].contains(first), !ScriptContext.declarationBuiltins.contains(first) else { continue }
            let words = command.words.filter { !ScriptContext.isAssignment($0.raw) || $0.raw.contains(" ") }
            let vars = words.flatMap(\.unquotedVariables)
            guard !vars.isEmpty else { continue }
            var seen: Set<String> = []
            let names = vars.filter { seen.insert($0).inserted }.map { "$" + $0 }
            let fixed = quoted(command)
            issues.append(ctx.issue("script-unquoted-variable", .warn, command.line,
                                    "\(names.joined(separator: ", ")) \(names.count == 1 ? "is" : "are") not in double quotes: an empty value disappears and a value with spaces or * becomes several arguments",
                                    fix: "Quote the expansions: \(fixed)"))
        }
        return issues
    }

    /// The command as written, with double quotes around words that expand a variable unquoted.
    static func quoted(_ command: ShellCommand) -> String {
        command.words.map { w in
            w.unquotedVariables.isEmpty || w.raw.contains("\"") || w.raw.contains("'") ? w.raw : "\"\(w.raw)\""
        }.joined(separator: " ")
    }

    static let pathTypes: [ArgumentType] = [.path, .existingFile, .existingDirectory, .createDirectory, .configPath]

    /// Relative paths in an OpenMSIStream command (or `./x`, `x/y` elsewhere) depend on the working directory.
    static func scriptRelativePath(_ ctx: ScriptContext) -> [CustomImageIssue] {
        if ctx.dockerfile.workdirGuaranteed { return [] }
        var issues: [CustomImageIssue] = []
        var cdSeen = false
        for command in ctx.script.commands {
            let words = ctx.resolvedWords(command)
            guard let first = words.first else { continue }
            if command.words.first?.value == "cd" {
                if let target = words.dropFirst().first(where: { !$0.hasPrefix("-") }) {
                    if target.hasPrefix("/") || target.hasPrefix("~") || target.hasPrefix("$") { cdSeen = true }
                } else {
                    cdSeen = true   // `cd` alone: HOME
                }
                continue
            }
            if cdSeen { break }
            var relative: [String] = []
            func isRelative(_ v: String) -> Bool {
                !v.isEmpty && !v.hasPrefix("/") && !v.hasPrefix("~") && !v.hasPrefix("$") && !v.hasPrefix("-") && !v.contains("://")
            }
            if let spec = ProgramTable.program(named: (first as NSString).lastPathComponent) {
                var positional = 0
                var k = 1
                while k < words.count {
                    let w = words[k]
                    k += 1
                    if w.hasPrefix("--") {
                        let body = w.dropFirst(2)
                        let name = String(body.prefix { $0 != "=" })
                        let option = spec.option(named: name)
                        if option?.type == .flag { continue }
                        var value: String?
                        if let eq = body.firstIndex(of: "=") { value = String(body[body.index(after: eq)...]) }
                        else if k < words.count { value = words[k]; k += 1 }
                        if let option, let value, pathTypes.contains(option.type), isRelative(value) {
                            if option.type == .configPath, !value.contains("."), !value.contains("/") { continue }   // a name in CONFIG_FILE_DIR
                            relative.append(value)
                        }
                    } else {
                        if positional < spec.positionals.count, pathTypes.contains(spec.positionals[positional].type), isRelative(w) {
                            relative.append(w)
                        }
                        positional += 1
                    }
                }
            } else if !ScriptContext.builtins.contains(first) {
                relative = words.dropFirst().filter { ($0.hasPrefix("./") || $0.hasPrefix("../")) && isRelative($0) }
            }
            guard !relative.isEmpty else { continue }
            issues.append(ctx.issue("script-relative-path", .warn, command.line,
                                    "\(relative.joined(separator: ", ")) \(relative.count == 1 ? "is a relative path" : "are relative paths") that only work when the working directory is /home/openmsi: nothing in the script (cd) or the Dockerfile (a WORKDIR with a value) guarantees it",
                                    fix: "Add `cd /home/openmsi` before line \(command.line) (or use absolute paths such as /home/openmsi/\(relative[0]))"))
        }
        return issues
    }

    /// A consumer without `--consumer_group_id` joins a new random group at every start (the config's group.id is
    /// overridden) and, with auto.offset.reset=earliest, downloads the whole topic again.
    static func scriptNoConsumerGroup(_ ctx: ScriptContext) -> [CustomImageIssue] {
        var issues: [CustomImageIssue] = []
        for command in ctx.programCommands {
            guard let found = ctx.program(command) else { continue }
            let (spec, args) = found
            guard spec.role == .consumer || spec.role == .processor, spec.option(named: "consumer_group_id") != nil,
                  !args.contains(where: { $0 == "--consumer_group_id" || $0.hasPrefix("--consumer_group_id=") }) else { continue }
            var configured: String?
            if let k = args.firstIndex(of: "--config"), k + 1 < args.count,
               let text = ctx.folder.read(args[k + 1])?.text,
               case .success(let v)? = ConfigParser.parse(text: text, path: args[k + 1]).value("consumer", "group.id"),
               !v.isEmpty, v != "create_new" {
                configured = v
            }
            let passthrough = command.words.contains { $0.raw.contains("$@") || $0.raw.contains("$*") }
            issues.append(ctx.issue(
                "script-no-consumer-group", .warn, command.line,
                "\(spec.name) starts without --consumer_group_id, so it joins a new random consumer group at every start\(configured.map { " (group.id = \($0) in the config is overridden)" } ?? ""); with auto.offset.reset = earliest it downloads the whole topic again after each restart\(passthrough ? " (unless docker run passes the option)" : "")",
                fix: "Add --consumer_group_id \(configured ?? "<stable-name>") to the command"))
        }
        return issues
    }

    /// The x bit matters when docker executes the file itself.
    static func scriptNotExecutable(_ ctx: ScriptContext) -> [CustomImageIssue] {
        if case .interpreter = ctx.use.invocation { return [] }
        guard ctx.mode & 0o100 == 0 else { return [] }
        let octal = String(ctx.mode & 0o777, radix: 8)
        let chmodGivesX = ctx.use.chmod.flatMap(chmodBits).map { $0 & 0o100 != 0 } ?? false
        let command = ["chmod +x \(ShellWords.quote(ctx.path))"]
        switch ctx.use.invocation {
        case .directExec, .directShell:
            if chmodGivesX {
                return [ctx.issue("script-not-executable", .warn, nil,
                                  "the script is mode \(octal) on disk; only --chmod makes it executable in the image, so a build without BuildKit (or without --chmod) gives a container that cannot start (permission denied)",
                                  fix: "Make it executable on disk too (in git also `git update-index --chmod=+x`)", commands: command)]
            }
            return [ctx.issue("script-not-executable", .fail, nil,
                              "the ENTRYPOINT executes the script, but it is mode \(octal) (no x bit) and COPY keeps that mode: the container fails with permission denied",
                              fix: "Make it executable (COPY keeps the mode; in git also `git update-index --chmod=+x`)", commands: command)]
        case .sourced, .unknown:
            if case .unknown = ctx.use.invocation, chmodGivesX { return [] }
            return [ctx.issue("script-not-executable", .warn, nil,
                              "the script is mode \(octal) (not executable): it works only while it is sourced or run through bash; the exec-form ENTRYPOINT [\"/home/openmsi/\((ctx.path as NSString).lastPathComponent)\"] (and `docker exec … ./\((ctx.path as NSString).lastPathComponent)`) fail with permission denied",
                              fix: "Make it executable (COPY keeps the mode; in git also `git update-index --chmod=+x`)", commands: command)]
        case .interpreter:
            return []
        }
    }

    static func scriptNoFinalNewline(_ ctx: ScriptContext) -> [CustomImageIssue] {
        guard let last = ctx.text.unicodeScalars.last, last != "\n" else { return [] }   // (`\r\n` is one Character)
        let lines = normalizeNewlines(ctx.text).components(separatedBy: "\n").count
        return [ctx.issue("script-no-final-newline", .warn, lines,
                          "the script does not end with a newline: `read`-based tools and `cat >>` treat the last line as incomplete",
                          fix: "End the file with a newline", commands: ["printf '\\n' >> \(ShellWords.quote(ctx.path))"])]
    }
}
