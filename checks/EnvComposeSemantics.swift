import EZMSICore

/// The env-file means the same under `docker run --env-file` and under docker-compose's `env_file:`.
public struct EnvComposeSemantics: Probe {
    public let id = "env.compose"
    public let title = "Env-file as compose reads it"
    public let rationale = """
        Only matters if the deployment is run with compose (`ezmsi generate compose`): docker-compose reads `env_file:` \
        with dotenv rules (quotes stripped, ` #` comments cut, `${VAR}` replaced, escapes decoded in double quotes), \
        so the same file can give a container a different password than `docker run --env-file`.
        """
    public let dependsOn = ["env.file"]
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("plain KEY=value lines", expect: .pass) { ExampleFacts.make() },
            ProbeExample("quoted password", expect: .warn, code: "compose-differs") {
                ExampleFacts.make(env: "CONFLUENT_BOOTSTRAP_SERVERS=b:9092\nCONFLUENT_USERNAME=lab\nCONFLUENT_PASSWORD=\"pw\"\n")
            },
            ProbeExample("inline comment", expect: .warn, code: "compose-differs") {
                ExampleFacts.make(env: ExampleFacts.goodEnv + "KAFKA_TEST_CLUSTER_BOOTSTRAP_SERVERS=localhost:9092 # test\n")
            },
            ProbeExample("${VAR} in a password", expect: .warn, code: "compose-differs") {
                ExampleFacts.make(env: "CONFLUENT_BOOTSTRAP_SERVERS=b:9092\nCONFLUENT_USERNAME=lab\nCONFLUENT_PASSWORD=a${b}c\n")
            },
            ProbeExample("'#' without a space and '$' without braces mean the same", expect: .pass) {
                ExampleFacts.make(env: "CONFLUENT_BOOTSTRAP_SERVERS=b:9092\nCONFLUENT_USERNAME=lab\nCONFLUENT_PASSWORD=p#w$x\n")
            },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        guard case .success(let fact) = facts.envFile.get() else { return .skip("the env-file could not be read") }
        let path = facts.deployment.envFile
        let docker = fact.file
        // The same bytes docker read, through compose's rules.
        let compose = ComposeEnvFileParser.parse(bytes: fact.bytes, path: path,
                                                 environment: facts.environment)
        if let error = compose.error {
            return ProbeOutcome("compose cannot read the env-file", findings: [.warn(
                "compose-differs", "docker-compose refuses this file: \(error.message)",
                at: Location(file: path, line: error.line), fix: Remediation("Save the file as UTF-8"))])
        }
        let dockerEnv = docker.resolved(host: facts.environment)
        let composeEnv = compose.resolved(host: facts.environment)
        var keys: [(key: String, line: Int)] = []
        for key in Set(dockerEnv.keys).union(composeEnv.keys) where dockerEnv[key] != composeEnv[key] {
            keys.append((key, docker.lastEntry(key)?.line ?? compose.lastEntry(key)?.line ?? 0))
        }
        var findings: [Finding] = []
        for (key, line) in keys.sorted(by: { ($0.line, $0.key) < ($1.line, $1.key) }) {
            findings.append(finding(key: key, line: line, docker: docker, compose: compose,
                                    dockerValue: dockerEnv[key], composeValue: composeEnv[key], path: path))
        }
        let count = dockerEnv.count
        if findings.isEmpty {
            return ProbeOutcome("docker and compose read the \(count) variable\(count == 1 ? "" : "s") the same")
        }
        return ProbeOutcome("\(findings.count) of \(Set(dockerEnv.keys).union(composeEnv.keys).count) variables differ under compose",
                            findings: findings, details: ["differs": keys.map(\.key).sorted().joined(separator: " ")])
    }

    private func finding(key: String, line: Int, docker: EnvFile, compose: ComposeEnvFile, dockerValue: String?,
                         composeValue: String?, path: String) -> Finding {
        let at = Location(file: path, line: line)
        func size(_ v: String?) -> String { v.map { "\($0.count) character\($0.count == 1 ? "" : "s")" } ?? "not set" }
        let evidence = Evidence(expected: "docker run --env-file: \(size(dockerValue))", actual: "compose: \(size(composeValue))")
        guard let entry = compose.lastEntry(key) else {
            // Only docker sets it: compose skipped the line, swallowed it into a quoted value, or read another name.
            var how = "compose does not set it"
            var fix = "Write line \(line) as \(key)=value"
            if compose.skipped.contains(where: { $0.statementLine == line }) {
                how = "compose cannot parse line \(line) (python-dotenv skips it with a warning)"
            } else if let open = compose.entries.last(where: { $0.multiline && $0.line < line && line <= $0.endLine }) {
                how = "compose reads line \(line) as part of \(open.key)'s quoted value, which starts on line \(open.line)"
                fix = "Close the quote on line \(open.line), or remove it"
            } else if let other = compose.entries.first(where: { $0.line == line }) {
                how = "compose reads the name on line \(line) as \(other.key)"
                fix = "Use a name of letters, digits and _ only"
            }
            return .warn("compose-differs", "\(key) is set by docker but not by compose: \(how)", evidence: evidence,
                         at: at, fix: Remediation(fix))
        }
        guard dockerValue != nil else {
            let dockerKey = docker.entries.first { $0.line == entry.line }?.key
            let how = dockerKey.map { "docker reads the name on line \(entry.line) as \($0)" } ?? "docker does not set it"
            return .warn("compose-differs", "\(key) is set by compose but not by docker: \(how)", evidence: evidence,
                         at: Location(file: path, line: entry.line),
                         fix: Remediation("Write line \(entry.line) as KEY=value, with a name of letters, digits and _ only"))
        }
        var hows: [String] = [], fixes: [String] = []
        if let q = entry.quote {
            hows.append(entry.multiline ? "the \(q)…\(q) quotes are stripped and the value continues onto the next lines"
                                        : "the \(q)…\(q) quotes are stripped (docker keeps them)")
            fixes.append("write \(key)=value without quotes")
        }
        if entry.escapesDecoded {
            hows.append("backslash escapes in the quotes are decoded")
            fixes.append("write backslashes without quotes around the value")
        }
        if entry.commentDropped {
            hows.append("the inline ` #…` comment is dropped (docker keeps it in the value)")
            fixes.append("move the comment to its own line and keep ` #` out of the value")
        }
        if !entry.variables.isEmpty {
            let names = entry.variables.map { "${\($0)}" }.joined(separator: ", ")
            hows.append("\(names) is replaced from the environment (docker keeps it literally)")
            fixes.append("keep `${` out of the value: compose's env_file has no escape for it (`$$` stays `$$`)")
        }
        if entry.whitespaceDropped {
            hows.append("the spaces around '=' or at the end are dropped")
            fixes.append("remove the spaces after '=' and at the end of the line")
        }
        if hows.isEmpty { hows.append("compose reads it differently") }
        let fixText = fixes.isEmpty ? "Write \(key)=value on one line with no quotes, ` #` or `${`"
                                    : fixes.joined(separator: "; ").prefix(1).uppercased() + fixes.joined(separator: "; ").dropFirst()
        return .warn("compose-differs", "\(key) differs under compose: \(hows.joined(separator: "; "))", evidence: evidence,
                     at: at, fix: Remediation(fixText))
    }
}
