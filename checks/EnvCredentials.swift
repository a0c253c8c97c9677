import EZMSICore

/// Every variable the config expands, and the recipe's credentials, are present and non-empty in the container.
public struct EnvCredentials: Probe {
    public let id = "env.credentials"
    public let title = "Credentials present"
    public let rationale = """
        OpenMSIStream expands `$VAR` config values from the container's environment: an unset variable stops the \
        program, an empty one silently becomes an empty password.
        """
    public let dependsOn = ["env.file"]
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("all three credentials set", expect: .pass) { ExampleFacts.make() },
            ProbeExample("recipe template left empty", expect: .fail, code: "credential-empty") {
                ExampleFacts.make(env: "CONFLUENT_BOOTSTRAP_SERVERS=\nCONFLUENT_USERNAME=\nCONFLUENT_PASSWORD=\n")
            },
            ProbeExample("password missing", expect: .fail, code: "credential-missing") {
                ExampleFacts.make(env: "CONFLUENT_BOOTSTRAP_SERVERS=b:9092\nCONFLUENT_USERNAME=lab\n")
            },
        ]
    }

    /// `$NAME` / `${NAME}` references in the config, with the line that uses each.
    static func references(_ config: ConfigFile) -> [(name: String, line: Int, partial: Bool)] {
        var refs: [(String, Int, Bool)] = []
        for section in config.sections where ProgramTable.knownSections.contains(section.name) {
            for option in section.options + config.defaults where option.raw.hasPrefix("$") {
                var body = option.raw.dropFirst()
                if body.hasPrefix("{"), let close = body.firstIndex(of: "}") { body = body[body.index(after: body.startIndex)..<close] }
                let name = String(body.prefix { $0.isLetter || $0.isNumber || $0 == "_" })
                guard !name.isEmpty else { continue }
                let partial = option.raw != "$" + name && option.raw != "${" + name + "}"
                if !refs.contains(where: { $0.0 == name }) { refs.append((name, option.line, partial)) }
            }
        }
        return refs
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        guard let env = facts.containerEnvironment else { return .skip("the env-file could not be read") }
        let envPath = facts.deployment.envFile
        var wanted: [(name: String, why: String, location: Location?)] = []
        if case .success(let config) = facts.config.get() {
            for ref in Self.references(config.file) {
                wanted.append((ref.name, "referenced by the config", Location(file: config.file.path, line: ref.line)))
            }
        }
        // The recipe's three are required unless the config shows they are not used.
        let usesRecipe = wanted.isEmpty || wanted.contains { ProgramTable.recipeCredentials.contains($0.name) }
        if usesRecipe {
            for name in ProgramTable.recipeCredentials where !wanted.contains(where: { $0.name == name }) {
                wanted.append((name, "a credential of the EZOpenMSIStream recipe", nil))
            }
        }
        var findings: [Finding] = []
        var present = 0
        for item in wanted {
            let line = facts.envFile.get().map { $0.file.lastEntry(item.name)?.line }
            let envLocation = Location(file: envPath, line: (try? line.get()) ?? nil)
            guard let value = env[item.name] else {
                findings.append(.fail("credential-missing", "\(item.name) (\(item.why)) is not set in the env-file",
                                      at: item.location ?? Location(file: envPath),
                                      fix: Remediation("Add a line \(item.name)=<value> to \(envPath)")))
                continue
            }
            if value.isEmpty {
                findings.append(.fail("credential-empty", "\(item.name) (\(item.why)) is empty: OpenMSIStream would use an empty string",
                                      at: envLocation, fix: Remediation("Fill in the value after \(item.name)=")))
                continue
            }
            present += 1
            findings.append(.info("credential-present", "\(item.name) is set (\(Secrets.fingerprint(value)))", at: envLocation))
        }
        return ProbeOutcome("\(present) of \(wanted.count) required variables set", findings: findings)
    }
}
