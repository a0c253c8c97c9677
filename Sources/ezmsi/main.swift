import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

struct Ezmsi: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ezmsi",
        abstract: "Get OpenMSIStream programs running in Docker right the first time.",
        discussion: """
            Start with `ezmsi doctor` in a deployment folder (openmsi.env, config.config, tracker.json), then \
            `ezmsi run` (or run what `ezmsi command` prints) and `ezmsi status`. `ezmsi generate` writes a custom \
            image, a systemd unit, a compose file or a Windows script for the same deployment. \
            `ezmsi init DIR --program NAME` creates a deployment folder.
            """,
        version: EZMSI.version,
        subcommands: [Doctor.self, Checks.self, Command.self, Run.self, Status.self, Generate.self, SupportReport.self,
                      Fix.self, Undo.self, Init.self])
}

// A peer that closes a socket or pipe early (docker, a broker, a reader of our output) must give an error, not
// kill ezmsi with SIGPIPE (seen once in CI as `ezmsi fix` exiting by signal 13).
signal(SIGPIPE, SIG_IGN)
// The one place where ezmsi exits: errors thrown by the commands are mapped to the documented codes here.
// ArgumentParser exits 64 on usage errors; ezmsi's contract is 2.
do {
    var command = try Ezmsi.parseAsRoot()
    try command.run()
} catch let e as CLIError {
    exit(e.report())
} catch {
    let code = Ezmsi.exitCode(for: error)
    if code == .validationFailure {
        Output.beforeFacts.stderr(Ezmsi.fullMessage(for: error) + "\n")
        exit(Exit.usage)
    }
    Ezmsi.exit(withError: error)
}
