import EZMSICore

/// The config file parses exactly as Python's `configparser.ConfigParser()` parses it for OpenMSIStream.
public struct ConfigSyntax: Probe {
    public let id = "config.syntax"
    public let title = "Config file syntax"
    public let rationale = """
        OpenMSIStream reads its config with configparser defaults: a BOM or a stray line stops it, a bare % breaks \
        interpolation, `[Broker]` is silently not `[broker]`, and inline comments stay inside values.
        """
    public let dependsOn: [String] = []
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("the bundled prod layout", expect: .pass) { ExampleFacts.make() },
            ProbeExample("a bare % in a password", expect: .fail, code: "bare-percent") {
                ExampleFacts.make(config: "[broker]\nbootstrap.servers = b:9092\nsasl.password = ab%cd\n")
            },
            ProbeExample("capitalised section name", expect: .fail, code: "section-case") {
                ExampleFacts.make(config: "[Broker]\nbootstrap.servers = b:9092\n")
            },
            ProbeExample("unknown [server] section", expect: .warn, code: "unknown-section") {
                ExampleFacts.make(config: ExampleFacts.goodConsumerConfig + "\n[server]\nauthorizer.class.name = x\n")
            },
            ProbeExample("byte-order mark", expect: .fail, code: "bom") {
                ExampleFacts.make(config: "\u{FEFF}[broker]\nbootstrap.servers = b:9092\n")
            },
            ProbeExample("duplicate key", expect: .fail, code: "DuplicateOptionError") {
                ExampleFacts.make(config: "[broker]\nbootstrap.servers = a\nBootstrap.Servers = b\n")
            },
            ProbeExample("missing config file", expect: .fail, code: "file-missing") { ExampleFacts.make(config: nil) },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        let path = facts.deployment.configFile
        let config: ConfigFile
        switch facts.config.get() {
        case .failure(let problem):
            var text = problem.description
            if case .missing = problem { text += "; docker would mount an empty directory in its place" }
            if case .isDirectory = problem { text += " (docker creates a directory when the file to mount is missing)" }
            return ProbeOutcome("cannot use the config file", findings: [.fail(
                problem.code, text, at: Location(file: path),
                fix: Remediation("Create the config (ezmsi init writes one for your program) or pass --config FILE",
                                 commands: ["ezmsi init <DIR> --program <Program>"]))])
        case .success(let fact):
            config = fact.file
        }
        var findings: [Finding] = []
        for error in config.errors {
            let at = Location(file: path, line: error.line)
            if error.kind == "MissingSectionHeaderError", error.line == 1, config.startsWithBOM {
                findings.append(.fail("bom", "the file starts with a UTF-8 byte-order mark; configparser then finds no section header",
                                      at: at, fix: Remediation("Save without BOM", commands: ["sed -i '1s/^\\xEF\\xBB\\xBF//' \(ShellWords.quote(path))"])))
                continue
            }
            findings.append(.fail(error.kind, "\(error.kind): \(error.message)", at: at, fix: Remediation(fix(for: error.kind))))
        }
        for swallowed in config.swallowedLines {
            let what = swallowed.isHeader ? "section header" : "key"
            findings.append(Finding(swallowed.isHeader ? .fail : .warn, "indented-\(swallowed.isHeader ? "header" : "key")",
                                    "this indented \(what) `\(swallowed.isHeader ? swallowed.text : String(swallowed.text.prefix { $0 != "=" && $0 != ":" }))` is read as part of the previous value, not as a \(what)",
                                    location: Location(file: path, line: swallowed.line),
                                    remediation: Remediation("Remove the indentation at the start of line \(swallowed.line)")))
        }
        if config.errors.isEmpty && config.sections.isEmpty {
            findings.append(.fail("no-sections", "the file has no sections: OpenMSIStream would see no [broker]",
                                  at: Location(file: path), fix: Remediation("Add [broker] and the sections your program needs")))
        }
        for line in config.defaultHeaderLines where !config.defaults.isEmpty {
            findings.append(.warn("default-section", "keys of [DEFAULT] (\(config.defaults.map(\.key).joined(separator: ", "))) are merged into every section, [broker], [producer] and [consumer] included",
                                  at: Location(file: path, line: line), fix: Remediation("Move each key into the section that needs it")))
        }
        for section in config.sections {
            let at = Location(file: path, line: section.line)
            let known = ProgramTable.knownSections
            if !known.contains(section.name) {
                if let match = known.first(where: { $0 == section.name.lowercased().trimmingCharacters(in: .whitespaces) }) {
                    findings.append(.fail("section-case", "[\(section.name)] is not [\(match)]: section names are case- and space-sensitive, so [\(match)] is silently missing",
                                          evidence: Evidence(expected: "[\(match)]", actual: "[\(section.name)]"), at: at,
                                          fix: Remediation("Rename the section to [\(match)]")))
                } else {
                    findings.append(.warn("unknown-section", "[\(section.name)] is never read by OpenMSIStream",
                                          at: at, fix: Remediation("Delete it, or move its keys into a section OpenMSIStream reads (\(known.joined(separator: ", ")))")))
                }
            }
            let isRead = known.contains(section.name)
            for option in section.options {
                let at = Location(file: path, line: option.line)
                if case .failure(let failure)? = config.value(section.name, option.key) {
                    let code = failure.kind == "InterpolationSyntaxError" ? "bare-percent" : "interpolation"
                    let finding = Finding(isRead ? .fail : .warn, code, "\(option.key): \(failure.kind): \(failure.message)",
                                          location: at, remediation: Remediation(code == "bare-percent"
                                            ? "Write %% for a literal % (or move the secret to the env-file and write $VAR)"
                                            : "Refer only to keys of the same section or [DEFAULT]"))
                    findings.append(finding)
                }
                if option.continued {
                    findings.append(.warn("continuation", "\(option.key)'s value continues on indented lines below and becomes a multi-line value",
                                          at: at, fix: Remediation("Remove the indentation of the following lines, or join them")))
                }
                let raw = option.raw
                if raw.contains(" #") || raw.contains(" ;") || raw.contains("\t#") || raw.contains("\t;") {
                    findings.append(.warn("inline-comment", "\(option.key): the text after # or ; is part of the value (configparser has no inline comments here)",
                                          at: at, fix: Remediation("Put the comment on its own line")))
                }
                if raw.count >= 2, let q = raw.first, q == "\"" || q == "'", raw.last == q {
                    findings.append(.warn("quoted-value", "\(option.key): the quotes are kept as part of the value",
                                          at: at, fix: Remediation("Remove the quotes")))
                }
            }
        }
        let names = config.sections.map { "[\($0.name)]" }.joined(separator: " ")
        return ProbeOutcome(config.pythonError == nil ? "parses as OpenMSIStream reads it: \(names)" : "configparser refuses this file",
                            findings: findings)
    }

    private func fix(for kind: String) -> String {
        switch kind {
        case "MissingSectionHeaderError": return "Start the file with a section header such as [broker]"
        case "DuplicateSectionError": return "Merge the two sections into one"
        case "DuplicateOptionError": return "Keep one of the two keys (keys are case-insensitive)"
        case "ParsingError": return "Write key = value, or start the line with # to make it a comment"
        case "UnicodeDecodeError": return "Save the file as UTF-8"
        default: return "Correct the line"
        }
    }
}
