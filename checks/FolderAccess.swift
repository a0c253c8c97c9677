import EZMSICore
import Foundation

/// The mounted folder itself: does it exist, and can the container's user do there what the program does first.
public struct FolderAccess: Probe {
    public let id = "folder.access"
    public let title = "Folder usable by the container"
    public let rationale = """
        The container runs as openmsi (uid 1000) while the host folder belongs to someone else; a missing folder is \
        created by Docker as root:root 0755, where uid 1000 cannot write.
        """
    public let dependsOn = ["docker.image"]
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("folder owned by uid 1000", expect: .pass) {
                ExampleFacts.make(folderFact: ExampleFacts.auditedFolder(need: .writeTree) { chown($0, 1000, 1000) })
            },
            ProbeExample("root-owned 0755 folder for a download", expect: .fail, code: "folder-denied") {
                ExampleFacts.make(folderFact: ExampleFacts.auditedFolder(need: .writeTree) { chown($0, 0, 0); chmod($0, 0o755) })
            },
            ProbeExample("missing folder", expect: .fail, code: "folder-missing") {
                ExampleFacts.make(folderFact: .missing(path: "/srv/scans", parent: "/srv"))
            },
            ProbeExample("the data folder is /etc", expect: .fail, code: "folder-system") {
                ExampleFacts.make(folderFact: .systemFolder(path: "/etc", why: "/etc is in the system tree /etc"))
            },
            ProbeExample("no folder configured, no folder needed", expect: .skip) {
                ExampleFacts.make(command: "S3TransferStreamProcessor bucket --config config.config", folder: nil, folderFact: .notConfigured)
            },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        let fact = facts.folder.get()
        let who = identityText(facts)
        switch fact {
        case .notConfigured, .notNeeded:
            return .skip("no data folder to check")
        case .identityUnavailable(let why):
            return ProbeOutcome("cannot tell who the container runs as", findings: [.fail("identity-unresolved", why,
                fix: Remediation("See identity.alignment"))])
        case let .systemFolder(path, why):
            return ProbeOutcome("\(path) is a system folder", findings: [.fail(
                "folder-system", "\(why): opening it to \(who) would hand the container the host's files, and ezmsi fix refuses it",
                at: Location(file: path),
                fix: Remediation("Use a folder of its own for the data, e.g. /srv/scans or a folder inside your home directory, and pass it with --folder"))])
        case .failed(let path, let why):
            return ProbeOutcome("cannot inspect \(path)", findings: [.fail("folder-unreadable", why, at: Location(file: path))])
        case .notDirectory(let path):
            return ProbeOutcome("\(path) is not what the program expects", findings: [.fail(
                "folder-wrong-type", "\(path) exists but is not a \(facts.deployment.program?.folderNeed == .readFileWriteParent ? "regular file" : "directory")",
                at: Location(file: path), fix: Remediation("Point --folder at the folder the program should use"))])
        case let .missing(path, parent):
            let uid = hostUID(facts)
            let creates = facts.deployment.program?.folderNeed == .writeTree
            return ProbeOutcome("\(path) does not exist", findings: [.fail(
                "folder-missing",
                creates ? "\(path) does not exist: Docker would create it as root:root 0755, where \(who) cannot write"
                        : "\(path) does not exist: \(facts.deployment.program?.name ?? "the program") needs an existing folder",
                evidence: Evidence(expected: "a folder usable by \(who)", actual: "missing (nearest existing parent: \(parent))"),
                at: Location(file: path),
                fix: Remediation("Create it for the container's user (ezmsi fix does this, with an undo journal)",
                                 commands: ["mkdir -p \(ShellWords.quote(path))",
                                            "setfacl -m u:\(uid):rwx,d:u:\(uid):rwx \(ShellWords.quote(path))"]))],
                fixes: FolderFixes.actions(facts))
        case let .file(path, read, create):
            var findings: [Finding] = []
            if !read.allowed {
                findings.append(.fail("file-denied", "\(who) cannot read \(path): \(read)", at: Location(file: path),
                                      fix: Remediation("Grant read access", commands: ["setfacl -m u:\(hostUID(facts)):r \(ShellWords.quote(path))"])))
            }
            if !create.allowed {
                let dir = (path as NSString).deletingLastPathComponent
                findings.append(.fail("parent-denied", "\(who) cannot create UploadDataFile.log in \(dir): \(create)", at: Location(file: dir),
                                      fix: Remediation("Grant write access to the folder", commands: ["setfacl -m u:\(hostUID(facts)):rwx \(ShellWords.quote(dir))"])))
            }
            return ProbeOutcome(findings.isEmpty ? "\(who) can read \(path) and write its log" : "\(who) cannot use \(path)", findings: findings)
        case let .audited(path, audit):
            guard let root = audit.rootSecurity else {
                return ProbeOutcome("\(path) was not scanned", findings: [.fail("folder-unreadable", "ezmsi could not read \(path)")])
            }
            var findings: [Finding] = []
            for op in audit.requirements.root {
                let decision = AccessEvaluator.evaluate(op, identity: audit.identity, inode: root)
                guard !decision.allowed else { continue }
                findings.append(.fail("folder-denied", "\(who) cannot \(op.verb) \(path): denied by \(decision.reason.text)",
                                      evidence: Evidence(expected: "\(op.want) for uid \(audit.identity.uid)",
                                                         actual: FolderFixes.describe(root)),
                                      at: Location(file: path),
                                      fix: Remediation("Grant the container's user access (dry run first)", commands: ["ezmsi fix", "ezmsi fix --yes"])))
            }
            let ops = audit.requirements.root.map(\.verb).joined(separator: " and ")
            return ProbeOutcome(findings.isEmpty ? "\(who) can \(ops) \(path)" : "\(who) cannot use \(path)",
                                findings: findings, fixes: findings.isEmpty ? [] : FolderFixes.actions(facts),
                                details: ["owner": "\(root.uid):\(root.gid)", "mode": String(root.mode & 0o7777, radix: 8),
                                          "acl": root.acl?.text ?? "none"])
        }
    }

    private func identityText(_ facts: Facts) -> String {
        guard case .success(let id) = facts.identity.get() else { return "the container's user" }
        return "uid \(id.host.uid)" + (id.container.userName.map { " (\($0))" } ?? "")
    }

    private func hostUID(_ facts: Facts) -> String {
        guard case .success(let id) = facts.identity.get() else { return "1000" }
        return String(id.host.uid)
    }
}
