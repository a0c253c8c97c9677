import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

struct Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the docker run command for the deployment (after the doctor passes).",
        discussion: "Refuses (exit 1, naming the failing probes) while the doctor fails, unless --force.")

    @OptionGroup var deployment: DeploymentOptions
    @Option(help: "daemon (-d, restart policy), foreground (attached, q+Enter stops), or shell (bash in the same setup).")
    var mode: RunMode = .daemon
    @Option(help: "human (one shell line) or json (argv).") var format: OutputFormat = .human
    @Flag(help: "Print the command even though the doctor fails.") var force = false
    @OptionGroup var probeTimeout: ProbeTimeout
    var timeout: Double { probeTimeout.timeout }

    func run() throws {
        let resolved: Deployment
        do { resolved = try deployment.resolve() } catch let e as InputError { throw CLIError.input(e) }
        let (report, facts) = try diagnose(resolved, selection: RunOptions(timeout: timeout))
        let out = Output(scrubber: Secrets.scrubber(for: facts))
        let failing = report.failingIDs
        if !failing.isEmpty && !force {
            out.stderr("ezmsi: not printing a command that would fail; failing checks: \(failing.joined(separator: ", "))\n" +
                       "  run `ezmsi doctor` for details, or add --force\n")
            throw CLIError.failed
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
