import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

/// Runs the doctor and returns the report with the facts it used. The deployment folder's acknowledgements apply
/// (an unusable acknowledgements file stops ezmsi with exit 3).
func diagnose(_ deployment: Deployment, selection: RunOptions, prove: Bool = false, strict: Bool = false,
              acknowledgementsFile: String? = nil, prepare: (Facts) -> Void = { _ in }) throws -> (Report, Facts) {
    let acknowledgements = try loadAcknowledgements(deployment, file: acknowledgementsFile)
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
            Output(scrubber: Secrets.scrubber(for: facts)).stderr(
                "ezmsi: note: \(VisibleText.escape(acknowledgements.path)):\(entry.line): acknowledges \(what), which found nothing to acknowledge; remove it\n")
        }
    }
    let ms = Double(DispatchTime.now().uptimeNanoseconds - clock.uptimeNanoseconds) / 1_000_000
    return (Report(checks: results, deployment: deployment, startedAt: started, durationMs: ms, strict: strict), facts)
}

func loadAcknowledgements(_ deployment: Deployment, file: String?) throws -> Acknowledgements? {
    let path = file.map { Paths.absolute(Paths.expandHome($0), base: FileManager.default.currentDirectoryPath) }
        ?? deployment.directory + "/" + Acknowledgements.fileName
    do {
        return try Acknowledgements.load(path, knownProbes: Catalogue.all.map(\.id))
    } catch let e as InputError {
        throw CLIError.input(e)
    } catch {
        throw CLIError.input(InputError(file: path, line: nil, message: "\(error)", fix: "correct or remove the file"))
    }
}
