import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

/// Gathers what every form needs once the doctor has passed.
func formContext(_ gate: GatedDeployment, customImage: String?) -> FormContext {
    var digest: String?
    if case .present(let info) = gate.facts.image.get() {
        digest = DockerCLIClient.digest(of: gate.deployment.image, among: info.repoDigests)
    }
    var owner = "1000:1000"
    if case .success(let identity) = gate.facts.identity.get() { owner = "\(identity.container.uid):\(identity.container.gid)" }
    let host = gate.facts.environment["DOCKER_HOST"].flatMap { $0.isEmpty ? nil : $0 }
    return FormContext(deployment: gate.deployment, selinux: gate.selinux,
                       dockerPath: gate.facts.dockerCLI.get().path ?? "/usr/bin/docker", dockerHost: host,
                       imageDigest: digest, owner: owner, customImage: customImage)
}

/// Writes generated files: new ones created, identical ones left alone, different ones only with --overwrite.
/// Each write is atomic, so an interrupted run leaves either the old or the new file.
func writeGenerated(_ files: [(path: String, mode: mode_t, content: [UInt8])], overwrite: Bool, out: Output) throws {
    var conflicts: [String] = []
    for file in files {
        if case .success(let existing) = FileReading.read(file.path), existing.bytes != file.content, !overwrite {
            conflicts.append(file.path)
        }
    }
    if !conflicts.isEmpty {
        throw CLIError.input(InputError(file: conflicts.joined(separator: ", "), line: nil,
                                message: "already exists with other content; nothing was written",
                                fix: "compare it with the new version, then add --overwrite (or choose another place)"))
    }
    for file in files {
        if case .success(let existing) = FileReading.read(file.path), existing.bytes == file.content {
            out.stderr("unchanged \(file.path)\n")
            continue
        }
        do { try AtomicFile.write(path: file.path, contents: file.content, mode: file.mode) } catch {
            out.stderr("ezmsi: \(error)\n")
            throw CLIError.failed
        }
        out.stderr("wrote \(file.path)\n")
    }
}

func emit(_ text: String, to output: String?, mode: mode_t, gate: GatedDeployment, overwrite: Bool) throws {
    guard let output else { gate.out.stdout(text); return }
    let path = Paths.absolute(Paths.expandHome(output), base: FileManager.default.currentDirectoryPath)
    try writeGenerated([(path, mode, Array(text.utf8))], overwrite: overwrite, out: gate.out)
}
