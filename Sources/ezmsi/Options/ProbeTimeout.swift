import ArgumentParser

/// `--timeout`: how long each probe may take, the same option with the same default in every command that runs probes.
struct ProbeTimeout: ParsableArguments {
    @Option(help: "Seconds each probe may take (0 < S <= 3600).")
    var timeout: Double = 10

    func validate() throws {
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be between 0 and 3600 seconds") }
    }
}
