import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

struct GenerateSystemd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "systemd",
        abstract: "Write a systemd unit that runs the container as a Linux service.",
        discussion: "Prints the unit, or writes it with --output; the install commands are in its header.")

    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var form: SingleFileFormOptions

    func run() throws { try form.write(deployment, SystemdUnit.render) }
}
