import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

struct GenerateOptions: ParsableArguments {
    @Flag(help: "Generate even though the doctor fails.") var force = false
    @Flag(help: "Replace existing files whose content differs.") var overwrite = false
    @OptionGroup var probeTimeout: ProbeTimeout
    var timeout: Double { probeTimeout.timeout }
}

/// The options of a form that is one file (systemd unit, compose file, Windows script), and the one way to write it.
struct SingleFileFormOptions: ParsableArguments {
    @OptionGroup var generate: GenerateOptions
    @Option(name: .shortAndLong, help: "Write to this file (default: print it).") var output: String?
    @Option(name: .customLong("custom-image"), help: "Run this custom image instead.") var customImage: String?

    /// Runs the doctor gate, renders the form from the checked deployment and prints or writes it.
    func write(_ deployment: DeploymentOptions, _ render: (FormContext) -> String) throws {
        let gate = try GatedDeployment.check(deployment, timeout: generate.timeout, force: generate.force, action: "generating")
        try emit(render(formContext(gate, customImage: customImage)), to: output, mode: 0o644, gate: gate,
                 overwrite: generate.overwrite)
    }
}
