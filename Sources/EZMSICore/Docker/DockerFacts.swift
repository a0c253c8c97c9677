import Foundation

/// The docker client on PATH.
public struct DockerCLIFact: Sendable {
    public var path: String?
    public var version: String?
    public var error: String?

    public init(path: String?, version: String?, error: String?) {
        self.path = path
        self.version = version
        self.error = error
    }
}

/// What the daemon says about itself.
public struct EngineInfo: Sendable, Equatable {
    public var serverVersion: String
    public var apiVersion: String
    public var os: String
    public var securityOptions: [String]
    public var dockerRootDir: String?
    /// From /version: "Engine 20.10.24", "containerd 1.6.20", "runc 1.1.5".
    public var components: [String] = []
    /// From /info, for support bundles: storage driver, cgroup driver and version.
    public var storageDriver: String?
    public var cgroupDriver: String?
    public var cgroupVersion: String?

    public var rootless: Bool { securityOptions.contains { $0.hasPrefix("name=rootless") } }
    public var usernsRemap: Bool { securityOptions.contains { $0.hasPrefix("name=userns") } }
    public var selinux: Bool { securityOptions.contains { $0.hasPrefix("name=selinux") } }

    public init(serverVersion: String, apiVersion: String, os: String, securityOptions: [String], dockerRootDir: String?,
                components: [String] = []) {
        self.serverVersion = serverVersion
        self.apiVersion = apiVersion
        self.os = os
        self.securityOptions = securityOptions
        self.dockerRootDir = dockerRootDir
        self.components = components
    }
}

/// Evidence for "permission denied" on the socket: who owns it and whether we are in its group.
public struct SocketAccess: Sendable, Equatable {
    public var socketGroupID: UInt32
    public var socketGroupName: String?
    public var userName: String?
    /// The user is listed in /etc/group for the socket's group…
    public var listedInGroup: Bool
    /// …and this process actually has that group (false after `usermod -aG` without a new login).
    public var processHasGroup: Bool

    public init(socketGroupID: UInt32, socketGroupName: String?, userName: String?, listedInGroup: Bool, processHasGroup: Bool) {
        self.socketGroupID = socketGroupID
        self.socketGroupName = socketGroupName
        self.userName = userName
        self.listedInGroup = listedInGroup
        self.processHasGroup = processHasGroup
    }
}

public enum EngineFact: Sendable {
    case reachable(DockerEndpoint, EngineInfo)
    case unreachable(DockerEndpoint?, reason: String, cause: EngineFailureCause, access: SocketAccess?)
}

public enum EngineFailureCause: String, Sendable, Codable {
    case badEndpoint = "bad-endpoint"
    case noSocket = "no-socket"
    case staleSocket = "stale-socket"
    case permissionDenied = "permission-denied"
    case timeout
    case noCLI = "no-cli"
    case other
}

/// `docker image inspect` in the parts ezmsi uses.
public struct ImageInfo: Sendable, Equatable {
    public var reference: String
    public var id: String
    public var repoDigests: [String]
    public var user: String
    public var workingDir: String
    public var entrypoint: [String]
    public var cmd: [String]
    public var env: [String]

    public init(reference: String, id: String, repoDigests: [String], user: String, workingDir: String, entrypoint: [String], cmd: [String], env: [String]) {
        self.reference = reference
        self.id = id
        self.repoDigests = repoDigests
        self.user = user
        self.workingDir = workingDir
        self.entrypoint = entrypoint
        self.cmd = cmd
        self.env = env
    }
}

extension EngineInfo {
    /// Adds the /info fields only support bundles need.
    func with(_ info: [String: Any]) -> EngineInfo {
        var copy = self
        copy.storageDriver = info["Driver"] as? String
        copy.cgroupDriver = info["CgroupDriver"] as? String
        copy.cgroupVersion = info["CgroupVersion"] as? String
        return copy
    }
}

public enum ImageFact: Sendable {
    case present(ImageInfo)
    case missing(String)
    case unknown(String)
}

enum DockerGatherer {
    static func cli(environment: [String: String], timeout: Double) -> DockerCLIFact {
        guard let path = Subprocess.which("docker", path: environment["PATH"]) else {
            return DockerCLIFact(path: nil, version: nil, error: "docker is not on PATH")
        }
        // `docker --version` costs a Go process start (8 ms); its answer only changes with the binary.
        let cache = VersionCache(environment: environment)
        if let version = cache.lookup(binary: path) { return DockerCLIFact(path: path, version: version, error: nil) }
        let fact = runVersion(path, environment: environment, timeout: timeout)
        if let version = fact.version { cache.store(binary: path, version: version) }
        return fact
    }

    static func runVersion(_ path: String, environment: [String: String], timeout: Double) -> DockerCLIFact {
        do {
            let out = try Subprocess.run(path, ["--version"], environment: environment, timeout: timeout)
            guard out.status == 0 else {
                return DockerCLIFact(path: path, version: nil, error: "docker --version exited \(out.status)")
            }
            // "Docker version 28.2.2, build e6534b4"
            let text = out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let version = text.components(separatedBy: "version ").dropFirst().first?
                .components(separatedBy: ",").first ?? text
            return DockerCLIFact(path: path, version: version, error: nil)
        } catch {
            return DockerCLIFact(path: path, version: nil, error: "\(error)")
        }
    }

    static func engine(endpoint: Result<DockerEndpoint, EndpointError>, cli: () -> DockerCLIFact,
                       environment: [String: String], timeout: Double) -> EngineFact {
        let ep: DockerEndpoint
        switch endpoint {
        case .failure(let e): return .unreachable(nil, reason: e.description, cause: .badEndpoint, access: nil)
        case .success(let e): ep = e
        }
        guard let socketPath = ep.unixSocketPath else { return engineViaCLI(ep, cli: cli(), environment: environment, timeout: timeout) }
        let client = EngineClient(socketPath: socketPath, timeout: timeout)
        switch client.get("/_ping") {
        case .failure(let f):
            let cause: EngineFailureCause
            var access: SocketAccess?
            switch f {
            case .noSocketFile, .notASocket: cause = .noSocket
            case .refused: cause = .staleSocket
            case .permissionDenied: cause = .permissionDenied; access = socketAccess(socketPath)
            case .timedOut: cause = .timeout
            default: cause = .other
            }
            return .unreachable(ep, reason: f.description, cause: cause, access: access)
        case .success(let ping):
            guard ping.status == 200 else {
                return .unreachable(ep, reason: "ping answered HTTP \(ping.status)", cause: .other, access: nil)
            }
            // The ping headers carry the version ("Server: Docker/20.10.24 (linux)", "Api-Version: 1.41"); /version
            // is skipped because the daemon answers it by asking containerd and runc (5 ms here).
            let server = ping.headers["server"] ?? ""
            let version = server.hasPrefix("Docker/") ? String(server.dropFirst(7).prefix { $0 != " " }) : "?"
            // /info (security options) and /version (components) in parallel: the daemon answers each by asking
            // containerd, so together they cost what one costs.
            let versionBox = Box<Result<HTTPResponse, SocketFailure>?>(nil)
            let versionDone = DispatchSemaphore(value: 0)
            DispatchQueue.global().async { versionBox.value = client.get("/version"); versionDone.signal() }
            var info: [String: Any] = [:]
            switch client.get("/info") {
            case .success(let resp) where resp.status == 200:
                info = (try? JSONSerialization.jsonObject(with: Data(resp.body))) as? [String: Any] ?? [:]
            case .failure(let f):
                return .unreachable(ep, reason: f.description, cause: .timeout, access: nil)
            default:
                break
            }
            versionDone.wait()
            var components: [String] = []
            if case .success(let resp)? = versionBox.value, resp.status == 200,
               let v = (try? JSONSerialization.jsonObject(with: Data(resp.body))) as? [String: Any] {
                for c in v["Components"] as? [[String: Any]] ?? [] {
                    if let name = c["Name"] as? String, let version = c["Version"] as? String { components.append("\(name) \(version)") }
                }
            }
            return .reachable(ep, EngineInfo(
                serverVersion: info["ServerVersion"] as? String ?? version,
                apiVersion: ping.headers["api-version"] ?? "?",
                os: ping.headers["ostype"] ?? info["OSType"] as? String ?? "?",
                securityOptions: info["SecurityOptions"] as? [String] ?? [],
                dockerRootDir: info["DockerRootDir"] as? String, components: components)
                .with(info))
        }
    }

    /// For tcp://, ssh:// and other endpoints the CLI knows how to reach (TLS, ssh), ask it.
    static func engineViaCLI(_ ep: DockerEndpoint, cli: DockerCLIFact, environment: [String: String],
                             timeout: Double) -> EngineFact {
        guard let docker = cli.path else {
            return .unreachable(ep, reason: "\(ep.host) is not a unix socket and the docker CLI is not on PATH",
                                cause: .noCLI, access: nil)
        }
        do {
            let out = try Subprocess.run(docker, ["info", "--format", "{{json .}}"], environment: environment,
                                         timeout: timeout)
            guard out.status == 0,
                  let json = (try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))) as? [String: Any] else {
                let reason = out.stderr.split(separator: "\n").first.map(String.init) ?? "docker info failed"
                let cause: EngineFailureCause = reason.contains("permission denied") ? .permissionDenied : .other
                return .unreachable(ep, reason: reason, cause: cause, access: nil)
            }
            return .reachable(ep, EngineInfo(
                serverVersion: json["ServerVersion"] as? String ?? "?", apiVersion: "?",
                os: json["OSType"] as? String ?? "?",
                securityOptions: json["SecurityOptions"] as? [String] ?? [],
                dockerRootDir: json["DockerRootDir"] as? String).with(json))
        } catch {
            return .unreachable(ep, reason: "\(error)", cause: .timeout, access: nil)
        }
    }

    static func socketAccess(_ path: String) -> SocketAccess? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let gid = st.st_gid
        let groupName = getgrgid(gid).map { String(cString: $0.pointee.gr_name) }
        let userName = getpwuid(getuid()).map { String(cString: $0.pointee.pw_name) }
        var listed = false
        if let g = getgrgid(gid), let userName {
            var member = g.pointee.gr_mem
            while let m = member?.pointee {
                if String(cString: m) == userName { listed = true; break }
                member = member?.advanced(by: 1)
            }
            if let pw = getpwuid(getuid()), pw.pointee.pw_gid == gid { listed = true }
        }
        let count = getgroups(0, nil)
        var groups = [gid_t](repeating: 0, count: Int(max(count, 0)))
        _ = getgroups(count, &groups)
        let has = groups.contains(gid) || getegid() == gid
        return SocketAccess(socketGroupID: gid, socketGroupName: groupName, userName: userName, listedInGroup: listed,
                            processHasGroup: has)
    }

    static func image(_ reference: String, engine: EngineFact, cli: () -> DockerCLIFact,
                      environment: [String: String], timeout: Double) -> ImageFact {
        guard case let .reachable(ep, _) = engine else { return .unknown("the daemon is not reachable") }
        var body: [UInt8]
        if let socket = ep.unixSocketPath {
            switch EngineClient(socketPath: socket, timeout: timeout).get("/images/\(EngineClient.escape(reference))/json") {
            case .failure(let f): return .unknown(f.description)
            case .success(let r):
                if r.status == 404 { return .missing(reference) }
                guard r.status == 200 else { return .unknown("image inspect answered HTTP \(r.status)") }
                body = r.body
            }
        } else {
            guard let docker = cli().path else { return .unknown("docker CLI not on PATH") }
            do {
                let out = try Subprocess.run(docker, ["image", "inspect", "--format", "{{json .}}", reference],
                                             environment: environment, timeout: timeout)
                if out.status != 0 {
                    return out.stderr.lowercased().contains("no such image") ? .missing(reference) : .unknown(out.stderr)
                }
                body = Array(out.stdout.utf8)
            } catch { return .unknown("\(error)") }
        }
        guard let json = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
            return .unknown("image inspect returned no JSON")
        }
        let config = json["Config"] as? [String: Any] ?? [:]
        return .present(ImageInfo(
            reference: reference,
            id: json["Id"] as? String ?? "?",
            repoDigests: json["RepoDigests"] as? [String] ?? [],
            user: config["User"] as? String ?? "",
            workingDir: config["WorkingDir"] as? String ?? "",
            entrypoint: config["Entrypoint"] as? [String] ?? [],
            cmd: config["Cmd"] as? [String] ?? [],
            env: config["Env"] as? [String] ?? []))
    }
}

/// Remembers `docker --version` per binary (path, inode, size, mtime) under $XDG_CACHE_HOME/ezmsi.
struct VersionCache {
    let file: String?

    init(environment: [String: String]) {
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            file = xdg + "/ezmsi/docker-cli-version"
        } else if let home = environment["HOME"], !home.isEmpty {
            file = home + "/.cache/ezmsi/docker-cli-version"
        } else {
            file = nil
        }
    }

    private func key(_ binary: String) -> String? {
        var st = stat()
        guard stat(binary, &st) == 0 else { return nil }
        return "\(binary)\t\(st.st_ino)\t\(st.st_size)\t\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }

    func lookup(binary: String) -> String? {
        guard let file, let key = key(binary), let data = FileManager.default.contents(atPath: file) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let newline = text.firstIndex(of: "\n"), text[..<newline] == key else { return nil }
        let version = text[text.index(after: newline)...].trimmingCharacters(in: .whitespacesAndNewlines)
        return version.isEmpty ? nil : version
    }

    /// Best effort: an unwritable cache only costs speed. Written to a temp file and renamed, never half-written.
    func store(binary: String, version: String) {
        guard let file, let key = key(binary) else { return }
        let dir = (file as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tmp = file + ".\(getpid()).tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data((key + "\n" + version + "\n").utf8)) else { return }
        if rename(tmp, file) != 0 { unlink(tmp) }
    }
}
