import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

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
    @OptionGroup var probeTimeout: ProbeTimeout
    var timeout: Double { probeTimeout.timeout }

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
                throw CLIError.failed
            }
            let removed = try docker.run(["rm", "-f", name])
            guard removed.status == 0 else {
                gate.out.stderr("ezmsi: cannot remove \(VisibleText.escape(name)):\n" + VisibleText.lines(removed.stderr, prefix: "  │ "))
                throw CLIError.failed
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
                throw CLIError.input(e)
            } catch {
                gate.out.stderr("ezmsi: the container runs, but the record could not be written: \(error)\n")
                throw CLIError.failed
            }
        }

        gate.out.stderr("ezmsi: \(VisibleText.escape(command.shellLine))\n")
        switch mode {
        case .daemon:
            let started = try docker.run(Array(command.argv.dropFirst()), timeout: 300)
            guard started.status == 0 else {
                gate.out.stderr("ezmsi: docker run failed (exit \(started.status)):\n" + VisibleText.lines(started.stderr, prefix: "  │ "))
                throw CLIError.failed
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
            throw CLIError.failed
        }
    }
}
