import EZMSIChecks
import Foundation
import Glibc
import Testing
@testable import EZMSICore

/// The live gatherer behind `mounts.readable` (the probe itself only judges facts; its examples are in memory):
/// real files, judged for uid 1000 as the kernel would.
struct MountFactsTests {
    private func facts(_ s: TempDir, config: String, extra: [Mount], kafkaCrypto: String = "") -> Facts {
        let deployment = Deployment(directory: s.path, envFile: s.path + "/openmsi.env", configFile: config,
                                    dataFolder: nil, image: "openmsi/openmsistream:latest", user: nil, extraMounts: extra,
                                    command: ["DataFileUploadDirectory", "data"], containerName: "ezmsi-test", sources: [:],
                                    trackerPath: nil)
        let facts = Facts(deployment: deployment, environment: [:], timeout: 1)
        facts.identity.set(.success(ExampleFacts.officialIdentity))
        facts.config.set(.success(ConfigFileFact(file: ConfigParser.parse(text: ExampleFacts.goodProducerConfig + kafkaCrypto,
                                                                           path: config), mode: 0o100644, uid: 0, gid: 0)))
        return facts
    }

    @Test(.enabled(if: PermShell.isRoot)) func unreadableConfigDeniedTreeAndAnUnjudgeableMountAreFindings() throws {
        let s = TempDir("mounts")
        let config = s.file("config.config", mode: 0o600)
        let code = s.dir("code", mode: 0o755)
        s.file("code/secret.py", mode: 0o600)
        s.file("code/open.py", mode: 0o644)
        // lstat fails with ENAMETOOLONG: the gatherer cannot judge it, and says so.
        let unjudgeable = s.path + "/" + String(repeating: "x", count: 300)
        let facts = facts(s, config: config, extra: [
            Mount(host: code, container: "/home/openmsi/code", readOnly: true),
            Mount(host: unjudgeable, container: "/home/openmsi/other", readOnly: true),
            Mount(host: s.path + "/absent", container: "/home/openmsi/absent"),
        ])
        let gathered = facts.mounts.get()
        #expect(gathered.mounts.map(\.mount.role) == ["config", "extra", "extra", "extra"])
        if case .inode(let inode) = gathered.mounts[0].state { #expect(inode.mode & 0o777 == 0o600) } else { Issue.record("config: \(gathered.mounts[0].state)") }
        if case .tree(let audit) = gathered.mounts[1].state { #expect(audit.files == 2) } else { Issue.record("code: \(gathered.mounts[1].state)") }
        if case .failed = gathered.mounts[2].state {} else { Issue.record("unjudgeable: \(gathered.mounts[2].state)") }
        if case .missing = gathered.mounts[3].state {} else { Issue.record("absent: \(gathered.mounts[3].state)") }
        let outcome = try MountsReadable().check(facts)
        let codes = outcome.findings.map(\.code).sorted()
        #expect(codes == ["config-unreadable", "mount-denied", "mount-missing", "mount-unreadable"], "\(outcome.findings)")
        #expect(outcome.findings.first { $0.code == "mount-denied" }?.location?.file == code + "/secret.py")
    }

    @Test(.enabled(if: PermShell.isRoot)) func kafkaCryptoNodeDirectoryOnAMountIsJudgedForWriting() throws {
        let s = TempDir("mounts-node")
        let config = s.file("config.config", mode: 0o644)
        let node = s.dir("node", mode: 0o755)
        let facts = facts(s, config: config, extra: [Mount(host: node, container: "/home/openmsi/node")],
                          kafkaCrypto: "\n[kafkacrypto]\nconfig_file = /home/openmsi/node/lab.config\n")
        #expect(try MountsReadable().check(facts).findings.map(\.code) == ["kafkacrypto-node-readonly"], "root owns it, 0755")
        chown(node, 1000, 1000)
        let after = self.facts(s, config: config, extra: [Mount(host: node, container: "/home/openmsi/node")],
                               kafkaCrypto: "\n[kafkacrypto]\nconfig_file = /home/openmsi/node/lab.config\n")
        #expect(try MountsReadable().check(after).findings.isEmpty)
    }
}
