import Foundation

/// Why the container's identity could not be worked out (the message is shown as is).
public struct IdentityUnavailable: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Who the container's process is, inside and as the host kernel sees it on bind-mounted files.
public struct IdentityFact: Sendable {
    public var container: ContainerIdentity
    public var host: ContainerIdentity
    public var mapping: IDMapping.Kind
    /// The `--user` spec, or the image's `Config.User` ("" = root).
    public var spec: String
    public var fromFlag: Bool

    public init(container: ContainerIdentity, host: ContainerIdentity, mapping: IDMapping.Kind, spec: String, fromFlag: Bool) {
        self.container = container
        self.host = host
        self.mapping = mapping
        self.spec = spec
        self.fromFlag = fromFlag
    }
}

/// The folder the program works in, judged for the container's host identity.
public enum FolderFact: Sendable {
    case notConfigured
    /// The program has no folder need (e.g. S3TransferStreamProcessor).
    case notNeeded
    case identityUnavailable(String)
    /// The host path does not exist; `parent` is the nearest existing ancestor.
    case missing(path: String, parent: String)
    case notDirectory(path: String)
    /// UploadDataFile: the file and its directory.
    case file(path: String, read: AccessDecision, createInParent: AccessDecision)
    case audited(path: String, TreeAudit)
    case failed(path: String, String)
    /// A system folder (`/`, `/etc`, `/home` itself, a home directory itself…): never a data folder, never fixed.
    case systemFolder(path: String, why: String)
}

public enum FolderGatherer {
    static func identity(_ deployment: Deployment, image: ImageFact, engine: EngineFact, cli: DockerCLIFact,
                         environment: [String: String], timeout: Double) -> Result<IdentityFact, IdentityUnavailable> {
        guard case .present(let info) = image else { return .failure(IdentityUnavailable("the image is not available")) }
        guard let docker = cli.path else { return .failure(IdentityUnavailable("the docker client is needed to read the image's users")) }
        var env = environment
        if case let .reachable(ep, _) = engine, ep.source != "default" { env["DOCKER_HOST"] = ep.host }
        let spec = deployment.user ?? info.user
        do {
            let (files, _) = try ImageUserGatherer.load(imageID: info.id, docker: docker, environment: env,
                                                       cacheDirectory: ImageUserGatherer.cacheDirectory(environment: environment),
                                                       timeout: timeout)
            let source = deployment.user != nil ? "--user \(spec)" : "image user \"\(spec.isEmpty ? "root" : spec)\""
            let container = try files.resolve(spec: spec, source: source)
            var mapping = IDMapping.identity
            if case let .reachable(ep, engineInfo) = engine {
                mapping = try Self.mapping(engineInfo, endpoint: ep)
            }
            return .success(IdentityFact(container: container, host: try mapping.hostIdentity(container), mapping: mapping.kind,
                                         spec: spec, fromFlag: deployment.user != nil))
        } catch {
            return .failure(IdentityUnavailable("\(error)"))
        }
    }

    /// userns-remap: the remap user from /etc/docker/daemon.json; rootless: the daemon's user owns its socket.
    static func mapping(_ info: EngineInfo, endpoint: DockerEndpoint) throws -> IDMapping {
        func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        if info.rootless {
            var st = stat()
            let uid: UInt32 = endpoint.unixSocketPath.flatMap { stat($0, &st) == 0 ? st.st_uid : nil } ?? getuid()
            let gid: UInt32 = getpwuid(uid).map { $0.pointee.pw_gid } ?? getgid()
            let name = getpwuid(uid).map { String(cString: $0.pointee.pw_name) } ?? String(uid)
            return try IDMapping.rootless(hostUID: uid, hostGID: gid, user: name, subuid: read("/etc/subuid"), subgid: read("/etc/subgid"))
        }
        if info.usernsRemap {
            let json = (try? JSONSerialization.jsonObject(with: Data(read("/etc/docker/daemon.json").utf8))) as? [String: Any]
            let user = (json?["userns-remap"] as? String) ?? "default"
            let name = String(user.split(separator: ":").first ?? "default")
            return try IDMapping.usernsRemap(user: name, userID: UInt32(name), subuid: read("/etc/subuid"), subgid: read("/etc/subgid"))
        }
        return .identity
    }

    /// The host folder the program works in: its first positional path mapped through the mounts, else the data folder.
    public static func folderPath(_ deployment: Deployment, _ command: ParsedCommand) -> String? {
        if let spec = command.program?.positionals.first, [.existingDirectory, .createDirectory, .existingFile].contains(spec.type),
           let value = command.positionals[spec.name], let mapped = deployment.hostPath(forContainerPath: value) {
            return mapped.host
        }
        return deployment.dataFolder
    }

    /// How the doctor audits the data folder (the fix judges its own walk the same way).
    public static var auditOptions: TreeAuditOptions { TreeAuditOptions(containerPath: ProgramTable.containerDataPath) }

    static func folder(_ deployment: Deployment, command: ParsedCommand, identity: Result<IdentityFact, IdentityUnavailable>) -> FolderFact {
        guard let need = command.program?.folderNeed, need != .none else {
            return deployment.dataFolder == nil ? .notConfigured : .notNeeded
        }
        guard let path = folderPath(deployment, command) else { return .notConfigured }
        let id: ContainerIdentity
        switch identity {
        case .failure(let why): return .identityUnavailable(why.description)
        case .success(let fact): id = fact.host
        }
        if need != .readFileWriteParent, path.hasPrefix("/"), let refusal = SystemFolders.refusal(for: path) {
            return .systemFolder(path: path, why: refusal.why)
        }
        var st = stat()
        if lstat(path, &st) != 0 {
            var parent = (path as NSString).deletingLastPathComponent
            while !parent.isEmpty, parent != "/", lstat(parent, &st) != 0 { parent = (parent as NSString).deletingLastPathComponent }
            return .missing(path: path, parent: parent.isEmpty ? "/" : parent)
        }
        if need == .readFileWriteParent {
            guard (st.st_mode & S_IFMT) == S_IFREG else { return .notDirectory(path: path) }
            do {
                let read = try AccessEvaluator.evaluate(path: path, operations: [.readFile], identity: id).decisions[0]
                let parent = (path as NSString).deletingLastPathComponent
                let create = try AccessEvaluator.evaluate(path: parent, operations: [.createInDirectory], identity: id).decisions[0]
                return .file(path: path, read: read, createInParent: create)
            } catch {
                return .failed(path: path, "\(error)")
            }
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { return .notDirectory(path: path) }
        do {
            let audit = try TreeScanner.audit(root: path, identity: id, need: need, options: auditOptions)
            return .audited(path: path, audit)
        } catch {
            return .failed(path: path, "\(error)")
        }
    }
}
