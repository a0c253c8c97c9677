import Foundation
import Testing
@testable import EZMSIChecks
@testable import EZMSICore

/// The oracle matrix of issue 3: generated folder setups × upload/download × image user/--user. The doctor's static
/// verdict must equal what a real container (fixture image, real dockerd) can actually do, in every case.
@Suite(.serialized, .enabled(if: TestDocker.available))
struct PermissionMatrixTests {
    static let count = 220

    enum Kind: String, CaseIterable {
        case upload, download
        var command: [String] {
            switch self {
            case .upload: return ["DataFileUploadDirectory", "data", "--config", "config.config"]
            case .download: return ["DataFileDownloadDirectory", "data", "--config", "config.config"]
            }
        }
    }

    /// nil = the image's own user (openmsi 1000:1000, groups 27).
    static let users: [String?] = [nil, "1234:1234"]

    /// Generates the matrix under a root-owned 0755 folder the container can traverse.
    static func generate(_ name: String) throws -> String {
        let root = "/tmp/ezmsi-matrix-\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: root)
        let out = try Subprocess.run("/usr/bin/env", ["python3", Repo.root + "/Tests/Oracles/permission_matrix.py", "generate", root,
                                                      "--seed", "0", "--count", String(count)], timeout: 120)
        guard out.status == 0 else { throw TestFailure("matrix generation failed: \(out.stderr)") }
        return root
    }

    static func cases(_ root: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.hasPrefix("case-") }.sorted()
    }

    /// The real container's verdict per case: true = usable.
    static func containerVerdicts(root: String, kind: Kind, user: String?) throws -> [String: String] {
        let dir = TempDir("probe")
        chmod(dir.path, 0o755)
        let script = dir.write("probe.sh", ContainerProbeScript.text, mode: 0o644)
        var argv = ["run", "--rm", "--network", "none"]
        if let user { argv += ["--user", user, "-e", "HOME=/home/openmsi"] }
        argv += ["--mount", "type=bind,src=\(root),dst=/m", "--mount", "type=bind,src=\(script),dst=/probe.sh,readonly",
                 "--entrypoint", "/bin/sh", TestDocker.image, "/probe.sh", "/m", kind.rawValue]
        let out = try TestDocker.run(argv, timeout: 300)
        guard out.status == 0 else { throw TestFailure("container probe failed (exit \(out.status)): \(out.stderr) \(out.stdout.prefix(300))") }
        var verdicts: [String: String] = [:]
        for line in out.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { verdicts[String(parts[0])] = String(parts[1]) }
        }
        return verdicts
    }

    /// The identity the doctor resolves (through the image's own /etc/passwd, via the real daemon).
    static func identity(user: String?) throws -> IdentityFact {
        let dir = TempDir("ident")
        var flags = DeploymentFlags()
        flags.deployment = dir.path
        flags.user = user
        let deployment = try DeploymentResolver.resolve(flags, cwd: dir.path)
        var env = ProcessInfo.processInfo.environment
        env["DOCKER_HOST"] = TestDocker.host
        let facts = Facts(deployment: deployment, environment: env, timeout: 60)
        return try facts.identity.get().get()
    }

    /// The doctor's verdict: folder.access and folder.tree, exactly as `ezmsi doctor` runs them.
    static func doctorVerdict(folder: String, kind: Kind, user: String?, identity: IdentityFact) throws -> (usable: Bool, summary: String) {
        let deployment = Deployment(directory: "/nonexistent", envFile: "/nonexistent/openmsi.env", configFile: "/nonexistent/config.config",
                                    dataFolder: folder, image: TestDocker.image, user: user, extraMounts: [],
                                    command: kind.command, containerName: "matrix", sources: [:], trackerPath: nil)
        let facts = Facts(deployment: deployment, environment: [:], timeout: 60)
        facts.identity.set(.success(identity))
        let access = try FolderAccess().check(facts)
        let tree = try FolderTree().check(facts)
        let usable = access.status != .fail && tree.status != .fail
        return (usable, "\(access.status)/\(tree.status): \(access.message); \(tree.message)")
    }

    @Test func staticVerdictEqualsTheRealContainerInEveryCase() throws {
        let root = try Self.generate("verdict")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cases = try Self.cases(root)
        #expect(cases.count >= 200)
        var total = 0, agreed = 0, usableCount = 0
        var disagreements: [String] = []
        for user in Self.users {
            let identity = try Self.identity(user: user)
            for kind in Kind.allCases {
                let truth = try Self.containerVerdicts(root: root, kind: kind, user: user)
                for c in cases {
                    let real = try #require(truth[c], "\(c) missing from the container's output")
                    let realUsable = real == "OK"   // FAIL …, or MISSING: docker would create it root:root 0755
                    let ours = try Self.doctorVerdict(folder: root + "/" + c + "/data", kind: kind, user: user, identity: identity)
                    total += 1
                    if realUsable { usableCount += 1 }
                    if ours.usable == realUsable { agreed += 1 } else {
                        disagreements.append("\(c) \(kind) \(user ?? "image user"): container \(real), doctor \(ours.summary)")
                    }
                }
            }
        }
        print("permission matrix: \(cases.count) setups, \(total) verdicts, \(agreed) agree (\(usableCount) usable per the container)")
        #expect(total >= 800)
        #expect(usableCount > total / 5 && usableCount < total * 4 / 5, "the matrix must mix usable and unusable setups")
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements:\n\(disagreements.prefix(20).joined(separator: "\n"))")
    }
}
