import EZMSICore
import Foundation

/// Exit codes are part of the public contract (README, "Exit codes").
enum Exit {
    static let ok: Int32 = 0
    static let failed: Int32 = 1      // a probe is fail/blocked/error (or warn with --strict); `command` refused
    static let usage: Int32 = 2       // the command line is wrong
    static let input: Int32 = 3       // a file ezmsi needs before any probe is unusable (tracker.json, init target)
}

/// How a command stops short. Commands throw these; the entry point (`main.swift`) prints what is still to say and
/// exits with the documented code, so no command exits by itself.
enum CLIError: Error {
    /// The command line is wrong (exit 2); nil: the message was printed already.
    case usage(String?)
    /// A file ezmsi needs is unusable before anything runs (exit 3): named with its line and the fix.
    case input(InputError)
    /// Refused, the reason printed already (exit 3): a system folder, an untrusted or damaged journal, nothing to undo.
    case refused
    /// Failed, what failed printed already (exit 1).
    case failed
    /// The exit code a report or a status computed (0 or 1).
    case exit(Int32)

    /// Prints what is left to say (stderr) and returns the exit code.
    func report() -> Int32 {
        switch self {
        case .usage(let message):
            if let message { Output.beforeFacts.stderr("Error: \(message)\n") }
            return Exit.usage
        case .input(let error):
            // File names and quoted input are outside text: each line with its control characters visible.
            Output.beforeFacts.stderr("ezmsi: \(VisibleText.escapeEachLine(error.description))\n")
            return Exit.input
        case .refused: return Exit.input
        case .failed: return Exit.failed
        case .exit(let code): return code
        }
    }
}
