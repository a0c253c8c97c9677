import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

/// `ezmsi generate FORM`: the deployment the doctor checked, written as another deployment form.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the checked deployment as a custom image, a systemd unit, a compose file or a Windows script.",
        discussion: """
            Each form starts the same container `ezmsi run` would (same image, user, env-file, mounts, network, TZ). \
            Like `ezmsi command`, it refuses while the doctor fails, unless --force.
            """,
        subcommands: [GenerateCustomImage.self, GenerateSystemd.self, GenerateCompose.self, GenerateWindows.self])
}
