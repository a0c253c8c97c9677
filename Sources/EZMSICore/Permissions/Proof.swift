import Foundation

/// What a throwaway container with the deployment's image, user and mounts could really do in the folder.
public enum ProofFact: Sendable {
    case notRequested
    case notPossible(String)
    /// `OK`, or `FAIL <operation> <path relative to the folder>`.
    case ran(verdict: String, durationMs: Double)
    case failed(String)

    public var usable: Bool? {
        if case .ran(let verdict, _) = self { return verdict == "OK" }
        return nil
    }
}

enum ProofGatherer {
    /// Runs `ContainerProbeScript` in a container set up like the hand-off's (same image, user, HOME, data mount).
    static func prove(_ deployment: Deployment, requested: Bool, folder: FolderFact, engine: EngineFact, cli: DockerCLIFact,
                      environment: [String: String], timeout: Double) -> ProofFact {
        guard requested else { return .notRequested }
        guard let program = deployment.program, program.folderNeed == .readTreeWriteRoot || program.folderNeed == .writeTree else {
            return .notPossible("only folder programs (DataFileUploadDirectory, DataFileDownloadDirectory) can be proven")
        }
        guard case let .audited(path, _) = folder else { return .notPossible("the folder is missing or was not audited") }
        guard let docker = cli.path, case let .reachable(endpoint, _) = engine else { return .notPossible("no Docker engine") }
        var env = environment
        if endpoint.source != "default" { env["DOCKER_HOST"] = endpoint.host }
        // The script goes into a private temporary folder the container user can read.
        var template = Array((FileManager.default.temporaryDirectory.path + "/ezmsi-prove-XXXXXX").utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            return .failed("cannot create a temporary folder")
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        chmod(dir, 0o755)
        let script = dir + "/probe.sh"
        guard FileManager.default.createFile(atPath: script, contents: Data(ContainerProbeScript.text.utf8),
                                             attributes: [.posixPermissions: 0o644]) else {
            return .failed("cannot write the probe script")
        }
        var argv = ["run", "--rm", "--network", "none", "--label", "ezmsi.purpose=prove"]
        if let user = deployment.user { argv += ["--user", user, "-e", "HOME=\(ProgramTable.imageHome)"] }
        argv += ["--mount", "type=bind,src=\(path),dst=\(ProgramTable.containerDataPath)",
                 "--mount", "type=bind,src=\(script),dst=/tmp/ezmsi-probe.sh,readonly",
                 "--entrypoint", "/bin/sh", deployment.image, "/tmp/ezmsi-probe.sh", "--single", ProgramTable.containerDataPath,
                 program.folderNeed == .readTreeWriteRoot ? "upload" : "download"]
        let start = DispatchTime.now()
        do {
            let out = try Subprocess.run(docker, argv, environment: env, timeout: timeout)
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1_000_000
            guard out.status == 0, let line = out.stdout.split(separator: "\n").last(where: { $0.hasPrefix("single ") }) else {
                return .failed("the proving container exited \(out.status): \(out.stderr.split(separator: "\n").first ?? "")")
            }
            return .ran(verdict: String(line.dropFirst("single ".count)), durationMs: ms)
        } catch {
            return .failed("\(error)")
        }
    }
}
