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
    public static func build(_ deployment: Deployment, mode: RunMode, selinux: Bool) -> DockerRunCommand {
        var argv = ["docker", "run"]
        switch mode {
        case .daemon: argv += ["-d", "--restart", "unless-stopped", "--name", deployment.containerName]
        case .foreground: argv += ["--rm", "-it", "--name", deployment.containerName]
        case .shell: argv += ["--rm", "-it", "--name", deployment.containerName + "-shell"]
        }
        if let program = deployment.program, program.interactive, mode == .daemon { argv.insert("-it", at: 2) }
        argv += ["--env-file", deployment.envFile]
        if let user = deployment.user {
            argv += ["--user", user]
            if !["openmsi", "1000", "1000:1000", "openmsi:openmsi"].contains(user) {
                // The official image installs OpenMSIStream in the user site of /home/openmsi; Python finds it by HOME.
                argv += ["-e", "HOME=\(ProgramTable.imageHome)"]
            }
        }
        for mount in deployment.mounts {
            if selinux {
                argv += ["-v", "\(mount.host):\(mount.container):\(mount.readOnly ? "ro," : "")z"]
            } else {
                argv += ["--mount", "type=bind,src=\(mount.host),dst=\(mount.container)\(mount.readOnly ? ",readonly" : "")"]
            }
        }
        switch mode {
        case .shell:
            argv += ["--entrypoint", "bash", deployment.image]
        case .daemon, .foreground:
            if let program = deployment.command.first {
                argv += ["--entrypoint", program, deployment.image]
                argv += deployment.command.dropFirst()
            } else {
                argv += [deployment.image]
            }
        }
        return DockerRunCommand(mode: mode, argv: argv)
    }
}
