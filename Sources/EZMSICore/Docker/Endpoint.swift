import Foundation

/// Which daemon the docker CLI would talk to, and why.
public struct DockerEndpoint: Equatable, Sendable, Codable {
    /// e.g. `unix:///var/run/docker.sock`, `tcp://host:2376`, `ssh://user@host`.
    public var host: String
    /// The context the CLI would use (`default` when DOCKER_HOST or nothing else decides).
    public var context: String
    /// What decided: `DOCKER_HOST`, `DOCKER_CONTEXT`, `config.json currentContext`, `default`.
    public var source: String

    /// The socket path for `unix://` endpoints.
    public var unixSocketPath: String? {
        guard host.hasPrefix("unix://") else { return nil }
        let path = String(host.dropFirst("unix://".count))
        return path.isEmpty ? "/var/run/docker.sock" : path
    }

    public init(host: String, context: String, source: String) {
        self.host = host
        self.context = context
        self.source = source
    }
}

public enum EndpointError: Error, Equatable, Sendable, CustomStringConvertible {
    case contextNotFound(name: String, metaPath: String)
    case unreadableContext(name: String, why: String)
    case invalidHost(String)

    public var description: String {
        switch self {
        case let .contextNotFound(name, metaPath):
            return "context \"\(name)\" not found: \(metaPath) does not exist"
        case let .unreadableContext(name, why):
            return "context \"\(name)\" cannot be read: \(why)"
        case let .invalidHost(h):
            return "invalid docker host \"\(h)\": expected unix://, tcp://, ssh://, fd:// or npipe://"
        }
    }
}

/// Resolves the endpoint exactly as docker/cli does (`resolveContextName` + `ParseHost`):
/// DOCKER_HOST beats DOCKER_CONTEXT, which beats `currentContext` in `$DOCKER_CONFIG/config.json`; the `default`
/// context is never on disk and means DOCKER_HOST or the default socket.
public enum EndpointResolver {
    public static func resolve(environment env: [String: String], home: String?) -> Result<DockerEndpoint, EndpointError> {
        if let host = env["DOCKER_HOST"], !host.isEmpty {
            return parseHost(host).map { DockerEndpoint(host: $0, context: "default", source: "DOCKER_HOST") }
        }
        let configDir = env["DOCKER_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? "\(home ?? "/root")/.docker"
        var name: String?
        var source = "default"
        if let c = env["DOCKER_CONTEXT"], !c.isEmpty {
            name = c; source = "DOCKER_CONTEXT"
        } else if let data = FileManager.default.contents(atPath: "\(configDir)/config.json"),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let c = json["currentContext"] as? String, !c.isEmpty {
            name = c; source = "config.json currentContext"
        }
        guard let name, name != "default" else {
            return .success(DockerEndpoint(host: "unix:///var/run/docker.sock", context: "default", source: source))
        }
        let metaPath = "\(configDir)/contexts/meta/\(Digests.sha256Hex(Array(name.utf8)))/meta.json"
        guard let data = FileManager.default.contents(atPath: metaPath) else {
            return .failure(.contextNotFound(name: name, metaPath: metaPath))
        }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let endpoints = json["Endpoints"] as? [String: Any],
              let docker = endpoints["docker"] as? [String: Any],
              let host = docker["Host"] as? String else {
            return .failure(.unreadableContext(name: name, why: "meta.json has no Endpoints.docker.Host"))
        }
        return parseHost(host).map { DockerEndpoint(host: $0, context: name, source: source) }
    }

    /// `opts.ParseHost` for the cases a lab meets.
    static func parseHost(_ raw: String) -> Result<String, EndpointError> {
        let host = raw.trimmingCharacters(in: .whitespaces)
        if host.hasPrefix("unix://") {
            return .success(host == "unix://" ? "unix:///var/run/docker.sock" : host)
        }
        for scheme in ["tcp://", "ssh://", "fd://", "npipe://"] where host.hasPrefix(scheme) { return .success(host) }
        if host.contains("://") { return .failure(.invalidHost(host)) }
        return .success("tcp://" + host)
    }
}
