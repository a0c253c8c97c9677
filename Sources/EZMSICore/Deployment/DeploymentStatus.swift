import Foundation

/// `ezmsi status`: the recorded deployment's container as it is now, and what changed since it was started.
public struct DeploymentStatus: Encodable, Sendable {
    public static let schemaVersion = 1

    /// One-word verdict: running, restarting, stopped, missing.
    public var state: String
    public var container: ContainerState?
    public var drift: [Drift]
    public var logs: [String]
    public var record: DeploymentRecord

    public struct Drift: Codable, Equatable, Sendable {
        /// image, config or env-file.
        public var what: String
        public var detail: String
    }

    /// 0: running as recorded; 1: not running, or something drifted.
    public var exitCode: Int32 { state == "running" && drift.isEmpty ? 0 : 1 }

    enum CodingKeys: String, CodingKey { case schemaVersion, state, container, drift, logs, record }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.schemaVersion, forKey: .schemaVersion)
        try c.encode(state, forKey: .state)
        try c.encode(container, forKey: .container)
        try c.encode(drift, forKey: .drift)
        try c.encode(logs, forKey: .logs)
        try c.encode(record, forKey: .record)
    }

    /// Compares the record with what docker and the disk say now.
    public static func evaluate(record: DeploymentRecord, container: ContainerState?, currentImageID: String?,
                                logs: [String]) -> DeploymentStatus {
        let state: String
        switch container?.status {
        case nil: state = "missing"
        case "running"?: state = "running"
        case "restarting"?: state = "restarting"
        default: state = "stopped"
        }
        var drift: [Drift] = []
        if let recorded = record.imageID {
            if let container, container.imageID != recorded {
                drift.append(Drift(what: "image", detail: "the container runs image \(short(container.imageID)), not the recorded \(short(recorded))"))
            }
            if let now = currentImageID, now != recorded {
                drift.append(Drift(what: "image", detail: "\(record.image) now points to \(short(now)); the container was started from \(short(recorded)) (restart it with `ezmsi run --replace` to use the new image)"))
            } else if currentImageID == nil {
                drift.append(Drift(what: "image", detail: "\(record.image) is no longer on this machine"))
            }
        }
        if let config = record.config, let why = config.drift() { drift.append(Drift(what: "config", detail: why)) }
        if let env = record.envFile, let why = env.drift() { drift.append(Drift(what: "env-file", detail: why)) }
        return DeploymentStatus(state: state, container: container, drift: drift, logs: logs, record: record)
    }

    static func short(_ id: String) -> String {
        let hex = id.hasPrefix("sha256:") ? id.dropFirst(7) : Substring(id)
        return String(hex.prefix(12))
    }

    /// For people. Every value from outside (names, paths, docker's states, log lines) is shown visibly
    /// (`VisibleText`), so a container name or a log line can neither recolour the terminal nor forge a line.
    public func renderHuman(color: Bool) -> String {
        func paint(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
        let v = VisibleText.escape
        var out = ""
        let name = v(record.containerName)
        switch state {
        case "running": out += paint("running", "32") + "  \(name)"
        case "restarting": out += paint("restarting", "33") + "  \(name)"
        case "missing": out += paint("missing", "31") + "  \(name): no such container"
        default: out += paint("stopped", "31") + "  \(name)"
        }
        out += "\n"
        if let c = container {
            out += "  container  \(v(Self.short(c.id))) (\(v(c.status)))\n"
            if let started = c.startedAt { out += "  since      \(v(started))\n" }
            if !c.running, let finished = c.finishedAt { out += "  exited     \(v(finished)) with code \(c.exitCode)\(c.oomKilled ? " (out of memory)" : "")\n" }
            out += "  restarts   \(c.restartCount)\n"
        }
        out += "  image      \(v(record.image))" + (record.imageID.map { " (\(v(Self.short($0))))" } ?? "") + "\n"
        out += "  started by ezmsi run at \(v(record.startedAt)) on \(v(record.host.hostname))\n"
        if drift.isEmpty {
            out += "  drift      none: image, config and env-file are as recorded\n"
        } else {
            for d in drift { out += "  " + paint("drift", "33") + "      \(v(d.what)): \(v(d.detail))\n" }
        }
        if !logs.isEmpty {
            out += "  last \(logs.count) log lines:\n"
            for line in logs { out += "    │ \(v(line))\n" }
        }
        return out
    }
}
