import ArgumentParser
import EZMSICore
import Foundation

/// The doctor's gate shared by `run` and `generate`: resolve, diagnose, refuse while anything fails.
struct GatedDeployment {
    var deployment: Deployment
    var facts: Facts
    var out: Output
    var selinux: Bool

    /// Exits 1 naming the failing probes unless `force`; exits 3 on an unusable deployment definition.
    static func check(_ options: DeploymentOptions, timeout: Double, force: Bool, action: String) throws -> GatedDeployment {
        let resolved: Deployment
        do { resolved = try options.resolve() } catch let e as InputError { inputFailure(e) }
        let (report, facts) = try diagnose(resolved, selection: RunOptions(timeout: timeout))
        let out = Output(scrubber: Secrets.scrubber(for: facts))
        let failing = report.failingIDs
        if !failing.isEmpty {
            if !force {
                out.stderr("ezmsi: not \(action): the doctor fails: \(failing.joined(separator: ", "))\n" +
                           "  run `ezmsi doctor` for details and fixes\n")
                throw ExitCode(Exit.failed)
            }
            out.stderr("ezmsi: --force: \(action) despite failing checks: \(failing.joined(separator: ", "))\n")
        }
        var selinux = false
        if case .reachable(_, let info) = facts.engine.get() { selinux = info.selinux }
        return GatedDeployment(deployment: resolved, facts: facts, out: out, selinux: selinux)
    }

    func dockerCLI() throws -> DockerCLIClient {
        guard let path = facts.dockerCLI.get().path else {
            out.stderr("ezmsi: the docker CLI is not on PATH\n")
            throw ExitCode(Exit.failed)
        }
        return DockerCLIClient(path: path, environment: facts.environment)
    }

    var engineVersion: String? {
        if case .reachable(_, let info) = facts.engine.get() { return info.serverVersion }
        return nil
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the doctor and, only if it passes, start the container and record it in tracker.json.",
        discussion: """
            Modes: daemon (default; detached, restart policy, survives logout and reboot), foreground (attached with \
            stdin open: type q and Enter for OpenMSIStream's graceful stop), shell (bash in the same setup, not \
            recorded). The record (container, image id and digest, exact command, salted hashes of config and \
            env-file, host, time) is what `ezmsi status` compares against.
            Example: ezmsi run --network host --tz Europe/Berlin
            """)

    @OptionGroup var deployment: DeploymentOptions
    @Option(help: "daemon, foreground or shell.") var mode: RunMode = .daemon
    @Option(name: .customLong("custom-image"), help: "Start this image built by `ezmsi generate custom-image` (its startup script runs the program; the config is inside).")
    var customImage: String?
    @Flag(help: "Remove an existing container of the same name first.") var replace = false
    @Flag(help: "Start even though the doctor fails.") var force = false
    @Option(help: "Seconds each probe may take.") var timeout: Double = 10

    func run() throws {
        let gate = try GatedDeployment.check(deployment, timeout: timeout, force: force, action: "starting the container")
        let docker = try gate.dockerCLI()
        let resolved = gate.deployment
        let tty = isatty(0) == 1 && isatty(1) == 1
        let command = DockerRunCommand.build(resolved, mode: mode, selinux: gate.selinux, tty: tty, customImage: customImage)
        let name = command.argv[command.argv.firstIndex(of: "--name")! + 1]

        if let existing = try docker.container(name) {
            guard replace else {
                gate.out.stderr("ezmsi: a container named \(VisibleText.escape(name)) already exists (\(VisibleText.escape(existing.status))); `ezmsi status` shows it.\n" +
                                "  add --replace to remove it and start a new one\n")
                throw ExitCode(Exit.failed)
            }
            let removed = try docker.run(["rm", "-f", name])
            guard removed.status == 0 else {
                gate.out.stderr("ezmsi: cannot remove \(VisibleText.escape(name)):\n" + VisibleText.lines(removed.stderr, prefix: "  │ "))
                throw ExitCode(Exit.failed)
            }
        }
        let image = customImage ?? resolved.image
        let imageIdentity = try docker.image(image)
        func record(containerID: String?) throws {
            let masked = Secrets.maskCommand(resolved.command)
            var argv = command.argv
            for (plain, hidden) in zip(resolved.command, masked) where plain != hidden {
                argv = argv.map { $0 == plain ? hidden : $0 }
            }
            // An env-file value written on the command line too (in clear, base64 or URL-encoded) is not recorded.
            argv = argv.map(gate.out.scrubber.scrub)
            var withImage = resolved
            withImage.image = image
            let entry = DeploymentRecord(
                recordedBy: "ezmsi \(EZMSI.version)", mode: mode.rawValue, containerName: name, containerID: containerID,
                image: image, imageID: imageIdentity?.id, imageDigest: imageIdentity?.digest, command: argv,
                config: FileStamp.make(path: resolved.configFile), envFile: FileStamp.make(path: resolved.envFile),
                host: HostFacts.gather(dockerEngine: gate.engineVersion),
                startedAt: ISO8601DateFormatter().string(from: Date()))
            do {
                try TrackerWriter.record(entry, for: customImage == nil ? resolved : withImage, scrubber: gate.out.scrubber)
            } catch let e as InputError {
                inputFailure(e)
            } catch {
                gate.out.stderr("ezmsi: the container runs, but the record could not be written: \(error)\n")
                throw ExitCode(Exit.failed)
            }
        }

        gate.out.stderr("ezmsi: \(VisibleText.escape(command.shellLine))\n")
        switch mode {
        case .daemon:
            let started = try docker.run(Array(command.argv.dropFirst()), timeout: 300)
            guard started.status == 0 else {
                gate.out.stderr("ezmsi: docker run failed (exit \(started.status)):\n" + VisibleText.lines(started.stderr, prefix: "  │ "))
                throw ExitCode(Exit.failed)
            }
            let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            try record(containerID: id)
            gate.out.stdout("started \(VisibleText.escape(name)) (\(VisibleText.escape(String(id.prefix(12))))); recorded in \(VisibleText.escape(resolved.directory))/tracker.json\n" +
                            "next: ezmsi status --deployment \(VisibleText.escape(ShellWords.quote(resolved.directory)))\n")
        case .foreground, .shell:
            // Recorded before it starts (docker prints no id for an attached run); status finds it by name.
            if mode == .foreground { try record(containerID: nil) }
            // exec: docker becomes this process, so signals and the terminal reach it directly and its exit code is ours.
            let argv = [docker.path] + command.argv.dropFirst()
            var cargs = argv.map { strdup($0) } + [nil]
            signal(SIGPIPE, SIG_DFL)   // ezmsi ignores it; exec would pass the ignored disposition on to docker
            execv(docker.path, &cargs)
            gate.out.stderr("ezmsi: cannot execute \(docker.path): \(String(cString: strerror(errno)))\n")
            throw ExitCode(Exit.failed)
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show whether the deployment `ezmsi run` recorded is running, and whether anything drifted.",
        discussion: """
            Reads the record in tracker.json; shows the container's state, since when, restart count, exit code and \
            last log lines (secrets scrubbed), and whether the image, config or env-file changed since the start. \
            Exit status: 0 running as recorded, 1 not running or drifted, 3 no record.
            """)

    @OptionGroup var deployment: DeploymentOptions
    @Option(help: "human or json.") var format: OutputFormat = .human
    @Option(help: "How many log lines to show.") var lines: Int = 10

    func validate() throws {
        guard (0...10_000).contains(lines) else { throw ValidationError("--lines must be between 0 and 10000") }
    }

    func run() throws {
        let resolved: Deployment
        do { resolved = try deployment.resolve() } catch let e as InputError { inputFailure(e) }
        let trackerPath = resolved.directory + "/tracker.json"
        let tracker: Tracker?
        do { tracker = try Tracker.load(trackerPath) } catch let e as InputError { inputFailure(e) }
        guard let record = tracker?.record else {
            inputFailure(InputError(file: trackerPath, line: nil, message: "no deployment is recorded here",
                                    fix: "start it with `ezmsi run` (it records what it started in tracker.json)"))
        }
        let facts = Facts(deployment: resolved, environment: ProcessInfo.processInfo.environment)
        var out = Output(scrubber: Secrets.scrubber(for: facts))
        guard let path = facts.dockerCLI.get().path else {
            out.stderr("ezmsi: the docker CLI is not on PATH\n")
            throw ExitCode(Exit.failed)
        }
        let docker = DockerCLIClient(path: path, environment: facts.environment)
        var status: DeploymentStatus
        do {
            let container = try record.containerID.flatMap { try docker.container($0) } ?? docker.container(record.containerName)
            // The record masks secret arguments (the Girder API key), but the program may print them: the
            // container's own arguments say what to cut out.
            out = Output(scrubber: out.scrubber.adding(Secrets.secretArguments(container?.command ?? [])))
            let logs = try container.map { try docker.logs($0.id, count: lines) } ?? []
            status = DeploymentStatus.evaluate(record: record, container: container,
                                               currentImageID: try docker.image(record.image)?.id, logs: logs)
        } catch {
            out.stderr("ezmsi: \(VisibleText.escape(String(describing: error)))\n")   // docker's words, shown visibly
            throw ExitCode(Exit.failed)
        }
        // Log lines are the container's own words: secrets (also base64- or URL-encoded) are cut out before JSON
        // escaping could hide them from the output scrub.
        status.logs = status.logs.map(out.scrubber.scrub)
        switch format {
        case .json: out.stdout(JSONRenderer.render(status))
        case .human:
            out.stdout(status.renderHuman(color: Terminal.wantsColor(fd: 1, environment: ProcessInfo.processInfo.environment)))
        }
        throw ExitCode(status.exitCode)
    }
}

struct SupportReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write one redacted support bundle (JSON) to attach to a ticket.",
        discussion: """
            Holds the doctor's report, host facts (OS, kernel, docker client and engine versions, daemon flavour, \
            filesystem and mount options of each bind source), ezmsi's version, and the deployment with every secret \
            replaced by its length and (from 12 characters on) a slow salted fingerprint (PBKDF2-HMAC-SHA256), plus \
            a summary of what was withheld.
            """)

    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var selection: ProbeSelection
    @Option(name: .shortAndLong, help: "Write the bundle to this file (default: stdout).") var output: String?
    @Option(help: "Acknowledgements file (default: acknowledgements.json in the deployment folder).")
    var acknowledgements: String?

    func run() throws {
        let resolved: Deployment
        do { resolved = try deployment.resolve() } catch let e as InputError { inputFailure(e) }
        let (report, facts): (Report, Facts)
        do {
            (report, facts) = try diagnose(resolved, selection: selection.options, acknowledgementsFile: acknowledgements)
        } catch let e as UnknownProbeSelector {
            usageFailure(e.description)
        }
        let bundle = SupportBundleBuilder.build(report: report, facts: facts)
        let out = Output(scrubber: Secrets.scrubber(for: facts))
        // The scrubber is the last line of defence here too: nothing secret reaches the file.
        let text = out.scrubber.scrub(JSONRenderer.render(bundle))
        guard let output else { out.stdout(text); return }
        let path = Paths.absolute(Paths.expandHome(output), base: FileManager.default.currentDirectoryPath)
        do { try AtomicFile.write(path: path, contents: Array(text.utf8), mode: 0o600) } catch {
            out.stderr("ezmsi: \(error)\n")
            throw ExitCode(Exit.failed)
        }
        out.stderr("wrote \(path) (\(bundle.redaction.redactedCount) values withheld); doctor: \(report.summary.status.rawValue)\n")
    }
}
