import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

/// The doctor's gate shared by `run` and `generate`: resolve, diagnose, refuse while anything fails.
struct GatedDeployment {
    var deployment: Deployment
    var facts: Facts
    var out: Output
    var selinux: Bool

    /// Exits 1 naming the failing probes unless `force`; exits 3 on an unusable deployment definition.
    static func check(_ options: DeploymentOptions, timeout: Double, force: Bool, action: String) throws -> GatedDeployment {
        let resolved: Deployment
        do { resolved = try options.resolve() } catch let e as InputError { throw CLIError.input(e) }
        let (report, facts) = try diagnose(resolved, selection: RunOptions(timeout: timeout))
        let out = Output(scrubber: Secrets.scrubber(for: facts))
        let failing = report.failingIDs
        if !failing.isEmpty {
            if !force {
                out.stderr("ezmsi: not \(action): the doctor fails: \(failing.joined(separator: ", "))\n" +
                           "  run `ezmsi doctor` for details and fixes\n")
                throw CLIError.failed
            }
            out.stderr("ezmsi: --force: \(action) despite failing checks: \(failing.joined(separator: ", "))\n")
        }
        var selinux = false
        if case .reachable(_, let info) = facts.engine.get() { selinux = info.selinux }
        return GatedDeployment(deployment: resolved, facts: facts, out: out, selinux: selinux)
    }

    func dockerCLI() throws -> DockerCLIClient {
        guard let path = facts.dockerCLI.get().path else {
            out.stderr("ezmsi: the docker CLI is not on PATH\n")
            throw CLIError.failed
        }
        return DockerCLIClient(path: path, environment: facts.environment)
    }

    var engineVersion: String? {
        if case .reachable(_, let info) = facts.engine.get() { return info.serverVersion }
        return nil
    }
}
