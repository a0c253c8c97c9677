import EZMSICore
import Foundation

/// Every entry below the folder: which ones the container cannot use, and exactly why.
public struct FolderTree: Probe {
    public let id = "folder.tree"
    public let title = "Every entry of the folder"
    public let rationale = """
        One unreadable file deep in the tree is silently skipped by the uploader; one unwritable subfolder makes the \
        downloader fail on that file. Symlinks to outside the folder do not resolve inside the container.
        """
    public let dependsOn = ["docker.image"]
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("readable tree for an upload", expect: .pass) {
                ExampleFacts.make(command: "DataFileUploadDirectory data --config config.config", config: ExampleFacts.goodProducerConfig,
                                  folderFact: ExampleFacts.auditedFolder(need: .readTreeWriteRoot) { root in
                                      chown(root, 1000, 1000)
                                      FileManager.default.createFile(atPath: root + "/a.csv", contents: Data("x".utf8))
                                  })
            },
            ProbeExample("a nested file only root can read", expect: .fail, code: "tree-denied") {
                ExampleFacts.make(command: "DataFileUploadDirectory data --config config.config", config: ExampleFacts.goodProducerConfig,
                                  folderFact: ExampleFacts.auditedFolder(need: .readTreeWriteRoot) { root in
                                      chown(root, 1000, 1000)
                                      mkdir(root + "/sub", 0o755)
                                      FileManager.default.createFile(atPath: root + "/sub/secret.csv", contents: Data("x".utf8))
                                      chmod(root + "/sub/secret.csv", 0o600)
                                  })
            },
            ProbeExample("a symlink to outside the folder", expect: .warn, code: "symlink-outside") {
                ExampleFacts.make(command: "DataFileUploadDirectory data --config config.config", config: ExampleFacts.goodProducerConfig,
                                  folderFact: ExampleFacts.auditedFolder(need: .readTreeWriteRoot) { root in
                                      chown(root, 1000, 1000)
                                      symlink("/etc/hostname", root + "/link")
                                  })
            },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        guard case let .audited(path, audit) = facts.folder.get() else { return .skip("no folder tree to audit (see folder.access)") }
        var findings: [Finding] = []
        let uid = audit.identity.uid
        for (reason, count) in audit.reasonsByCount {
            let examples = audit.examples[reason] ?? []
            if count == 1, examples == ["."] { continue }   // the folder itself: folder.access reports it
            let first = examples.first ?? "."
            let example = audit.details[first]?.first { $0.decision.operation == reason.operation }
            let what = "\(count) \(reason.kind.rawValue)\(count == 1 ? "" : "s")"
            let shown = examples.prefix(3).map { $0 == "." ? path : $0 }.joined(separator: ", ")
            findings.append(.fail(
                "tree-denied",
                "\(what) cannot be \(verbed(reason.operation)) by uid \(uid): \(explain(reason.cause))" + (shown.isEmpty ? "" : " — e.g. \(shown)"),
                evidence: example.map { Evidence(expected: "\(reason.operation.want) for uid \(uid)",
                                                 actual: "owner \($0.uid):\($0.gid), mode \(String($0.mode, radix: 8))" + ($0.acl.map { ", ACL \($0)" } ?? "") + "; \($0.decision)") },
                at: Location(file: first == "." ? path : path + "/" + first),
                fix: Remediation("Grant uid \(uid) what it needs with the smallest change (dry run first)", commands: ["ezmsi fix", "ezmsi fix --yes"])))
        }
        if audit.belowDeniedDirectories > 0 {
            findings.append(.info("below-denied", "\(audit.belowDeniedDirectories) entries lie below folders the container cannot list"))
        }
        if audit.symlinksOutside.count > 0 {
            findings.append(.warn("symlink-outside", "\(audit.symlinksOutside.count) symlink\(audit.symlinksOutside.count == 1 ? " points" : "s point") outside the folder and will not resolve inside the container: \(audit.symlinksOutside.examples.prefix(3).joined(separator: ", "))",
                                  at: Location(file: path), fix: Remediation("Copy the target into the folder, or mount it with --mount")))
        }
        if audit.otherFilesystems.count > 0 {
            findings.append(.warn("other-filesystem", "\(audit.otherFilesystems.count) mount point\(audit.otherFilesystems.count == 1 ? "" : "s") inside the folder were not audited (ezmsi stays on one filesystem): \(audit.otherFilesystems.examples.prefix(3).joined(separator: ", "))",
                                  at: Location(file: path), fix: Remediation("Run ezmsi doctor with --folder on each of them")))
        }
        if audit.unscannable.count > 0 {
            findings.append(.warn("unscannable", "ezmsi could not read \(audit.unscannable.count) entries itself: \(audit.unscannable.examples.prefix(3).joined(separator: "; "))",
                                  at: Location(file: path), fix: Remediation("Run ezmsi as the folder's owner or with sudo")))
        }
        if audit.aclsIgnored > 0 {
            findings.append(.info("acl-ignored", "\(audit.aclsIgnored) entries have an ACL whose mask is ---: the kernel ignores their ACL entirely"))
        }
        let summary = "\(audit.directories) folders, \(audit.files) files, \(audit.symlinks) symlinks in \(Int(audit.durationMs.rounded())) ms"
        let rootDenied = audit.examples.values.contains { $0.contains(".") }
        let below = audit.unusableEntries - (rootDenied ? 1 : 0)
        let message = below == 0 ? "uid \(uid) can use every entry below the folder (\(summary))"
                                 : "\(below) entr\(below == 1 ? "y" : "ies") unusable by uid \(uid) (\(summary))"
        return ProbeOutcome(message, findings: findings, fixes: below == 0 ? [] : FolderFixes.actions(facts),
                            details: ["directories": String(audit.directories), "files": String(audit.files),
                                      "symlinks": String(audit.symlinks), "unusable": String(audit.unusableEntries),
                                      "withACL": String(audit.entriesWithACL)])
    }

    private func verbed(_ op: AccessOperation) -> String {
        switch op {
        case .readFile: return "read"
        case .listDirectory: return "listed"
        case .traverse: return "entered"
        case .createInDirectory: return "written into"
        case .writeFile: return "written"
        }
    }

    private func explain(_ cause: TreeAudit.Cause) -> String {
        switch cause {
        case .ownerBits: return "it owns them but the owner bits lack the permission"
        case .namedUserMasked: return "its ACL entry is cut down by the ACL mask"
        case .namedUserLacks: return "its ACL entry lacks the permission"
        case .groupMasked: return "a group ACL entry is cut down by the ACL mask"
        case .groupBits: return "its group's bits lack the permission"
        case .groupClassLacks: return "it matches group entries, none of which alone holds the permission"
        case .otherBits: return "the 'other' bits lack the permission"
        case .rootNeedsExecuteBit: return "no execute bit"
        }
    }
}
