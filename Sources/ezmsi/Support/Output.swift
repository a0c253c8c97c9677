import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

/// Output written in one place so that secrets are scrubbed from everything ezmsi prints: every byte the CLI writes
/// goes through here (`HouseRulesTests` keeps it so).
struct Output {
    let scrubber: Secrets.Scrubber

    /// Before the deployment's secrets are known (usage errors, files that could not be read): nothing to cut yet.
    static let beforeFacts = Output(scrubber: Secrets.Scrubber(secrets: []))

    func stdout(_ text: String) { FileHandle.standardOutput.write(Data(scrubber.scrub(text).utf8)) }
    func stderr(_ text: String) { FileHandle.standardError.write(Data(scrubber.scrub(text).utf8)) }
}
