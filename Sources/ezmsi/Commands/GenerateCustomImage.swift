import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

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
            throw CLIError.input(InputError(file: gate.deployment.configFile, line: nil, message: problem.description,
                                    fix: "the custom image bakes the config in: make it readable"))
        }
        // Never a credential in a layer, --force or not: refuse before writing anything.
        let baked = CustomImage.secretsBakedIn(configBytes: configBytes, configPath: gate.deployment.configFile,
                                               command: gate.deployment.command)
        if !baked.isEmpty {
            gate.out.stderr("ezmsi: not generating the custom image: it would hold a secret\n" +
                            baked.map { "  \($0.file)\($0.line.map { ":\($0)" } ?? ""): \($0.message)\n    fix: \($0.fix)\n" }.joined())
            throw CLIError.failed
        }
        do { try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true) } catch {
            throw CLIError.input(InputError(file: target, line: nil, message: "cannot create the folder", fix: "choose a writable place"))
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
