import EZMSICore

/// The docker client must be on PATH: it is what finally runs the container.
public struct DockerCLI: Probe {
    public let id = "docker.cli"
    public let title = "Docker client on PATH"
    public let rationale = "ezmsi hands off a `docker run` command; without the docker client nothing can run it."
    public let dependsOn: [String] = []
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("docker on PATH", expect: .pass) { ExampleFacts.make() },
            ProbeExample("docker missing", expect: .fail, code: "docker-cli-missing") {
                ExampleFacts.make(cli: DockerCLIFact(path: nil, version: nil, error: "docker is not on PATH"))
            },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        let cli = facts.dockerCLI.get()
        guard let path = cli.path else {
            return ProbeOutcome("the docker client is not on PATH", findings: [.fail(
                "docker-cli-missing", "`docker` was not found on PATH",
                evidence: Evidence(expected: "an executable named docker on PATH", actual: facts.environment["PATH"] ?? "PATH unset"),
                fix: Remediation("Install Docker Engine (https://docs.docker.com/engine/install/) or the distribution package",
                                 commands: ["sudo apt-get install -y docker.io"]))])
        }
        guard let version = cli.version else {
            return ProbeOutcome("\(path) does not run", findings: [.fail(
                "docker-cli-broken", "\(path) is on PATH but `docker --version` failed: \(cli.error ?? "unknown error")",
                fix: Remediation("Reinstall the docker client"))])
        }
        return ProbeOutcome("Docker client \(version) at \(path)", details: ["path": path, "version": version])
    }
}
