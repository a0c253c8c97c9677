import EZMSICore

/// The env-file, read with docker's own `--env-file` rules.
public struct EnvFileProbe: Probe {
    public let id = "env.file"
    public let title = "Env-file as docker reads it"
    public let rationale = """
        docker keeps quotes and trailing spaces in values (they end up inside passwords), refuses `export X=1`, and \
        silently drops or imports bare keys; two OpenMSIStream variables crash every program at import.
        """
    public let dependsOn: [String] = []
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("clean file, mode 0600", expect: .pass) { ExampleFacts.make() },
            ProbeExample("shell-style export", expect: .fail, code: "export-prefix") {
                ExampleFacts.make(env: "export CONFLUENT_USERNAME=lab\n")
            },
            ProbeExample("quoted password", expect: .warn, code: "quoted-value") {
                ExampleFacts.make(env: "CONFLUENT_PASSWORD=\"pw with spaces\"\n")
            },
            ProbeExample("readable by others", expect: .warn, code: "env-file-permissions") {
                ExampleFacts.make(envMode: 0o100644)
            },
            ProbeExample("crashing variable", expect: .fail, code: "crashing-variable") {
                ExampleFacts.make(env: ExampleFacts.goodEnv + "OPENMSISTREAM_CONFIG_FILE_DIR=/x\n")
            },
            ProbeExample("missing file", expect: .fail, code: "file-missing") { ExampleFacts.make(env: nil) },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        let path = facts.deployment.envFile
        let fact: EnvFileFact
        switch facts.envFile.get() {
        case .failure(let problem):
            var commands = ["ezmsi init \(facts.deployment.directory) --program <Program>"]
            if case .missing = problem { commands = ["touch \(ShellWords.quote(path)) && chmod 600 \(ShellWords.quote(path))"] }
            return ProbeOutcome("cannot use the env-file", findings: [.fail(
                problem.code, problem.description + (problem.isDirectory ? " (docker creates a directory when a mounted file is missing)" : ""),
                at: Location(file: path),
                fix: Remediation("Create \(path) with one KEY=value per line (no quotes, no `export`)", commands: commands))])
        case .success(let f):
            fact = f
        }
        var findings: [Finding] = []
        let file = fact.file
        if let error = file.error {
            findings.append(.fail(error.code, "docker refuses this file: \(error.dockerMessage)",
                                  evidence: Evidence(expected: "KEY=value", actual: "docker run exits 125: invalid env file"),
                                  at: Location(file: path, line: error.line), fix: Remediation(fixText(error.code))))
        }
        var seen: [String: Int] = [:]
        for entry in file.entries {
            let at = Location(file: path, line: entry.line)
            if let previous = seen[entry.key] {
                findings.append(.warn("duplicate-key", "\(entry.key) is set again (first on line \(previous)); the last one wins",
                                      at: at, fix: Remediation("Keep one line for \(entry.key)")))
            }
            seen[entry.key] = entry.line
            if let crash = ProgramTable.crashingVariables.first(where: { $0.name == entry.key }) {
                findings.append(.fail("crashing-variable",
                                      "\(entry.key) makes \(crash.affects) crash at import (OpenMSIStream 1.7.0–1.8.7), whatever its value",
                                      at: at, fix: Remediation("Delete this line")))
            }
            guard let value = entry.value else {
                if let host = facts.environment[entry.key] {
                    findings.append(.warn("bare-key-host-value",
                                          "\(entry.key) has no '=': docker copies this machine's value (\(Secrets.fingerprint(host)))",
                                          at: at, fix: Remediation("Write \(entry.key)=<value> to make the file self-contained")))
                } else {
                    findings.append(.warn("bare-key-dropped", "\(entry.key) has no '=' and is not set here: docker drops it silently",
                                          at: at, fix: Remediation("Write \(entry.key)=<value>")))
                }
                continue
            }
            if entry.key == "HOME", value != ProgramTable.imageHome {
                findings.append(.fail("home-overridden", "HOME=\(value) hides OpenMSIStream, which is installed in \(ProgramTable.imageHome)/.local",
                                      at: at, fix: Remediation("Delete this line or set HOME=\(ProgramTable.imageHome)")))
            }
            if value.isEmpty {
                findings.append(.warn("empty-value", "\(entry.key) is set to an empty string", at: at,
                                      fix: Remediation("Fill in the value after '='")))
                continue
            }
            let scalars = Array(value.unicodeScalars)
            if scalars.count >= 2, let q = scalars.first, q == "\"" || q == "'", scalars.last == q {
                findings.append(.warn("quoted-value", "\(entry.key)'s value is in quotes; docker keeps them, so they become part of the value",
                                      evidence: Evidence(expected: "\(scalars.count - 2) characters without quotes",
                                                         actual: "\(scalars.count) characters including \(q)…\(q)"),
                                      at: at, fix: Remediation("Remove the quotes: \(entry.key)=value")))
            }
            if let last = scalars.last, last == " " || last == "\t" {
                findings.append(.warn("trailing-whitespace", "\(entry.key)'s value ends with whitespace, which docker keeps",
                                      at: at, fix: Remediation("Delete the spaces at the end of line \(entry.line)")))
            }
            if let first = scalars.first, first == " " || first == "\t" {
                findings.append(.warn("leading-whitespace", "\(entry.key)'s value starts with whitespace, which docker keeps",
                                      at: at, fix: Remediation("Write \(entry.key)=value with nothing between '=' and the value")))
            }
            if value.contains(" #") {
                findings.append(.warn("inline-comment", "\(entry.key)'s value contains ' #': env-files have no inline comments, docker keeps it",
                                      at: at, fix: Remediation("Move the comment to its own line starting with #")))
            }
            if value.unicodeScalars.contains("\u{0}") {
                findings.append(.fail("nul-byte", "\(entry.key)'s value contains a NUL byte: the container fails to start (runc refuses it)",
                                      at: at, fix: Remediation("Remove the NUL character from line \(entry.line)")))
            }
            if value.contains("\r") {
                findings.append(.warn("carriage-return", "\(entry.key)'s value contains a carriage return (\\r) that docker keeps",
                                      at: at, fix: Remediation("Save the file with Unix (LF) or Windows (CRLF) line ends, not old Mac (CR)")))
            }
        }
        if fact.mode & 0o077 != 0 {
            let octal = String(fact.mode & 0o777, radix: 8)
            findings.append(.warn("env-file-permissions", "the env-file holds credentials but is readable by group or others (mode \(octal))",
                                  evidence: Evidence(expected: "600", actual: octal), at: Location(file: path),
                                  fix: Remediation("Make it private", commands: ["chmod 600 \(ShellWords.quote(path))"])))
        }
        let fixes = fact.mode & 0o077 != 0
            ? [FixAction(id: "env-file-chmod", title: "Make the env-file private", commands: ["chmod 600 \(ShellWords.quote(path))"],
                         privilege: "owner of the file")] : []
        let count = file.entries.count
        return ProbeOutcome("\(count) variable\(count == 1 ? "" : "s") in \(path)", findings: findings, fixes: fixes,
                            details: ["variables": file.entries.map(\.key).joined(separator: " ")])
    }

    private func fixText(_ code: String) -> String {
        switch code {
        case "export-prefix": return "Remove `export `: env-files are not shell scripts"
        case "key-whitespace": return "Remove the spaces around '=' (KEY=value)"
        case "empty-key": return "Put a variable name before '='"
        case "invalid-utf8": return "Save the file as UTF-8"
        case "line-too-long": return "Keep each line under 64 KiB"
        default: return "Correct the line"
        }
    }
}

extension FileProblem {
    var isDirectory: Bool { if case .isDirectory = self { return true }; return false }
}
