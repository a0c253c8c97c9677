import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

struct GenerateCompose: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compose",
        abstract: "Write a compose file with the same container settings.",
        discussion: """
            Compose reads env_file with dotenv rules, unlike docker run --env-file; the doctor's env.compose probe \
            warns where the same env-file would mean different values.
            """)

    @OptionGroup var deployment: DeploymentOptions
    @OptionGroup var form: SingleFileFormOptions

    func run() throws { try form.write(deployment, ComposeFile.render) }
}
