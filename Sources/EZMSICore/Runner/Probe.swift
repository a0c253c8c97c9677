/// A probe: a small type that describes itself and judges the facts.
/// Like kubeadm's preflight checkers, the interface is a name and a check; like SwiftLint rules, each probe carries
/// examples that one generic test runs for every probe.
public protocol Probe: Sendable {
    /// Stable id, e.g. `docker.daemon`. Part of the public contract (`--only`, `--skip`, JSON).
    var id: String { get }
    var title: String { get }
    /// Why the probe exists: what breaks in a real deployment when it fails.
    var rationale: String { get }
    /// Probes that must not be `fail`, `blocked` or `error` for this one to run.
    var dependsOn: [String] { get }
    /// Inputs that trigger and do not trigger the probe.
    var examples: [ProbeExample] { get }

    /// Talks to something beyond this machine (a broker): `skip` under `--offline`.
    var needsNetwork: Bool { get }

    func check(_ facts: Facts) throws -> ProbeOutcome
}

extension Probe {
    public var needsNetwork: Bool { false }
}

/// A described input and the status the probe must give it.
public struct ProbeExample: Sendable {
    public var name: String
    public var expected: Status
    /// A finding code that must be present (for triggering examples).
    public var expectedCode: String?
    public var facts: @Sendable () -> Facts

    public init(_ name: String, expect expected: Status, code: String? = nil, facts: @escaping @Sendable () -> Facts) {
        self.name = name
        self.expected = expected
        self.expectedCode = code
        self.facts = facts
    }
}
