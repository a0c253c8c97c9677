import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

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
        do { resolved = try deployment.resolve() } catch let e as InputError { throw CLIError.input(e) }
        var (report, facts): (Report, Facts)
        let giveUp = Date().addingTimeInterval(retryUntil ?? 0)
        var attempt = 1
        while true {
            do {
                (report, facts) = try diagnose(resolved, selection: selection.options, prove: prove, strict: strict,
                                               acknowledgementsFile: acknowledgements)
            } catch let e as UnknownProbeSelector {
                throw CLIError.usage(e.description)
            }
            guard retryUntil != nil, report.summary.exitCode != 0, Date().addingTimeInterval(retryEvery) < giveUp else { break }
            Output(scrubber: Secrets.scrubber(for: facts)).stderr(
                "ezmsi: attempt \(attempt): failing: \(report.failingIDs.joined(separator: ", ")); retrying in \(retryEvery) s\n")
            Thread.sleep(forTimeInterval: retryEvery)
            attempt += 1
        }
        if retryUntil != nil {
            Output.beforeFacts.stderr("ezmsi: \(report.summary.exitCode == 0 ? "passed" : "still failing") after \(attempt) attempt\(attempt == 1 ? "" : "s")\n")
        }
        let out = Output(scrubber: Secrets.scrubber(for: facts))
        out.stdout(format.render(report, scrubber: out.scrubber))  // scrubbed twice: DoctorFormat.swift
        throw CLIError.exit(report.summary.exitCode)
    }
}
