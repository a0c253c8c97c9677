import Foundation
import Testing
@testable import EZMSICore

/// A container whose PID 1 is systemd (Debian bookworm's; scripts/lib/env.sh ensure_systemd_image) with the host's
/// docker CLI and the test daemon's socket: a generated unit installed there starts its container on the test daemon,
/// as it would on a lab PC.
final class SystemdHost {
    static let image = ProcessInfo.processInfo.environment["EZMSI_SYSTEMD_IMAGE"] ?? ""
    static var available: Bool { (!image.isEmpty && TestDocker.host != nil) || TestDocker.required }

    let name = "ezmsi-systemd-" + UUID().uuidString.prefix(8).lowercased()

    /// Starts it with `binds` (host path → same path, read-only) and `units` (host file → /etc/systemd/system).
    init(binds: [String], units: [String]) throws {
        guard !Self.image.isEmpty, try TestDocker.run(["image", "inspect", Self.image]).status == 0 else {
            throw TestFailure("EZMSI_SYSTEMD_IMAGE (\(Self.image)) is not built: run the suite through scripts/test")
        }
        guard let host = TestDocker.host, host.hasPrefix("unix://") else { throw TestFailure("the test daemon is not a unix socket") }
        let socket = String(host.dropFirst("unix://".count))
        let docker = Subprocess.which("docker", path: ProcessInfo.processInfo.environment["PATH"]) ?? "/usr/bin/docker"
        // systemd needs CAP_SYS_ADMIN, tmpfs /run and the cgroup tree; --privileged is refused on this machine.
        var args = ["run", "-d", "--name", name, "--network", "none", "--cap-add", "SYS_ADMIN",
                    "--security-opt", "seccomp=unconfined", "--tmpfs", "/run", "--tmpfs", "/run/lock",
                    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "\(socket):\(socket)", "-v", "\(docker):\(docker):ro"]
        for path in binds { args += ["-v", "\(path):\(path):ro"] }
        for unit in units { args += ["-v", "\(unit):/etc/systemd/system/\(URL(fileURLWithPath: unit).lastPathComponent):ro"] }
        let started = try TestDocker.run(args + [Self.image])
        guard started.status == 0 else { throw TestFailure("systemd container: \(started.stderr)") }
        // Booted when systemctl answers running (or degraded: some units of a minimal tree may fail in a container).
        var state = ""
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            state = (try? systemctl(["is-system-running"]))?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if state == "running" || state == "degraded" { return }
            usleep(200_000)
        }
        stop()
        throw TestFailure("systemd did not finish booting: \(state)")
    }

    func systemctl(_ args: [String]) throws -> ProcessOutput {
        try TestDocker.run(["exec", name, "systemctl"] + args, timeout: 120)
    }

    func stop() { _ = try? TestDocker.run(["rm", "-f", name]) }
}

@Suite(.enabled(if: SystemdHost.available))
struct SystemdServiceTests {
    /// The container's id and state, or nil when there is none.
    static func container(_ name: String) -> (id: String, running: Bool)? {
        guard let out = try? TestDocker.run(["container", "inspect", "--format", "{{.Id}} {{.State.Running}}", name]),
              out.status == 0 else { return nil }
        let words = out.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        return words.count == 2 ? (words[0], words[1] == "true") : nil
    }

    static func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(250_000)
        }
        return condition()
    }

    @Test func generatedUnitStartsRestartsAndStopsTheContainerUnderSystemd() throws {
        let dir = TempDir("systemd-real")
        let args = healthyDeployment(dir, env: DeploymentFormsTests.longRunningEnv)
        let name = "ezmsi-" + URL(fileURLWithPath: dir.path).lastPathComponent.lowercased()
        let unitName = name + ".service"
        let unitPath = dir.mkdir("units") + "/" + unitName
        let gen = try ezmsi(["generate", "systemd", "--network", "none", "--tz", "UTC", "-o", unitPath] + args)
        #expect(gen.status == 0, "\(gen.stderr)")
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }

        // A stale container under the unit's name, as a crash or an earlier `ezmsi run` leaves: ExecStartPre removes it.
        let stale = try TestDocker.run(["create", "--name", name, "--network", "none", TestDocker.image, "-c", "true"])
        #expect(stale.status == 0, "\(stale.stderr)")
        let staleID = Self.container(name)?.id

        // The deployment folder is bound at its own path: the docker CLI reads the env-file itself.
        let host = try SystemdHost(binds: [dir.path], units: [unitPath])
        defer { host.stop() }
        let start = try host.systemctl(["start", unitName])
        #expect(start.status == 0, "\(start.stderr)")
        var first: (id: String, running: Bool)?
        #expect(Self.waitUntil(60) { first = Self.container(name); return first?.running == true && first?.id != staleID },
                "the unit did not start its container: \((try? host.systemctl(["status", unitName]))?.stdout ?? "")")
        let inspect = StartedWith(try inspectContainer(name))
        #expect(inspect.entrypoint == ["DataFileUploadDirectory"])
        #expect(inspect.env.contains("TZ=UTC"))
        #expect(inspect.network == "none")
        #expect(inspect.restart == "no/0", "systemd alone restarts it")

        // Restart=on-failure: the container dies, `docker run` exits non-zero, systemd starts a new one (RestartSec=10).
        _ = try TestDocker.run(["kill", name])
        #expect(Self.waitUntil(60) { guard let c = Self.container(name) else { return false }; return c.running && c.id != first?.id },
                "systemd did not restart the container: \((try? host.systemctl(["status", unitName]))?.stdout ?? "")")
        #expect(try host.systemctl(["show", "--property", "NRestarts", "--value", unitName]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines) == "1")

        // ExecStop: stopping the service stops the container, which --rm removes; the service ends inactive, not failed.
        let stop = try host.systemctl(["stop", unitName])
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(Self.waitUntil(60) { Self.container(name) == nil }, "the container outlived the service")
        let active = try host.systemctl(["is-active", unitName]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(active == "inactive", "\((try? host.systemctl(["status", unitName]))?.stdout ?? "")\n\((try? TestDocker.run(["exec", host.name, "journalctl", "-u", unitName, "--no-pager"]))?.stdout ?? "")")
    }
}
