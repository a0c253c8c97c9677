import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

struct ProbeSelection: ParsableArguments {
    @Option(help: "Run only these probes: ids or prefixes (docker.), comma-separated or repeated.")
    var only: [String] = []
    @Option(help: "Skip these probes: ids or prefixes, comma-separated or repeated.")
    var skip: [String] = []
    @OptionGroup var probeTimeout: ProbeTimeout
    var timeout: Double { probeTimeout.timeout }
    @Option(help: "Seconds the whole run may take; unfinished probes are then reported as error.")
    var deadline: Double?
    @Flag(help: "Skip the probes that need the network (the broker), saying so.")
    var offline = false
    @Option(name: .customLong("slow-after"), help: "Add a notice to probes slower than this many seconds.")
    var slowAfter: Double = 5

    func validate() throws {
        if let deadline { guard deadline > 0, deadline <= 86_400 else { throw ValidationError("--deadline must be between 0 and 86400 seconds") } }
        guard slowAfter > 0 else { throw ValidationError("--slow-after must be positive") }
    }

    var options: RunOptions {
        func split(_ list: [String]) -> [String] { list.flatMap { $0.split(separator: ",").map(String.init) } }
        return RunOptions(timeout: timeout, only: split(only), skip: split(skip), offline: offline, deadline: deadline,
                          slowAfter: slowAfter)
    }
}
