import EZMSICore
import Foundation

/// The container's user against the host user who fills (or reads) the folder.
public struct IdentityAlignment: Probe {
    public let id = "identity.alignment"
    public let title = "Container user and host user"
    public let rationale = """
        OpenMSIStream is installed in /home/openmsi/.local: another --user needs HOME=/home/openmsi. Files the host \
        user adds later (restrictive umask, or `mv`, which keeps the old ACL) must stay readable by the container.
        """
    public let dependsOn = ["docker.image"]
    public init() {}

    public var examples: [ProbeExample] {
        let other = ContainerIdentity(uid: 1234, gid: 1234, source: "--user 1234:1234", home: "/")
        return [
            ProbeExample("the image's own user", expect: .pass) { ExampleFacts.make() },
            ProbeExample("--user 1234 without HOME", expect: .fail, code: "identity-home") {
                ExampleFacts.make(user: "1234:1234", identity: IdentityFact(container: other, host: other, mapping: .none, spec: "1234:1234", fromFlag: true))
            },
            ProbeExample("--user 1234 with HOME in the env-file", expect: .pass) {
                ExampleFacts.make(env: ExampleFacts.goodEnv + "HOME=/home/openmsi\n", user: "1234:1234",
                                  identity: IdentityFact(container: other, host: other, mapping: .none, spec: "1234:1234", fromFlag: true))
            },
            ProbeExample("unknown user name", expect: .fail, code: "identity-unresolved") {
                let facts = ExampleFacts.make(user: "nobodyhere", identity: nil)
                facts.identity.set(.failure(IdentityUnavailable("unable to find user nobodyhere: no matching entries in passwd file")))
                return facts
            },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        let fact: IdentityFact
        switch facts.identity.get() {
        case .failure(let why):
            return ProbeOutcome("cannot resolve the container's user", findings: [.fail(
                "identity-unresolved", why.description, fix: Remediation("Use a user that exists in the image, or numeric ids (--user UID:GID)"))])
        case .success(let f):
            fact = f
        }
        var findings: [Finding] = []
        let c = fact.container
        var details = ["container": c.description, "host": fact.host.description, "mapping": fact.mapping.rawValue,
                       "home": c.home ?? "?"]
        if fact.mapping != .none {
            findings.append(.info("mapped", "\(fact.mapping.rawValue): the container's uid \(c.uid) writes as host uid \(fact.host.uid)"))
        }
        // The official image's user site lives in /home/openmsi; Python finds it through HOME.
        if c.uid != ProgramTable.imageUID, c.home != ProgramTable.imageHome {
            let envHome = facts.containerEnvironment?["HOME"]
            if envHome != ProgramTable.imageHome {
                findings.append(.fail("identity-home", "\(fact.spec.isEmpty ? "root" : "--user " + fact.spec) gets HOME=\(c.home ?? "/"): Python then cannot find OpenMSIStream, installed in \(ProgramTable.imageHome)/.local",
                                      evidence: Evidence(expected: "HOME=\(ProgramTable.imageHome)", actual: "HOME=\(envHome ?? c.home ?? "/")"),
                                      at: Location(file: facts.deployment.envFile),
                                      fix: Remediation("Add HOME=\(ProgramTable.imageHome) to the env-file (ezmsi command also passes -e HOME)")))
            }
        }
        // The host user who drops files into an upload folder, or reads results from a download folder.
        let hostUser = ProcessInfo.processInfo.environment["SUDO_UID"].flatMap(UInt32.init) ?? getuid()
        details["hostUser"] = String(hostUser)
        if case let .audited(path, audit) = facts.folder.get(), hostUser != fact.host.uid, hostUser != 0 || audit.rootSecurity?.uid == 0 {
            let need = facts.deployment.program?.folderNeed
            let grants = audit.rootDefaultACL?.entries.contains { $0.tag == .user(fact.host.uid) } == true
            let mask = umask(0); umask(mask)
            // Without a default ACL, new files get the creator's umask; other-readable files still reach the container.
            let hidden = mask & 0o004 != 0 && !audit.identity.inGroup(getgid())
            if need == .readTreeWriteRoot, !grants, hidden {
                findings.append(.warn("inheritance", "files you (uid \(hostUser)) add to \(path) later get your umask \(String(format: "%03o", mask)), which hides them from uid \(fact.host.uid), and no default ACL grants it access",
                                      at: Location(file: path),
                                      fix: Remediation("Give the folder a default ACL so new files inherit access",
                                                       commands: ["setfacl -d -m u:\(fact.host.uid):rX \(ShellWords.quote(path))", "ezmsi fix --yes"])))
            } else if need == .readTreeWriteRoot {
                findings.append(.info("inheritance", grants ? "new files inherit access from the default ACL; files moved in with mv keep their own permissions"
                                                            : "new files are readable through your umask \(String(format: "%03o", mask)); files moved in with mv keep their own permissions"))
            }
        }
        return ProbeOutcome("container runs as \(c)\(fact.mapping == .none ? "" : ", host \(fact.host)")", findings: findings, details: details)
    }
}
