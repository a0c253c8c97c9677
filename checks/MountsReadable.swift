import EZMSICore
import Foundation

/// The config file and every extra mount are usable by the container's user.
public struct MountsReadable: Probe {
    public let id = "mounts.readable"
    public let title = "Config and extra mounts readable"
    public let rationale = """
        OpenMSIStream silently reads an unreadable config file as empty; custom code folders must be readable, and a \
        [kafkacrypto] node directory mounted and writable.
        """
    public let dependsOn = ["docker.image"]
    public init() {}

    public var examples: [ProbeExample] {
        let configMount = Mount(host: "/lab/deploy/config.config", container: ProgramTable.containerConfigPath,
                                readOnly: true, role: "config")
        let code = Mount(host: "/lab/code", container: "/home/openmsi/code", readOnly: true)
        let node = Mount(host: "/lab/node", container: "/home/openmsi/node")
        @Sendable func file(_ mode: UInt32, uid: UInt32 = 0) -> PathState { .inode(InodeSecurity(uid: uid, gid: uid, mode: 0o100000 | mode)) }
        @Sendable func directory(_ mode: UInt32, uid: UInt32 = 0) -> PathState { .inode(InodeSecurity(uid: uid, gid: uid, mode: 0o040000 | mode)) }
        let readable = MountsFact.Entry(mount: configMount, state: file(0o644))
        let kafkaCrypto = ExampleFacts.goodConsumerConfig + "\n[kafkacrypto]\nconfig_file = /home/openmsi/node/lab-node.config\n"
        return [
            ProbeExample("config readable by uid 1000", expect: .pass) { ExampleFacts.make(mounts: MountsFact(mounts: [readable])) },
            ProbeExample("config only root can read", expect: .fail, code: "config-unreadable") {
                ExampleFacts.make(mounts: MountsFact(mounts: [.init(mount: configMount, state: file(0o600))]))
            },
            ProbeExample("config missing (config.syntax reports it)", expect: .skip) {
                ExampleFacts.make(config: nil, mounts: MountsFact(mounts: [.init(mount: configMount, state: .missing)]))
            },
            ProbeExample("an extra mount that does not exist", expect: .fail, code: "mount-missing") {
                ExampleFacts.make(mounts: MountsFact(mounts: [readable, .init(mount: code, state: .missing)]))
            },
            ProbeExample("an extra mount that cannot be judged", expect: .fail, code: "mount-unreadable") {
                ExampleFacts.make(mounts: MountsFact(mounts: [readable, .init(mount: code, state: .failed("Permission denied"))]))
            },
            ProbeExample("an extra file mount only root can read", expect: .fail, code: "mount-denied") {
                ExampleFacts.make(mounts: MountsFact(mounts: [readable, .init(mount: code, state: file(0o600))]))
            },
            ProbeExample("KafkaCrypto node not on a mount", expect: .warn, code: "kafkacrypto-node-unmounted") {
                ExampleFacts.make(config: ExampleFacts.goodConsumerConfig + "\n[kafkacrypto]\nnode_id = lab-node\n",
                                  mounts: MountsFact(mounts: [readable]))
            },
            ProbeExample("KafkaCrypto node on a writable mount", expect: .pass) {
                ExampleFacts.make(config: kafkaCrypto, extraMounts: [node],
                                  mounts: MountsFact(mounts: [readable, .init(mount: node, state: directory(0o755, uid: 1000))],
                                                     nodeDirectories: ["/lab/node": directory(0o755, uid: 1000)]))
            },
            ProbeExample("KafkaCrypto node directory uid 1000 cannot write", expect: .fail, code: "kafkacrypto-node-readonly") {
                ExampleFacts.make(config: kafkaCrypto, extraMounts: [node],
                                  mounts: MountsFact(mounts: [readable, .init(mount: node, state: directory(0o755))],
                                                     nodeDirectories: ["/lab/node": directory(0o755)]))
            },
            ProbeExample("KafkaCrypto node directory missing", expect: .fail, code: "kafkacrypto-node-missing") {
                ExampleFacts.make(config: kafkaCrypto, extraMounts: [node],
                                  mounts: MountsFact(mounts: [readable, .init(mount: node, state: .missing)],
                                                     nodeDirectories: ["/lab/node": .missing]))
            },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        guard case .success(let fact) = facts.identity.get() else { return .skip("the container's user is unknown (see identity.alignment)") }
        let id = fact.host
        var findings: [Finding] = []
        var checked = 0
        for entry in facts.mounts.get().mounts {
            let mount = entry.mount
            switch entry.state {
            case .missing:
                if mount.role == "config" { continue }   // config.syntax reports a missing config
                findings.append(.fail("mount-missing", "\(mount.host) (mounted at \(mount.container)) does not exist",
                                      at: Location(file: mount.host), fix: Remediation("Create it or correct --mount")))
                continue
            case .failed(let why):
                checked += 1
                findings.append(.fail("mount-unreadable", "cannot tell whether uid \(id.uid) can read \(mount.host): \(why)",
                                      at: Location(file: mount.host),
                                      fix: Remediation("Run ezmsi as a user who can read \(mount.host) (e.g. with sudo), or fix its permissions")))
            case .tree(let audit):
                checked += 1
                for (reason, count) in audit.reasonsByCount {
                    let first = audit.examples[reason]?.first ?? "."
                    findings.append(.fail("mount-denied", "\(count) \(reason.kind.rawValue)(s) of \(mount.host) cannot be \(reason.operation.verb == "read" ? "read" : "listed") by uid \(id.uid)",
                                          at: Location(file: first == "." ? mount.host : mount.host + "/" + first),
                                          fix: Remediation("Grant read access", commands: ["setfacl -R -m u:\(id.uid):rX \(ShellWords.quote(mount.host))"])))
                }
            case .inode(let inode):
                checked += 1
                let operation: AccessOperation = inode.isDirectory ? .listDirectory : .readFile
                let decision = AccessEvaluator.evaluate([operation], identity: id, inode: inode)[0]
                guard !decision.allowed else { continue }
                let what = mount.role == "config" ? "the config file" : mount.host
                findings.append(.fail(mount.role == "config" ? "config-unreadable" : "mount-denied",
                                      "uid \(id.uid) cannot read \(what): \(decision)" + (mount.role == "config" ? " — OpenMSIStream would silently read it as empty" : ""),
                                      at: Location(file: mount.host),
                                      fix: Remediation("Grant read access", commands: ["setfacl -m u:\(id.uid):r \(ShellWords.quote(mount.host))"])))
            }
        }
        findings += kafkaCryptoFindings(facts, identity: id)
        if checked == 0 && findings.isEmpty { return .skip("nothing mounted besides the data folder") }
        return ProbeOutcome(findings.isEmpty ? "uid \(id.uid) can read the config and \(checked - 1) other mount\(checked == 2 ? "" : "s")" : "uid \(id.uid) cannot read every mount",
                            findings: findings)
    }
}

extension MountsReadable {
    /// `[kafkacrypto]`: the node directory must be on a mount (or it is lost with the container) and writable by the
    /// container's user (`KafkaCryptoNode`).
    func kafkaCryptoFindings(_ facts: Facts, identity: ContainerIdentity) -> [Finding] {
        guard case .success(let fact) = facts.config.get() else { return [] }
        let candidates = KafkaCryptoNode.candidates(fact.file)
        guard let first = candidates.first else { return [] }
        let at = Location(file: fact.file.path, line: first.line)
        for candidate in candidates {
            guard let (host, mount) = facts.deployment.hostPath(forContainerPath: candidate.container), mount.role != "config" else { continue }
            guard case .inode(let inode) = facts.mounts.get().nodeDirectories[host] ?? .missing else {
                return [.fail("kafkacrypto-node-missing", "the KafkaCrypto node directory \(host) (\(candidate.container) in the container) does not exist",
                              at: at, fix: Remediation("Provision the node (ProvisionNode) into that folder"))]
            }
            let decision = AccessEvaluator.evaluate([.createInDirectory], identity: identity, inode: inode)[0]
            if !decision.allowed || mount.readOnly {
                return [.fail("kafkacrypto-node-readonly", "uid \(identity.uid) cannot write the KafkaCrypto node directory \(host): \(mount.readOnly ? "mounted read-only" : decision.description)",
                              at: at, fix: Remediation("KafkaCrypto rewrites its files there: grant write access",
                                                       commands: ["setfacl -R -m u:\(identity.uid):rwX \(ShellWords.quote(host))"]))]
            }
            return []
        }
        return [.warn("kafkacrypto-node-unmounted", "the KafkaCrypto node directory (\(first.container)) is not on a mount: it is lost with the container",
                      at: at, fix: Remediation("Mount the node directory", commands: ["ezmsi doctor --mount /path/to/node:\(first.container) …"]))]
    }
}
