import Foundation

/// A path as the container's user would meet it, read once by the gatherer (`MountGatherer`); probes judge it.
public enum PathState: Sendable {
    /// Nothing at the path.
    case missing
    /// A file, or a directory judged by itself: its owner, mode and ACL.
    case inode(InodeSecurity)
    /// A directory mount, audited (listing directories, reading files) for the container's user.
    case tree(TreeAudit)
    /// It could not be judged (an unreadable ACL, an audit that failed): what went wrong.
    case failed(String)
}

/// Every mount besides the data folder, and the places where KafkaCrypto keeps its node, as the container's user
/// would find them (`mounts.readable`).
public struct MountsFact: Sendable {
    public struct Entry: Sendable {
        public var mount: Mount
        public var state: PathState
        public init(mount: Mount, state: PathState) {
            self.mount = mount
            self.state = state
        }
    }

    /// In the deployment's order (the config file first).
    public var mounts: [Entry]
    /// The KafkaCrypto node directories on a mount (host path → state), from `KafkaCryptoNode.candidates`.
    public var nodeDirectories: [String: PathState]

    public init(mounts: [Entry] = [], nodeDirectories: [String: PathState] = [:]) {
        self.mounts = mounts
        self.nodeDirectories = nodeDirectories
    }
}

/// `[kafkacrypto]` in the config: where OpenMSIStream looks for the node (KafkaCrypto rewrites its node config and
/// writes `<file>.tmp` beside it, so that directory must be on a mount and writable).
public enum KafkaCryptoNode {
    public struct Candidate: Sendable, Equatable {
        /// The directory as the program sees it in the container.
        public var container: String
        /// The config line that names it.
        public var line: Int
    }

    /// `config_file` names the node's config (its directory holds the node); otherwise `node_id` is looked up beside
    /// the config file, then in the working directory.
    public static func candidates(_ config: ConfigFile) -> [Candidate] {
        guard let section = config.section("kafkacrypto") else { return [] }
        if let file = section.option("config_file") {
            let value = file.raw.hasPrefix("file#") ? String(file.raw.dropFirst(5)) : file.raw
            return value.hasPrefix("/") ? [Candidate(container: (value as NSString).deletingLastPathComponent, line: file.line)] : []
        }
        guard let node = section.option("node_id") else { return [] }
        return [(ProgramTable.containerConfigPath as NSString).deletingLastPathComponent, Deployment.workingDirectory]
            .map { Candidate(container: $0 + "/" + node.raw, line: node.line) }
    }
}

public enum MountGatherer {
    /// Reads every mount other than the data folder (a directory is audited, a file read by itself) and the
    /// KafkaCrypto node directories that lie on a mount, for the container's user (nothing when it is unknown:
    /// the probe reports that).
    static func mounts(_ deployment: Deployment, config: Result<ConfigFileFact, FileProblem>,
                       identity: Result<IdentityFact, IdentityUnavailable>) -> MountsFact {
        guard case .success(let fact) = identity else { return MountsFact() }
        let id = fact.host
        var result = MountsFact()
        for mount in deployment.mounts where mount.role != "data" {
            result.mounts.append(.init(mount: mount, state: state(of: mount.host, identity: id, auditDirectory: true,
                                                                  containerPath: mount.container)))
        }
        if case .success(let config) = config {
            for candidate in KafkaCryptoNode.candidates(config.file) {
                guard let (host, mount) = deployment.hostPath(forContainerPath: candidate.container), mount.role != "config" else { continue }
                result.nodeDirectories[host] = state(of: host, identity: id, auditDirectory: false, containerPath: candidate.container)
            }
        }
        return result
    }

    static func state(of path: String, identity: ContainerIdentity, auditDirectory: Bool, containerPath: String) -> PathState {
        var st = stat()
        guard lstat(path, &st) == 0 else { return errno == ENOENT || errno == ENOTDIR ? .missing : .failed(String(cString: strerror(errno))) }
        do {
            if auditDirectory && (st.st_mode & S_IFMT) == S_IFDIR {
                let requirements = TreeRequirements(root: [.listDirectory], rule: .init(directory: [.listDirectory], file: [.readFile]))
                return .tree(try TreeScanner.audit(root: path, identity: identity, requirements: requirements,
                                                   options: TreeAuditOptions(containerPath: containerPath)))
            }
            return .inode(InodeSecurity(try FileACL.read(path: path)))
        } catch {
            return .failed("\(error)")
        }
    }
}
