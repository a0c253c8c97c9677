/// Where a problem sits: a file and, when known, its 1-based line.
public struct Location: Codable, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int?

    public init(file: String, line: Int? = nil) {
        self.file = file
        self.line = line
    }

    public var description: String { line.map { "\(file):\($0)" } ?? file }
}

/// What was expected and what was found.
public struct Evidence: Codable, Equatable, Sendable {
    public var expected: String?
    public var actual: String?

    public init(expected: String? = nil, actual: String? = nil) {
        self.expected = expected
        self.actual = actual
    }
}

/// How to make a problem go away: a sentence, and the exact commands when there are some.
public struct Remediation: Codable, Equatable, Sendable {
    public var text: String
    public var commands: [String]

    public init(_ text: String, commands: [String] = []) {
        self.text = text
        self.commands = commands
    }
}

/// One observation of a probe.
public struct Finding: Codable, Equatable, Sendable {
    public var severity: Severity
    /// Stable, machine-readable name of the rule that produced this finding (e.g. `quoted-value`).
    public var code: String
    public var message: String
    public var evidence: Evidence?
    public var location: Location?
    public var remediation: Remediation?
    /// Set when an acknowledgements file accepts this finding (see `Acknowledgements`).
    public var acknowledgement: AcknowledgementNote?

    public init(_ severity: Severity, _ code: String, _ message: String, evidence: Evidence? = nil,
                location: Location? = nil, remediation: Remediation? = nil) {
        self.severity = severity
        self.code = code
        self.message = message
        self.evidence = evidence
        self.location = location
        self.remediation = remediation
    }

    public static func fail(_ code: String, _ message: String, evidence: Evidence? = nil, at location: Location? = nil,
                            fix: Remediation? = nil) -> Finding {
        Finding(.fail, code, message, evidence: evidence, location: location, remediation: fix)
    }

    public static func warn(_ code: String, _ message: String, evidence: Evidence? = nil, at location: Location? = nil,
                            fix: Remediation? = nil) -> Finding {
        Finding(.warn, code, message, evidence: evidence, location: location, remediation: fix)
    }

    public static func info(_ code: String, _ message: String, evidence: Evidence? = nil,
                            at location: Location? = nil) -> Finding {
        Finding(.info, code, message, evidence: evidence, location: location)
    }
}

/// Who accepted a finding, why, and until when.
public struct AcknowledgementNote: Codable, Equatable, Sendable {
    public var reason: String
    public var owner: String
    /// `YYYY-MM-DD`; the acknowledgement holds through that day (UTC).
    public var expires: String
    public var expired: Bool
    /// The acknowledgements file and the line of the entry.
    public var source: Location

    public init(reason: String, owner: String, expires: String, expired: Bool, source: Location) {
        self.reason = reason
        self.owner = owner
        self.expires = expires
        self.expired = expired
        self.source = source
    }
}

/// An action ezmsi can take (or print) to repair what a probe found.
public struct FixAction: Codable, Equatable, Sendable {
    public var id: String
    public var title: String
    /// The equivalent shell commands, safe to copy.
    public var commands: [String]
    /// The privilege it needs, e.g. "none", "docker group", "owner of the folder or root".
    public var privilege: String

    public init(id: String, title: String, commands: [String], privilege: String = "none") {
        self.id = id
        self.title = title
        self.commands = commands
        self.privilege = privilege
    }
}
