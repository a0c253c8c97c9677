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
        func config(mode: mode_t) -> String {
            let path = FileManager.default.temporaryDirectory.path + "/ezmsi-example-\(UUID().uuidString.prefix(8)).config"
            FileManager.default.createFile(atPath: path, contents: Data(ExampleFacts.goodConsumerConfig.utf8))
            chown(path, 0, 0)
            chmod(path, mode)
            return path
        }
        return [
            ProbeExample("config readable by uid 1000", expect: .pass) { ExampleFacts.make(configFile: config(mode: 0o644)) },
            ProbeExample("config only root can read", expect: .fail, code: "config-unreadable") {
                ExampleFacts.make(configFile: config(mode: 0o600))
            },
            ProbeExample("config missing (config.syntax reports it)", expect: .skip) { ExampleFacts.make(config: nil) },
            ProbeExample("KafkaCrypto node not on a mount", expect: .warn, code: "kafkacrypto-node-unmounted") {
                ExampleFacts.make(config: ExampleFacts.goodConsumerConfig + "\n[kafkacrypto]\nnode_id = lab-node\n")
            },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        guard case .success(let fact) = facts.identity.get() else { return .skip("the container's user is unknown (see identity.alignment)") }
        let id = fact.host
        var findings: [Finding] = []
        var checked = 0
        for mount in facts.deployment.mounts where mount.role != "data" {
            var st = stat()
            guard lstat(mount.host, &st) == 0 else {
                if mount.role == "config" { continue }   // config.syntax reports a missing config
                findings.append(.fail("mount-missing", "\(mount.host) (mounted at \(mount.container)) does not exist",
                                      at: Location(file: mount.host), fix: Remediation("Create it or correct --mount")))
                continue
            }
            checked += 1
            if (st.st_mode & S_IFMT) == S_IFDIR {
                let requirements = TreeRequirements(root: [.listDirectory], rule: .init(directory: [.listDirectory], file: [.readFile]))
                guard let audit = try? TreeScanner.audit(root: mount.host, identity: id, requirements: requirements,
                                                         options: TreeAuditOptions(containerPath: mount.container)) else { continue }
                for (reason, count) in audit.reasonsByCount {
                    let first = audit.examples[reason]?.first ?? "."
                    findings.append(.fail("mount-denied", "\(count) \(reason.kind.rawValue)(s) of \(mount.host) cannot be \(reason.operation.verb == "read" ? "read" : "listed") by uid \(id.uid)",
                                          at: Location(file: first == "." ? mount.host : mount.host + "/" + first),
                                          fix: Remediation("Grant read access", commands: ["setfacl -R -m u:\(id.uid):rX \(ShellWords.quote(mount.host))"])))
                }
            } else if let decision = try? AccessEvaluator.evaluate(path: mount.host, operations: [.readFile], identity: id).decisions.first,
                      !decision.allowed {
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
    /// `[kafkacrypto]`: KafkaCrypto rewrites its node config and writes `<file>.tmp` beside it, so the node directory
    /// must be on a mount (or it is lost with the container) and writable by the container's user.
    func kafkaCryptoFindings(_ facts: Facts, identity: ContainerIdentity) -> [Finding] {
        guard case .success(let fact) = facts.config.get(), let section = fact.file.section("kafkacrypto") else { return [] }
        // The three places OpenMSIStream looks for node_id, seen from inside the container (config dir, then cwd).
        var candidates: [(container: String, line: Int)] = []
        if let file = section.option("config_file") {
            let value = file.raw.hasPrefix("file#") ? String(file.raw.dropFirst(5)) : file.raw
            if value.hasPrefix("/") { candidates.append(((value as NSString).deletingLastPathComponent, file.line)) }
        } else if let node = section.option("node_id") {
            for base in [(ProgramTable.containerConfigPath as NSString).deletingLastPathComponent, Deployment.workingDirectory] {
                candidates.append((base + "/" + node.raw, node.line))
            }
        }
        guard let first = candidates.first else { return [] }
        let at = Location(file: fact.file.path, line: first.line)
        for candidate in candidates {
            guard let (host, mount) = facts.deployment.hostPath(forContainerPath: candidate.container), mount.role != "config" else { continue }
            guard let decision = try? AccessEvaluator.evaluate(path: host, operations: [.createInDirectory], identity: identity).decisions.first else {
                return [.fail("kafkacrypto-node-missing", "the KafkaCrypto node directory \(host) (\(candidate.container) in the container) does not exist",
                              at: at, fix: Remediation("Provision the node (ProvisionNode) into that folder"))]
            }
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
