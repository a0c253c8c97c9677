import Foundation

/// The doctor's report. Field names and status strings are the public contract: change them only together with a
/// `schemaVersion` bump and a README note.
public struct Report: Codable, Sendable {
    public static let schemaVersion = 2

    public struct Tool: Codable, Sendable {
        public var name: String
        public var version: String
    }

    public struct Summary: Codable, Sendable {
        public var counts: [String: Int]
        /// The worst status (`pass` when nothing ran); `warn` counts as failure only with `--strict`.
        public var status: Status
        public var exitCode: Int32
        public var strict: Bool
    }

    public var schemaVersion: Int
    public var tool: Tool
    public var startedAt: String
    public var durationMs: Double
    public var deployment: DeploymentSummary
    public var summary: Summary
    public var checks: [CheckResult]

    public init(checks: [CheckResult], deployment: Deployment, startedAt: Date, durationMs: Double, strict: Bool) {
        schemaVersion = Self.schemaVersion
        tool = Tool(name: "ezmsi", version: EZMSI.version)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        self.startedAt = formatter.string(from: startedAt)
        self.durationMs = durationMs
        self.deployment = DeploymentSummary(deployment)
        var counts: [String: Int] = [:]
        for status in Status.allCases { counts[status.rawValue] = 0 }
        for check in checks { counts[check.status.rawValue, default: 0] += 1 }
        let worst = checks.map(\.status).max() ?? .pass
        let failed = checks.contains { $0.status.isFailure(strict: strict) }
        summary = Summary(counts: counts, status: worst == .skip ? .pass : worst, exitCode: failed ? 1 : 0, strict: strict)
        self.checks = checks
    }

    public var failingIDs: [String] { checks.filter { $0.status.isFailure(strict: summary.strict) }.map(\.id) }
}

/// The deployment as shown in reports: paths and settings, never secrets (positional secrets are masked).
public struct DeploymentSummary: Codable, Sendable {
    public var directory: String
    public var envFile: String
    public var configFile: String
    public var dataFolder: String?
    public var image: String
    public var user: String?
    public var mounts: [Mount]
    public var command: [String]
    public var containerName: String
    public var sources: [String: String]

    init(_ d: Deployment) {
        directory = d.directory
        envFile = d.envFile
        configFile = d.configFile
        dataFolder = d.dataFolder
        image = d.image
        user = d.user
        mounts = d.mounts
        command = Secrets.maskCommand(d.command)
        containerName = d.containerName
        sources = d.sources
    }
}

public enum EZMSI {
    public static let version = "0.1.0"
}
