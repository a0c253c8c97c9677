import EZMSICore

/// The OpenMSIStream command: the program exists, its arguments parse as its argparse would, the paths it names
/// are on the mounts, and it is started in a form the image's entrypoint runs.
public struct CommandProgram: Probe {
    public let id = "command.program"
    public let title = "OpenMSIStream command"
    public let rationale = """
        argparse rejects typos only when the container starts; `data` only exists if the folder is mounted; and \
        the official image's `bash` entrypoint reads a console script as a shell script unless it gets `-c`.
        """
    public let dependsOn: [String] = []
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("download into the mounted folder", expect: .pass) { ExampleFacts.make() },
            ProbeExample("no command", expect: .fail, code: "no-command") { ExampleFacts.make(command: "") },
            ProbeExample("misspelled program", expect: .fail, code: "unknown-program") {
                ExampleFacts.make(command: "DataFileDownloadDirectroy data --config config.config")
            },
            ProbeExample("short option", expect: .fail, code: "argparse") {
                ExampleFacts.make(command: "DataFileDownloadDirectory data -c config.config")
            },
            ProbeExample("folder not mounted", expect: .fail, code: "path-not-mounted") {
                ExampleFacts.make(command: "DataFileDownloadDirectory data --config config.config", folder: nil)
            },
            ProbeExample("bundled test config", expect: .warn, code: "bundled-config") {
                ExampleFacts.make(command: "DataFileDownloadDirectory data")
            },
            ProbeExample("abbreviated option", expect: .pass) {
                ExampleFacts.make(command: "DataFileDownloadDirectory data --conf config.config --topic xrd")
            },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        let deployment = facts.deployment
        let command = deployment.command
        guard let name = command.first else {
            return ProbeOutcome("no OpenMSIStream command", findings: [.fail(
                "no-command", "no OpenMSIStream command: ezmsi cannot tell what to check or run",
                fix: Remediation("Give it after --, or set openmsistream_command in tracker.json",
                                 commands: ["ezmsi doctor --folder DIR -- DataFileUploadDirectory data --config config.config --topic_name TOPIC"]))])
        }
        if name == "docker" || name == "bash" || name == "-c" || name == "sh" {
            return ProbeOutcome("the command is not an OpenMSIStream program", findings: [.fail(
                "not-a-program", "give only the OpenMSIStream command (program and arguments); ezmsi builds the docker and bash parts",
                evidence: Evidence(expected: "DataFileUploadDirectory data …", actual: ShellWords.join(Secrets.maskCommand(command))),
                fix: Remediation("Drop everything before the program name"))])
        }
        guard let program = ProgramTable.program(named: name) else {
            let names = ProgramTable.all.map(\.name)
            let near = names.min { Levenshtein.distance(name, $0) < Levenshtein.distance(name, $1) }!
            let baseClasses = ["DataFileStreamProcessor", "DataFileStreamReproducer", "MetadataJSONReproducer"]
            let text = baseClasses.contains(name)
                ? "\(name) is a base class, not a console script: run your subclass's module with python"
                : "\(name) is not an OpenMSIStream program" + (Levenshtein.distance(name, near) <= 4 ? " — did you mean \(near)?" : "")
            return ProbeOutcome("unknown program \(name)", findings: [.fail(
                "unknown-program", text, evidence: Evidence(expected: names.joined(separator: ", "), actual: name),
                fix: Remediation(Levenshtein.distance(name, near) <= 4 ? "Write \(near)" : "Use one of the programs listed above"))])
        }
        var findings: [Finding] = []
        let parsed = facts.command.get()
        for error in parsed.errors {
            findings.append(.fail("argparse", "\(program.name): error: \(error)",
                                  fix: Remediation("Correct the arguments; `\(program.name) -h` lists them (long options only)")))
        }
        if program.role == .service {
            findings.append(.fail("service-in-container", "\(program.name) installs host services (systemd/NSSM); it cannot work inside the container",
                                  fix: Remediation("Run the program itself in Docker, with a restart policy (ezmsi command --mode daemon)")))
        }
        if program.interactive {
            findings.append(.info("interactive", "\(program.name) asks questions: it needs a terminal (-it); the hand-off adds it"))
        }

        // Paths the program opens, seen from inside the container.
        for spec in program.positionals {
            guard let value = parsed.positionals[spec.name] else { continue }
            switch spec.type {
            case .existingDirectory, .createDirectory, .existingFile:
                if deployment.hostPath(forContainerPath: value) == nil {
                    let missingData = value == "data" || value.hasPrefix("data/")
                    findings.append(.fail("path-not-mounted",
                                          "\(spec.name) \(value) is \(Paths.absolute(value, base: Deployment.workingDirectory)) in the container, which is not on any mount" +
                                          (spec.type == .createDirectory ? ": files written there vanish with the container" : ": it does not exist there"),
                                          fix: Remediation(missingData ? "Mount the host folder with --folder DIR" : "Mount it with --mount HOST:CONTAINER",
                                                           commands: missingData ? ["ezmsi doctor --folder /path/to/folder -- \(ShellWords.join(Secrets.maskCommand(command)))"] : [])))
                }
            default:
                break
            }
        }
        if program.readsConfig {
            findings += judgeConfigArgument(parsed, program: program, deployment: deployment)
        }
        if program.name == "GirderUploadStreamProcessor" {
            findings.append(.warn("secret-on-command-line", "the Girder API key is a command-line argument: it shows in `ps`, `docker inspect` and shell history",
                                  fix: Remediation("Limit who can run docker inspect on this machine; rotate the key if it leaked")))
        }
        if let custom = parsed.options["logger_file_path"], program.name == "DataFileUploadDirectory" {
            findings.append(.info("logger-file-path", "--logger_file_path \(custom) also moves the registry and changes the watched root to its parent"))
        }
        var entrypointNote = "started with --entrypoint \(program.name)"
        if case .present(let image) = facts.image.get(), image.entrypoint.first.map({ $0.hasSuffix("bash") || $0.hasSuffix("sh") }) == true {
            entrypointNote = "started with --entrypoint \(program.name), not through the image's \(image.entrypoint.joined(separator: " ")) entrypoint (which would read the launcher as a shell script)"
        }
        let problems = findings.filter { $0.severity != .info }.count
        return ProbeOutcome(problems == 0 ? "\(program.name) with valid arguments; \(entrypointNote)" : "\(problems) problem\(problems == 1 ? "" : "s") in the command",
                            findings: findings, details: ["program": program.name, "entrypoint": entrypointNote])
    }

    /// `--config` resolves as OpenMSIStream's `config_path`: no dot → append `.config`; relative to the working
    /// directory if it exists there, else the bundled CONFIG_FILE_DIR.
    private func judgeConfigArgument(_ parsed: ParsedCommand, program: ProgramSpec, deployment: Deployment) -> [Finding] {
        guard let given = parsed.options["config"] else {
            return [.warn("bundled-config", "no --config: \(program.name) uses the bundled `\(program.configDefault)` config, which needs KAFKA_TEST_CLUSTER_* variables",
                          fix: Remediation("Add --config config.config (the file ezmsi mounts at \(ProgramTable.containerConfigPath))"))]
        }
        var path = given
        if !path.contains(".") { path += ".config" }
        guard let (_, mount) = deployment.hostPath(forContainerPath: path) else {
            return [.warn("bundled-config", "--config \(given) is not on a mount, so OpenMSIStream looks for \(path) among its bundled configs",
                          fix: Remediation("Write --config config.config to use \(deployment.configFile)"))]
        }
        if mount.role != "config" {
            return [.warn("config-elsewhere", "--config \(given) is read from the \(mount.role) mount, not from \(deployment.configFile) which ezmsi checked",
                          fix: Remediation("Write --config config.config, or pass --config to ezmsi with the host path of that file"))]
        }
        return []
    }
}
