import Foundation

/// A container as `docker container inspect` describes it.
public struct ContainerState: Codable, Equatable, Sendable {
    public var id: String
    public var name: String
    /// created, running, restarting, paused, exited, dead.
    public var status: String
    public var running: Bool
    public var startedAt: String?
    public var finishedAt: String?
    public var exitCode: Int
    public var restartCount: Int
    public var oomKilled: Bool
    /// The image id the container was created from (it keeps it when the tag moves on).
    public var imageID: String
    /// Its entrypoint and arguments, as docker keeps them: never shown (a Girder API key is one of them), only used
    /// to cut the container's secret arguments out of its log lines.
    public var command: [String] = []

    enum CodingKeys: String, CodingKey {
        case id, name, status, running, startedAt, finishedAt, exitCode, restartCount, oomKilled, imageID
    }
}

/// The few things `run` and `status` ask the docker CLI. The CLI, not the Engine API, because it is what the user's
/// own commands use: the same endpoint, context, TLS settings and credentials.
public struct DockerCLIClient: Sendable {
    public var path: String
    public var environment: [String: String]
    public var timeout: Double

    public init(path: String, environment: [String: String], timeout: Double = 30) {
        self.path = path
        self.environment = environment
        self.timeout = timeout
    }

    public func run(_ arguments: [String], timeout: Double? = nil) throws -> ProcessOutput {
        try Subprocess.run(path, arguments, environment: environment, timeout: timeout ?? self.timeout)
    }

    /// nil when no such container exists.
    public func container(_ reference: String) throws -> ContainerState? {
        let out = try run(["container", "inspect", "--format", "{{json .}}", reference])
        if out.status != 0 {
            if out.stderr.lowercased().contains("no such") { return nil }
            throw DockerCLIError(command: "docker container inspect", message: out.stderr)
        }
        guard let json = (try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))) as? [String: Any] else {
            throw DockerCLIError(command: "docker container inspect", message: "no JSON in its answer")
        }
        let state = json["State"] as? [String: Any] ?? [:]
        func time(_ key: String) -> String? {
            guard let t = state[key] as? String, !t.hasPrefix("0001-01-01") else { return nil }
            return t
        }
        return ContainerState(
            id: json["Id"] as? String ?? "?",
            name: (json["Name"] as? String ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "/")),
            status: state["Status"] as? String ?? "?",
            running: state["Running"] as? Bool ?? false,
            startedAt: time("StartedAt"), finishedAt: time("FinishedAt"),
            exitCode: state["ExitCode"] as? Int ?? 0,
            restartCount: json["RestartCount"] as? Int ?? 0,
            oomKilled: state["OOMKilled"] as? Bool ?? false,
            imageID: json["Image"] as? String ?? "?",
            command: ((json["Config"] as? [String: Any])?["Entrypoint"] as? [String] ?? [])
                + ((json["Config"] as? [String: Any])?["Cmd"] as? [String] ?? []))
    }

    /// The image's id and, when it came from a registry, its `repo@sha256:` digest; nil when it is not here.
    public func image(_ reference: String) throws -> (id: String, digest: String?)? {
        let out = try run(["image", "inspect", "--format", "{{json .}}", reference])
        if out.status != 0 {
            if out.stderr.lowercased().contains("no such") { return nil }
            throw DockerCLIError(command: "docker image inspect", message: out.stderr)
        }
        guard let json = (try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))) as? [String: Any],
              let id = json["Id"] as? String else {
            throw DockerCLIError(command: "docker image inspect", message: "no JSON in its answer")
        }
        return (id, Self.digest(of: reference, among: json["RepoDigests"] as? [String] ?? []))
    }

    /// The `repo@sha256:…` among an image's RepoDigests that belongs to `reference`'s repository (else the first).
    public static func digest(of reference: String, among digests: [String]) -> String? {
        let name = repositoryName(reference.split(separator: "@").first.map(String.init) ?? reference)
        return digests.first { repositoryName($0.split(separator: "@").first.map(String.init) ?? "") == name }
            ?? digests.first
    }

    /// `openmsi/openmsistream:latest` → `openmsi/openmsistream` (a registry port's colon is kept).
    static func repositoryName(_ reference: String) -> String {
        guard let colon = reference.lastIndex(of: ":"), !reference[colon...].contains("/") else { return reference }
        return String(reference[..<colon])
    }

    /// The last `count` lines of the container's output, stdout and stderr merged in time order.
    /// docker trims trailing zeros of the fraction (`.5Z`, `.123456789Z`); pad it to nine digits so that text order is
    /// time order.
    static func sortableTimestamp(_ stamp: String) -> String {
        guard let dot = stamp.firstIndex(of: "."), let end = stamp[dot...].firstIndex(where: { !$0.isNumber && $0 != "." }) else {
            return stamp
        }
        let fraction = stamp[stamp.index(after: dot)..<end]
        return String(stamp[..<dot]) + "." + fraction + String(repeating: "0", count: max(0, 9 - fraction.count)) + stamp[end...]
    }

    public func logs(_ reference: String, count: Int) throws -> [String] {
        let out = try run(["logs", "--timestamps", "--tail", String(count), reference])
        guard out.status == 0 else { throw DockerCLIError(command: "docker logs", message: out.stderr) }
        // Each line starts with an RFC 3339 timestamp; sort by it, then drop it.
        let lines = (out.stdout.split(separator: "\n") + out.stderr.split(separator: "\n")).map(String.init)
        let stamped = lines.map { line -> (String, String) in
            guard let space = line.firstIndex(of: " ") else { return ("", line) }
            return (Self.sortableTimestamp(String(line[..<space])), String(line[line.index(after: space)...]))
        }
        return stamped.enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }
            .suffix(count).map { $0.element.1 }
    }
}

public struct DockerCLIError: Error, CustomStringConvertible, Sendable {
    public var command: String
    public var message: String
    public var description: String {
        "\(command) failed: \(message.trimmingCharacters(in: .whitespacesAndNewlines))"
    }
}
