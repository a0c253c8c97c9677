import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

/// Exit codes are part of the public contract (README, "Exit codes").
enum Exit {
    static let ok: Int32 = 0
    static let failed: Int32 = 1      // a probe is fail/blocked/error (or warn with --strict); `command` refused
    static let usage: Int32 = 2       // the command line is wrong
    static let input: Int32 = 3       // a file ezmsi needs before any probe is unusable (tracker.json, init target)
}

struct Ezmsi: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ezmsi",
        abstract: "Get OpenMSIStream programs running in Docker right the first time.",
        discussion: """
            Start with `ezmsi doctor` in a deployment folder (openmsi.env, config.config, tracker.json), then \
            `ezmsi run` (or run what `ezmsi command` prints) and `ezmsi status`. `ezmsi generate` writes a custom \
            image, a systemd unit, a compose file or a Windows script for the same deployment. \
            `ezmsi init DIR --program NAME` creates a deployment folder.
            """,
        version: EZMSI.version,
        subcommands: [Doctor.self, Checks.self, Command.self, Run.self, Status.self, Generate.self, SupportReport.self,
                      Fix.self, Undo.self, Init.self])
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case human, json
}

/// Where the deployment comes from. Flags beat tracker.json, which beats the defaults.
struct DeploymentOptions: ParsableArguments {
    @Option(name: .customLong("deployment"), help: "Deployment folder (default: the current folder).")
    var deployment: String?
    @Option(name: .customLong("env-file"), help: "Env-file with the broker credentials (default: openmsi.env there).")
    var envFile: String?
    @Option(help: "Config file (default: config.config there).")
    var config: String?
    @Option(help: "Host data folder, mounted at /home/openmsi/data (tracker.json: service_local_target_folder).")
    var folder: String?
    @Option(help: "Image (default: openmsi/openmsistream:latest).")
    var image: String?
    @Option(help: "Container user, as for docker run --user (default: the image's).")
    var user: String?
    @Option(name: .customLong("mount"), help: "Extra bind mount HOST:CONTAINER[:ro]; repeatable.")
    var mounts: [String] = []
    @Option(help: "Container name (default: ezmsi-<deployment folder name>).")
    var name: String?
    @Option(help: "Docker network, e.g. host for a broker on this machine (tracker.json: network).")
    var network: String?
    @Option(help: "Restart policy of the daemon form: no, always, unless-stopped (default), on-failure[:N].")
    var restart: String?
    @Option(name: .customLong("tz"), help: "TZ inside the container, e.g. Europe/Berlin (tracker.json: tz).")
    var timezone: String?
    @Argument(parsing: .postTerminator, help: "The OpenMSIStream command, after --.")
    var command: [String] = []

    func resolve() throws -> Deployment {
        var flags = DeploymentFlags()
        flags.deployment = deployment
        flags.envFile = envFile
        flags.config = config
        flags.folder = folder
        flags.image = image
        flags.user = user
        flags.mounts = mounts
        flags.name = name
        flags.network = network
        flags.restart = restart
        flags.timezone = timezone
        flags.command = command
        return try DeploymentResolver.resolve(flags, cwd: FileManager.default.currentDirectoryPath)
    }
}

struct ProbeSelection: ParsableArguments {
    @Option(help: "Run only these probes: ids or prefixes (docker.), comma-separated or repeated.")
    var only: [String] = []
    @Option(help: "Skip these probes: ids or prefixes, comma-separated or repeated.")
    var skip: [String] = []
    @Option(help: "Seconds each probe may take.")
    var timeout: Double = 10
    @Option(help: "Seconds the whole run may take; unfinished probes are then reported as error.")
    var deadline: Double?
    @Flag(help: "Skip the probes that need the network (the broker), saying so.")
    var offline = false
    @Option(name: .customLong("slow-after"), help: "Add a notice to probes slower than this many seconds.")
    var slowAfter: Double = 5

    func validate() throws {
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be between 0 and 3600 seconds") }
        if let deadline { guard deadline > 0, deadline <= 86_400 else { throw ValidationError("--deadline must be between 0 and 86400 seconds") } }
        guard slowAfter > 0 else { throw ValidationError("--slow-after must be positive") }
    }

    var options: RunOptions {
        func split(_ list: [String]) -> [String] { list.flatMap { $0.split(separator: ",").map(String.init) } }
        return RunOptions(timeout: timeout, only: split(only), skip: split(skip), offline: offline, deadline: deadline,
                          slowAfter: slowAfter)
    }
}

/// Output written in one place so that secrets are scrubbed from everything ezmsi prints.
struct Output {
    let scrubber: Secrets.Scrubber

    func stdout(_ text: String) { FileHandle.standardOutput.write(Data(scrubber.scrub(text).utf8)) }
    func stderr(_ text: String) { FileHandle.standardError.write(Data(scrubber.scrub(text).utf8)) }
}

/// Runs the doctor and returns the report with the facts it used. The deployment folder's acknowledgements apply
/// (an unusable acknowledgements file stops ezmsi with exit 3).
func diagnose(_ deployment: Deployment, selection: RunOptions, prove: Bool = false, strict: Bool = false,
              acknowledgementsFile: String? = nil, prepare: (Facts) -> Void = { _ in }) throws -> (Report, Facts) {
    let acknowledgements = loadAcknowledgements(deployment, file: acknowledgementsFile)
    var selection = selection
    // EZMSI_OFFLINE=1 is --offline for every command that runs the doctor (air-gapped CI, boot scripts).
    if let value = ProcessInfo.processInfo.environment["EZMSI_OFFLINE"], ["1", "true", "yes"].contains(value.lowercased()) {
        selection.offline = true
    }
    let started = Date()
    let clock = DispatchTime.now()
    let facts = Facts(deployment: deployment, environment: ProcessInfo.processInfo.environment, timeout: selection.timeout)
    facts.proveRequested = prove
    prepare(facts)
    var results = try Runner.run(Catalogue.all, facts: facts, options: selection)
    if let acknowledgements {
        let applied = acknowledgements.apply(to: results)
        results = applied.checks
        for entry in applied.unused {
            // The file's words are outside text: shown with control characters visible.
            let what = VisibleText.escape(entry.probe + (entry.finding.map { " " + $0 } ?? ""))
            FileHandle.standardError.write(Data("ezmsi: note: \(VisibleText.escape(acknowledgements.path)):\(entry.line): acknowledges \(what), which found nothing to acknowledge; remove it\n".utf8))
        }
    }
    let ms = Double(DispatchTime.now().uptimeNanoseconds - clock.uptimeNanoseconds) / 1_000_000
    return (Report(checks: results, deployment: deployment, startedAt: started, durationMs: ms, strict: strict), facts)
}

func loadAcknowledgements(_ deployment: Deployment, file: String?) -> Acknowledgements? {
    let path = file.map { Paths.absolute(Paths.expandHome($0), base: FileManager.default.currentDirectoryPath) }
        ?? deployment.directory + "/" + Acknowledgements.fileName
    do {
        return try Acknowledgements.load(path, knownProbes: Catalogue.all.map(\.id))
    } catch let e as InputError {
        inputFailure(e)
    } catch {
        inputFailure(InputError(file: path, line: nil, message: "\(error)", fix: "correct or remove the file"))
    }
}

func usageFailure(_ message: String) -> Never {
    FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
    Foundation.exit(Exit.usage)
}

func inputFailure(_ error: InputError) -> Never {
    // File names and quoted input are outside text: each line with its control characters visible.
    FileHandle.standardError.write(Data("ezmsi: \(VisibleText.escapeEachLine(error.description))\n".utf8))
    Foundation.exit(Exit.input)
}

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a deployment: Docker, image, env-file, config, command.",
        discussion: """
            Exit status: 0 nothing failed (warnings allowed), 1 a probe failed, was blocked or errored (or warned, \
            with --strict), 2 usage error, 3 the deployment definition itself is unusable.
            Example: ezmsi doctor --folder ~/scans -- DataFileUploadDirectory data --config config.config --topic_name xrd
            """)

    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var selection: ProbeSelection
    @Option(help: "human, json, junit, markdown, sarif or github (Actions annotations); all but human go to stdout alone.")
    var format: DoctorFormat = .human  // DoctorFormat.swift
    @Flag(help: "Treat warnings as failures.") var strict = false
    @Flag(help: "Also let a throwaway container (same image, user, mounts) try the folder for real.") var prove = false
    @Option(help: "Acknowledgements file (default: acknowledgements.json in the deployment folder).")
    var acknowledgements: String?
    @Option(name: .customLong("retry-until"), help: "For boot scripts: re-run until nothing fails or this many seconds passed; exit with the final status.")
    var retryUntil: Double?
    @Option(name: .customLong("retry-every"), help: "Seconds between attempts with --retry-until.")
    var retryEvery: Double = 5

    func validate() throws {
        if let retryUntil { guard retryUntil > 0, retryUntil <= 86_400 else { throw ValidationError("--retry-until must be between 0 and 86400 seconds") } }
        guard retryEvery > 0 else { throw ValidationError("--retry-every must be positive") }
    }

    func run() throws {
        let resolved: Deployment
        do { resolved = try deployment.resolve() } catch let e as InputError { inputFailure(e) }
        var (report, facts): (Report, Facts)
        let giveUp = Date().addingTimeInterval(retryUntil ?? 0)
        var attempt = 1
        while true {
            do {
                (report, facts) = try diagnose(resolved, selection: selection.options, prove: prove, strict: strict,
                                               acknowledgementsFile: acknowledgements)
            } catch let e as UnknownProbeSelector {
                usageFailure(e.description)
            }
            guard retryUntil != nil, report.summary.exitCode != 0, Date().addingTimeInterval(retryEvery) < giveUp else { break }
            Output(scrubber: Secrets.scrubber(for: facts)).stderr(
                "ezmsi: attempt \(attempt): failing: \(report.failingIDs.joined(separator: ", ")); retrying in \(retryEvery) s\n")
            Thread.sleep(forTimeInterval: retryEvery)
            attempt += 1
        }
        if retryUntil != nil {
            FileHandle.standardError.write(Data("ezmsi: \(report.summary.exitCode == 0 ? "passed" : "still failing") after \(attempt) attempt\(attempt == 1 ? "" : "s")\n".utf8))
        }
        let out = Output(scrubber: Secrets.scrubber(for: facts))
        out.stdout(format.render(report, scrubber: out.scrubber))  // scrubbed twice: DoctorFormat.swift
        throw ExitCode(report.summary.exitCode)
    }
}

struct Checks: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the probes the doctor runs.")
    @Option(help: "human or json.") var format: OutputFormat = .human

    struct Entry: Encodable {
        var id: String
        var title: String
        var dependsOn: [String]
        var rationale: String
    }

    func run() throws {
        let entries = Catalogue.all.map { Entry(id: $0.id, title: $0.title, dependsOn: $0.dependsOn, rationale: $0.rationale) }
        switch format {
        case .json:
            print(JSONRenderer.render(["schemaVersion": AnyEncodable(Report.schemaVersion), "checks": AnyEncodable(entries)]), terminator: "")
        case .human:
            let width = entries.map(\.id.count).max() ?? 0
            for e in entries {
                let deps = e.dependsOn.isEmpty ? "" : "  (after \(e.dependsOn.joined(separator: ", ")))"
                print("\(e.id.padding(toLength: width + 2, withPad: " ", startingAt: 0))\(e.title)\(deps)")
                print(String(repeating: " ", count: width + 2) + e.rationale)
            }
        }
    }
}

struct AnyEncodable: Encodable {
    let encode: (Encoder) throws -> Void
    init<T: Encodable>(_ value: T) { encode = value.encode }
    func encode(to encoder: Encoder) throws { try encode(encoder) }
}

struct Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the docker run command for the deployment (after the doctor passes).",
        discussion: "Refuses (exit 1, naming the failing probes) while the doctor fails, unless --force.")

    @OptionGroup var deployment: DeploymentOptions
    @Option(help: "daemon (-d, restart policy), foreground (attached, q+Enter stops), or shell (bash in the same setup).")
    var mode: RunMode = .daemon
    @Option(help: "human (one shell line) or json (argv).") var format: OutputFormat = .human
    @Flag(help: "Print the command even though the doctor fails.") var force = false
    @Option(help: "Seconds each probe may take.") var timeout: Double = 10

    func run() throws {
        let resolved: Deployment
        do { resolved = try deployment.resolve() } catch let e as InputError { inputFailure(e) }
        let (report, facts) = try diagnose(resolved, selection: RunOptions(timeout: timeout))
        let out = Output(scrubber: Secrets.scrubber(for: facts))
        let failing = report.failingIDs
        if !failing.isEmpty && !force {
            out.stderr("ezmsi: not printing a command that would fail; failing checks: \(failing.joined(separator: ", "))\n" +
                       "  run `ezmsi doctor` for details, or add --force\n")
            throw ExitCode(Exit.failed)
        }
        var selinux = false
        if case .reachable(_, let info) = facts.engine.get() { selinux = info.selinux }
        let run = DockerRunCommand.build(resolved, mode: mode, selinux: selinux)
        switch format {
        case .json:
            struct Payload: Encodable { var mode: RunMode; var argv: [String]; var command: String; var forced: Bool; var failing: [String] }
            out.stdout(JSONRenderer.render(Payload(mode: mode, argv: run.argv, command: run.shellLine, forced: !failing.isEmpty, failing: failing)))
        case .human:
            if !failing.isEmpty { out.stderr("ezmsi: --force: printing despite failing checks: \(failing.joined(separator: ", "))\n") }
            out.stdout(run.shellLine + "\n")
        }
    }
}

extension RunMode: ExpressibleByArgument {}

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a deployment folder for one program (never overwrites).",
        discussion: "Writes openmsi.env (0600, keys without values), config.config, tracker.json and .gitignore.")

    @Argument(help: "The folder to create or fill.") var directory: String
    @Option(help: "The OpenMSIStream program, e.g. DataFileUploadDirectory.") var program: String

    func run() throws {
        guard let spec = ProgramTable.program(named: program) else {
            usageFailure("unknown program \(program); choose one of: \(ProgramTable.all.map(\.name).joined(separator: ", "))")
        }
        let target = Paths.absolute(Paths.expandHome(directory), base: FileManager.default.currentDirectoryPath)
        do {
            let written = try Scaffold.write(program: spec, directory: target)
            for path in written { print("created \(path)") }
            print("next: fill in \(target)/openmsi.env, then run: ezmsi doctor --deployment \(ShellWords.quote(target))")
        } catch let e as InputError { inputFailure(e) }
    }
}

// A peer that closes a socket or pipe early (docker, a broker, a reader of our output) must give an error, not
// kill ezmsi with SIGPIPE (seen once in CI as `ezmsi fix` exiting by signal 13).
signal(SIGPIPE, SIG_IGN)

// ArgumentParser exits 64 on usage errors; ezmsi's contract is 2.
do {
    var command = try Ezmsi.parseAsRoot()
    try command.run()
} catch {
    let code = Ezmsi.exitCode(for: error)
    if code == .validationFailure {
        FileHandle.standardError.write(Data((Ezmsi.fullMessage(for: error) + "\n").utf8))
        exit(Exit.usage)
    }
    Ezmsi.exit(withError: error)
}
