/// How the container is started.
public enum RunMode: String, CaseIterable, Codable, Sendable {
    /// `-d` with a restart policy and a name: survives logout and reboots.
    case daemon
    /// Attached with a terminal: type `q` and Enter for OpenMSIStream's graceful stop.
    case foreground
    /// A bash shell in the same container setup, to look around.
    case shell
}

/// The exact `docker run` for a deployment, built from the same `Deployment` the doctor judged.
public struct DockerRunCommand: Codable, Sendable {
    public var mode: RunMode
    public var argv: [String]

    /// The argv as one shell-quoted line.
    public var shellLine: String { ShellWords.join(argv) }

    /// - `--entrypoint PROGRAM`: the official image's entrypoint is `bash`, which would read the Python launcher as
    ///   a shell script; naming the program as entrypoint needs no shell quoting and makes it PID 1.
    /// - `--mount type=bind`: unlike `-v`, it fails when the host path is missing instead of creating a root-owned
    ///   directory (or a directory where a config file should be). Where SELinux relabelling is needed, `-v …:z`
    ///   is the only syntax that can ask for it.
    public static func build(_ deployment: Deployment, mode: RunMode, selinux: Bool, tty: Bool = true,
                             customImage: String? = nil) -> DockerRunCommand {
        let launch: Launch
        switch mode {
        case .daemon: launch = .detached
        case .foreground, .shell: launch = .attached(stdin: true, tty: tty)
        }
        return DockerRunCommand(mode: mode, argv: argv(deployment, mode: mode, launch: launch, selinux: selinux,
                                                       customImage: customImage))
    }

    /// For a supervisor that restarts the container itself (systemd): attached, removed on exit, no restart policy,
    /// no terminal, stdin not forwarded.
    public static func supervised(_ deployment: Deployment, selinux: Bool, customImage: String? = nil) -> DockerRunCommand {
        DockerRunCommand(mode: .foreground, argv: argv(deployment, mode: .foreground, launch: .attached(stdin: false, tty: false),
                                                      selinux: selinux, customImage: customImage))
    }

    enum Launch {
        case detached
        case attached(stdin: Bool, tty: Bool)
    }

    static func argv(_ deployment: Deployment, mode: RunMode, launch: Launch, selinux: Bool, customImage: String?) -> [String] {
        var argv = ["docker", "run"]
        let name = mode == .shell ? deployment.containerName + "-shell" : deployment.containerName
        switch launch {
        case .detached:
            argv += ["-d", "--restart", deployment.site.restart, "--name", name]
            if let program = deployment.program, program.interactive { argv.insert("-it", at: 2) }
        case .attached(let stdin, let tty):
            argv += ["--rm"]
            if stdin { argv += [tty ? "-it" : "-i"] }
            argv += ["--name", name]
        }
        if let network = deployment.site.network { argv += ["--network", network] }
        argv += ["--env-file", deployment.envFile]
        if let tz = deployment.site.timezone { argv += ["-e", "TZ=\(tz)"] }
        if let user = deployment.user {
            argv += ["--user", user]
            if !["openmsi", "1000", "1000:1000", "openmsi:openmsi"].contains(user) {
                // The official image installs OpenMSIStream in the user site of /home/openmsi; Python finds it by HOME.
                argv += ["-e", "HOME=\(ProgramTable.imageHome)"]
            }
        }
        // A custom image carries the config itself (`ezmsi generate custom-image`).
        for mount in deployment.mounts where !(customImage != nil && mount.role == "config") {
            if selinux {
                argv += ["-v", "\(mount.host):\(mount.container):\(mount.readOnly ? "ro," : "")z"]
            } else {
                argv += ["--mount", "type=bind,src=\(mount.host),dst=\(mount.container)\(mount.readOnly ? ",readonly" : "")"]
            }
        }
        let image = customImage ?? deployment.image
        switch mode {
        case .shell:
            argv += ["--entrypoint", "bash", image]
        case .daemon, .foreground:
            if customImage != nil {
                argv += [image]          // its ENTRYPOINT is the startup script, which execs the program
            } else if let program = deployment.command.first {
                argv += ["--entrypoint", program, image]
                argv += deployment.command.dropFirst()
            } else {
                argv += [image]
            }
        }
        return argv
    }
}
