import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

/// Output written in one place so that secrets are scrubbed from everything ezmsi prints.
struct Output {
    let scrubber: Secrets.Scrubber

    func stdout(_ text: String) { FileHandle.standardOutput.write(Data(scrubber.scrub(text).utf8)) }
    func stderr(_ text: String) { FileHandle.standardError.write(Data(scrubber.scrub(text).utf8)) }
}
