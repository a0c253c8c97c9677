import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

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
        do { resolved = try deployment.resolve() } catch let e as InputError { throw CLIError.input(e) }
        let (report, facts): (Report, Facts)
        do {
            (report, facts) = try diagnose(resolved, selection: selection.options, acknowledgementsFile: acknowledgements)
        } catch let e as UnknownProbeSelector {
            throw CLIError.usage(e.description)
        }
        let bundle = SupportBundleBuilder.build(report: report, facts: facts)
        let out = Output(scrubber: Secrets.scrubber(for: facts))
        // The scrubber is the last line of defence here too: nothing secret reaches the file.
        let text = out.scrubber.scrub(JSONRenderer.render(bundle))
        guard let output else { out.stdout(text); return }
        let path = Paths.absolute(Paths.expandHome(output), base: FileManager.default.currentDirectoryPath)
        do { try AtomicFile.write(path: path, contents: Array(text.utf8), mode: 0o600) } catch {
            out.stderr("ezmsi: \(error)\n")
            throw CLIError.failed
        }
        out.stderr("wrote \(path) (\(bundle.redaction.redactedCount) values withheld); doctor: \(report.summary.status.rawValue)\n")
    }
}
