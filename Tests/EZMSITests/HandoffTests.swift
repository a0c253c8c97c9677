import Foundation
import Testing
@testable import EZMSICore

/// The printed `docker run` works for real: the fixture image (bash entrypoint, Python-style launchers) runs the
/// program with exactly the deployment's arguments, env-file and mounts.
@Suite(.enabled(if: TestDocker.available))
struct HandoffTests {
    @Test func theSeedFormFailsAndOursWorks() throws {
        // The EZOpenMSIStream README form: the command as CMD to the bash entrypoint.
        let seed = try TestDocker.run(["run", "--rm", "--network", "none", TestDocker.image, "DataFileUploadDirectory", "data"])
        #expect(seed.status != 0)
        #expect(seed.stderr.contains("command not found") || seed.stderr.contains("syntax error"))

        let dir = TempDir("handoff")
        let args = healthyDeployment(dir)
        let out = try ezmsi(["command", "--mode", "daemon", "--format", "json"] + args)
        #expect(out.status == 0, "\(out.stderr)")
        let payload = try decodeJSON(out.stdout)
        var argv = try #require(payload["argv"] as? [String])
        #expect(argv.prefix(2) == ["docker", "run"])
        #expect(argv.contains("--env-file"))
        #expect(argv.contains("--entrypoint"))
        #expect(ShellWords.join(argv) == payload["command"] as? String)
        // The one-line form splits back into the same argv.
        #expect(try ShellWords.split(payload["command"] as? String ?? "") == argv)
        let name = "ezmsi-handoff-\(UUID().uuidString.prefix(8).lowercased())"
        let nameIndex = try #require(argv.firstIndex(of: "--name"))
        argv[nameIndex + 1] = name
        argv.insert(contentsOf: ["--network", "none"], at: 2)
        let started = try TestDocker.run(Array(argv.dropFirst()))
        #expect(started.status == 0, "\(started.stderr)")
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        _ = try TestDocker.run(["wait", name])
        let logs = try TestDocker.run(["logs", name])
        #expect(logs.stdout.contains("FAKE-OPENMSISTREAM DataFileUploadDirectory data --config config.config --topic_name xrd"), "\(logs.stdout) \(logs.stderr)")
        let inspect = try TestDocker.run(["inspect", "--format", "{{json .HostConfig.RestartPolicy.Name}} {{json .Mounts}}", name])
        #expect(inspect.stdout.contains("unless-stopped"))
        #expect(inspect.stdout.contains("/home/openmsi/data"))
        #expect(inspect.stdout.contains("/home/openmsi/config.config"))
    }

    @Test func containerSeesTheEnvFileAndTheMounts() throws {
        let dir = TempDir("handoff-env")
        let args = healthyDeployment(dir)
        let out = try ezmsi(["command", "--mode", "shell", "--format", "json"] + args)
        var argv = try #require(try decodeJSON(out.stdout)["argv"] as? [String])
        #expect(argv.contains("bash"))
        // Replace -it (no terminal here) and ask the shell what it sees.
        argv.removeAll { $0 == "-it" }
        argv.insert(contentsOf: ["--network", "none"], at: 2)
        argv += ["-c", "cat /home/openmsi/config.config >/dev/null && ls /home/openmsi/data && printf '%s' \"$CONFLUENT_USERNAME\""]
        let run = try TestDocker.run(Array(argv.dropFirst()))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("scan.csv"))
        #expect(run.stdout.hasSuffix("lab"))
    }

    @Test func commandRefusesWhileTheDoctorFails() throws {
        let dir = TempDir("refuse")
        let args = healthyDeployment(dir, env: "CONFLUENT_BOOTSTRAP_SERVERS=\n")
        let out = try ezmsi(["command"] + args)
        #expect(out.status == 1)
        #expect(out.stdout.isEmpty)
        #expect(out.stderr.contains("env.credentials"))
        let forced = try ezmsi(["command", "--force"] + args)
        #expect(forced.status == 0)
        #expect(forced.stdout.hasPrefix("docker run "))
    }

    @Test func otherUserGetsHome() {
        let d = Deployment(directory: "/d", envFile: "/d/e", configFile: "/d/c", dataFolder: "/data", image: "img", user: "1234:1234",
                           extraMounts: [Mount(host: "/code", container: "/home/openmsi/custom", readOnly: true)],
                           command: ["DataFileDownloadDirectory", "data"], containerName: "n", sources: [:], trackerPath: nil)
        let plain = DockerRunCommand.build(d, mode: .foreground, selinux: false).argv
        #expect(plain.contains("HOME=/home/openmsi"))
        #expect(plain.contains("type=bind,src=/code,dst=/home/openmsi/custom,readonly"))
        let relabel = DockerRunCommand.build(d, mode: .daemon, selinux: true).argv
        #expect(relabel.contains("/data:/home/openmsi/data:z"))
        #expect(relabel.contains("/d/c:/home/openmsi/config.config:ro,z"))
    }
}
