import ArgumentParser
import EZMSICore
import Foundation

/// `ezmsi generate FORM`: the deployment the doctor checked, written as another deployment form.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the checked deployment as a custom image, a systemd unit, a compose file or a Windows script.",
        discussion: """
            Each form starts the same container `ezmsi run` would (same image, user, env-file, mounts, network, TZ). \
            Like `ezmsi command`, it refuses while the doctor fails, unless --force.
            """,
        subcommands: [GenerateCustomImage.self, GenerateSystemd.self, GenerateCompose.self, GenerateWindows.self])
}

struct GenerateOptions: ParsableArguments {
    @Flag(help: "Generate even though the doctor fails.") var force = false
    @Flag(help: "Replace existing files whose content differs.") var overwrite = false
    @Option(help: "Seconds each probe may take.") var timeout: Double = 10
}

/// The options of a form that is one file (systemd unit, compose file, Windows script), and the one way to write it.
struct SingleFileFormOptions: ParsableArguments {
    @OptionGroup var generate: GenerateOptions
    @Option(name: .shortAndLong, help: "Write to this file (default: print it).") var output: String?
    @Option(name: .customLong("custom-image"), help: "Run this custom image instead.") var customImage: String?

    /// Runs the doctor gate, renders the form from the checked deployment and prints or writes it.
    func write(_ deployment: DeploymentOptions, _ render: (FormContext) -> String) throws {
        let gate = try GatedDeployment.check(deployment, timeout: generate.timeout, force: generate.force, action: "generating")
        try emit(render(formContext(gate, customImage: customImage)), to: output, mode: 0o644, gate: gate,
                 overwrite: generate.overwrite)
    }
}

/// Gathers what every form needs once the doctor has passed.
func formContext(_ gate: GatedDeployment, customImage: String?) -> FormContext {
    var digest: String?
    if case .present(let info) = gate.facts.image.get() {
        digest = DockerCLIClient.digest(of: gate.deployment.image, among: info.repoDigests)
    }
    var owner = "1000:1000"
    if case .success(let identity) = gate.facts.identity.get() { owner = "\(identity.container.uid):\(identity.container.gid)" }
    let host = gate.facts.environment["DOCKER_HOST"].flatMap { $0.isEmpty ? nil : $0 }
    return FormContext(deployment: gate.deployment, selinux: gate.selinux,
                       dockerPath: gate.facts.dockerCLI.get().path ?? "/usr/bin/docker", dockerHost: host,
                       imageDigest: digest, owner: owner, customImage: customImage)
}

/// Writes generated files: new ones created, identical ones left alone, different ones only with --overwrite.
/// Each write is atomic, so an interrupted run leaves either the old or the new file.
func writeGenerated(_ files: [(path: String, mode: mode_t, content: [UInt8])], overwrite: Bool, out: Output) throws {
    var conflicts: [String] = []
    for file in files {
        if case .success(let existing) = FileReading.read(file.path), existing.bytes != file.content, !overwrite {
            conflicts.append(file.path)
        }
    }
    if !conflicts.isEmpty {
        inputFailure(InputError(file: conflicts.joined(separator: ", "), line: nil,
                                message: "already exists with other content; nothing was written",
                                fix: "compare it with the new version, then add --overwrite (or choose another place)"))
    }
    for file in files {
        if case .success(let existing) = FileReading.read(file.path), existing.bytes == file.content {
            out.stderr("unchanged \(file.path)\n")
            continue
        }
        do { try AtomicFile.write(path: file.path, contents: file.content, mode: file.mode) } catch {
            out.stderr("ezmsi: \(error)\n")
            throw ExitCode(Exit.failed)
        }
        out.stderr("wrote \(file.path)\n")
    }
}

struct GenerateCustomImage: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "custom-image",
        abstract: "Write DIR/Dockerfile, startup-script.sh, config.config and .dockerignore for a custom image.",
        discussion: """
            The base image is pinned by digest when it came from a registry; files are copied with --chown to the \
            container user and modest modes (config 0640, script 0750); the ENTRYPOINT is exec form and the script \
            execs the program, so it is PID 1 and gets SIGTERM. Prints the build and run commands. Refuses (exit 1, \
            even with --force) a config holding a literal credential (write $NAME and put the value in the env-file) \
            and a command carrying the Girder API key: an image layer is no place for a secret.
            """)

    @Argument(help: "Folder for the build context (created if missing).") var directory: String
    @Option(help: "Tag for the built image (default: ezmsi/<container name>:latest).") var tag: String?
    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var generate: GenerateOptions

    func run() throws {
        let gate = try GatedDeployment.check(deployment, timeout: generate.timeout, force: generate.force, action: "generating")
        let target = Paths.absolute(Paths.expandHome(directory), base: FileManager.default.currentDirectoryPath)
        let configBytes: [UInt8]
        switch FileReading.read(gate.deployment.configFile) {
        case .success(let snap): configBytes = snap.bytes
        case .failure(let problem):
            inputFailure(InputError(file: gate.deployment.configFile, line: nil, message: problem.description,
                                    fix: "the custom image bakes the config in: make it readable"))
        }
        // Never a credential in a layer, --force or not: refuse before writing anything.
        let baked = CustomImage.secretsBakedIn(configBytes: configBytes, configPath: gate.deployment.configFile,
                                               command: gate.deployment.command)
        if !baked.isEmpty {
            gate.out.stderr("ezmsi: not generating the custom image: it would hold a secret\n" +
                            baked.map { "  \($0.file)\($0.line.map { ":\($0)" } ?? ""): \($0.message)\n    fix: \($0.fix)\n" }.joined())
            throw ExitCode(Exit.failed)
        }
        do { try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true) } catch {
            inputFailure(InputError(file: target, line: nil, message: "cannot create the folder", fix: "choose a writable place"))
        }
        let context = formContext(gate, customImage: nil)
        let files = CustomImage.files(context, configBytes: configBytes)
        try writeGenerated(files.map { (target + "/" + $0.name, $0.mode, $0.content) }, overwrite: generate.overwrite, out: gate.out)
        let imageTag = tag ?? CustomImage.defaultTag(gate.deployment)
        let run = DockerRunCommand.build(gate.deployment, mode: .daemon, selinux: gate.selinux, customImage: imageTag)
        gate.out.stdout("""
            build: docker build -t \(ShellWords.quote(imageTag)) \(ShellWords.quote(target))
            run:   ezmsi run --custom-image \(ShellWords.quote(imageTag)) --deployment \(ShellWords.quote(gate.deployment.directory))
               or: \(run.shellLine)

            """)
    }
}

struct GenerateSystemd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "systemd",
        abstract: "Write a systemd unit that runs the container as a Linux service.",
        discussion: "Prints the unit, or writes it with --output; the install commands are in its header.")

    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var form: SingleFileFormOptions

    func run() throws { try form.write(deployment, SystemdUnit.render) }
}

struct GenerateCompose: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compose",
        abstract: "Write a compose file with the same container settings.",
        discussion: """
            Compose reads env_file with dotenv rules, unlike docker run --env-file; the doctor's env.compose probe \
            warns where the same env-file would mean different values.
            """)

    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var form: SingleFileFormOptions

    func run() throws { try form.write(deployment, ComposeFile.render) }
}

struct GenerateWindows: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "windows",
        abstract: "Write a PowerShell script that starts the container on Docker Desktop for Windows.",
        discussion: "Paths in the deployment folder become relative to the script; WSL paths /mnt/c/… become C:\\….")

    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var form: SingleFileFormOptions

    func run() throws { try form.write(deployment, WindowsScript.render) }
}

func emit(_ text: String, to output: String?, mode: mode_t, gate: GatedDeployment, overwrite: Bool) throws {
    guard let output else { gate.out.stdout(text); return }
    let path = Paths.absolute(Paths.expandHome(output), base: FileManager.default.currentDirectoryPath)
    try writeGenerated([(path, mode, Array(text.utf8))], overwrite: overwrite, out: gate.out)
}
