/// What a probe returns: its findings and a one-line summary. The runner turns it into a `CheckResult`.
public struct ProbeOutcome: Sendable {
    public var message: String
    public var findings: [Finding]
    public var fixes: [FixAction]
    /// Facts worth showing (versions, ids). Values must never be secrets.
    public var details: [String: String]
    /// Set when the probe does not apply (e.g. no folder configured).
    public var skipped: Bool
    /// Overrides the status derived from the findings (e.g. `error` when two oracles disagree).
    public var forcedStatus: Status?

    public init(_ message: String, findings: [Finding] = [], fixes: [FixAction] = [], details: [String: String] = [:],
                skipped: Bool = false) {
        self.message = message
        self.findings = findings
        self.fixes = fixes
        self.details = details
        self.skipped = skipped
    }

    public static func skip(_ message: String) -> ProbeOutcome { ProbeOutcome(message, skipped: true) }

    /// Worst severity among the findings; `pass` when there are none.
    public var status: Status {
        if let forcedStatus { return forcedStatus }
        if skipped { return .skip }
        return findings.map(\.severity.status).max() ?? .pass
    }
}

/// One row of the report. Field names are the public JSON contract (see README, "JSON report").
public struct CheckResult: Codable, Sendable {
    public var id: String
    public var title: String
    public var status: Status
    public var message: String
    public var durationMs: Double
    public var findings: [Finding]
    /// The remediation of the first failing finding, repeated here so that simple consumers need not dig.
    public var remediation: Remediation?
    public var blockedBy: [String]
    public var fixes: [FixAction]
    public var details: [String: String]

    public init(id: String, title: String, status: Status, message: String, durationMs: Double,
                findings: [Finding] = [], remediation: Remediation? = nil, blockedBy: [String] = [],
                fixes: [FixAction] = [], details: [String: String] = [:]) {
        self.id = id
        self.title = title
        self.status = status
        self.message = message
        self.durationMs = durationMs
        self.findings = findings
        self.remediation = remediation
        self.blockedBy = blockedBy
        self.fixes = fixes
        self.details = details
    }
}
