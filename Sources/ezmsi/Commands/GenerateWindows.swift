import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

struct GenerateWindows: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "windows",
        abstract: "Write a PowerShell script that starts the container on Docker Desktop for Windows.",
        discussion: "Paths in the deployment folder become relative to the script; WSL paths /mnt/c/… become C:\\….")

    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var form: SingleFileFormOptions

    func run() throws { try form.write(deployment, WindowsScript.render) }
}
