/// The outcome of one probe. The raw values are part of the public JSON contract.
public enum Status: String, Codable, CaseIterable, Comparable, Sendable {
    case pass, warn, fail, skip, blocked, error
    /// Every warn/fail finding is covered by an unexpired acknowledgement (see Acknowledgements.swift).
    case acknowledged

    /// Severity order used to pick a probe's status from its findings and the report's overall status.
    var rank: Int {
        switch self {
        case .skip: return 0
        case .pass: return 1
        case .acknowledged: return 2
        case .warn: return 3
        case .fail: return 4
        case .blocked: return 5
        case .error: return 6
        }
    }

    public static func < (lhs: Status, rhs: Status) -> Bool { lhs.rank < rhs.rank }

    /// Whether this status makes the doctor's exit code 1.
    public func isFailure(strict: Bool) -> Bool {
        switch self {
        case .fail, .blocked, .error: return true
        case .warn: return strict
        case .pass, .skip, .acknowledged: return false
        }
    }
}

/// How serious one finding is. A probe's status is the worst severity among its findings.
public enum Severity: String, Codable, Sendable {
    case info, warn, fail

    var status: Status {
        switch self {
        case .info: return .pass
        case .warn: return .warn
        case .fail: return .fail
        }
    }
}
