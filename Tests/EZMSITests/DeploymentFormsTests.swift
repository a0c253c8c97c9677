import Foundation
import Testing
@testable import EZMSICore

/// Runs ezmsi with `input` on stdin (for `run --mode foreground|shell`).
func ezmsiWithInput(_ args: [String], input: String, timeout: Double = 120) throws -> ProcessOutput {
    var env = ProcessInfo.processInfo.environment
    if let host = TestDocker.host { env["DOCKER_HOST"] = host }
    env["EZMSI_OFFLINE"] = "1"   // as in ezmsi(): the example broker does not exist
    let raw: (status: Int32, stdout: [UInt8], stderr: String)
    do {
        raw = try Subprocess.runRaw(Repo.binary, args, environment: env, input: Array(input.utf8), timeout: timeout)
    } catch {
        throw TestFailure("ezmsi \(args): \(error)")
    }
    return ProcessOutput(status: raw.status, stdout: String(decoding: raw.stdout, as: UTF8.self), stderr: raw.stderr)
}

final class LockedBox<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
}

/// `docker inspect` of a container as a dictionary.
func inspectContainer(_ name: String) throws -> [String: Any] {
    let out = try TestDocker.run(["container", "inspect", "--format", "{{json .}}", name])
    guard out.status == 0 else { throw TestFailure("inspect \(name): \(out.stderr)") }
    return try decodeJSON(out.stdout)
}

/// What a container was started with, in a comparable form.
struct StartedWith: Equatable, CustomStringConvertible {
    var entrypoint: [String]
    var cmd: [String]
    var env: Set<String>
    var mounts: Set<String>
    var network: String
    var restart: String
    var user: String

    init(_ inspect: [String: Any]) {
        let config = inspect["Config"] as? [String: Any] ?? [:]
        let host = inspect["HostConfig"] as? [String: Any] ?? [:]
        entrypoint = config["Entrypoint"] as? [String] ?? []
        cmd = config["Cmd"] as? [String] ?? []
        env = Set(config["Env"] as? [String] ?? [])
        mounts = Set((inspect["Mounts"] as? [[String: Any]] ?? []).map {
            "\($0["Source"] as? String ?? "?")->\($0["Destination"] as? String ?? "?") rw=\($0["RW"] as? Bool ?? false)"
        })
        network = host["NetworkMode"] as? String ?? "?"
        let policy = host["RestartPolicy"] as? [String: Any] ?? [:]
        restart = "\(policy["Name"] as? String ?? "")/\(policy["MaximumRetryCount"] as? Int ?? 0)"
        user = config["User"] as? String ?? ""
    }

    var description: String { "entrypoint=\(entrypoint) cmd=\(cmd) env=\(env.sorted()) mounts=\(mounts.sorted()) network=\(network) restart=\(restart) user=\(user)" }
}

func trackerJSON(_ dir: TempDir) throws -> [String: Any] {
    guard let data = FileManager.default.contents(atPath: dir.path + "/tracker.json") else { throw TestFailure("no tracker.json") }
    return try decodeJSON(String(decoding: data, as: UTF8.self))
}

/// Every deployment form, started for real on the fixture image (bash entrypoint, launcher scripts that print
/// `FAKE-OPENMSISTREAM PROGRAM ARGS` and, with EZMSI_FAKE_SLEEP set, then sleep).
@Suite(.enabled(if: TestDocker.available))
struct DeploymentFormsTests {
    static let password = "Pl@nted-s3cret-pw-4711"
    static let longRunningEnv = ExampleFacts.goodEnv.replacingOccurrences(of: "CONFLUENT_PASSWORD=", with: "CONFLUENT_PASSWORD=x")
        + "EZMSI_FAKE_SLEEP=600\nPLANTED_SECRET=\(password)\n"

    @Test func runStartsExactlyTheDeploymentRecordsItAndStatusFollowsItsLife() throws {
        let dir = TempDir("run")
        let args = healthyDeployment(dir, env: Self.longRunningEnv)
        let name = "ezmsi-" + URL(fileURLWithPath: dir.path).lastPathComponent.lowercased()
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        let run = try ezmsi(["run", "--network", "none", "--tz", "Europe/Berlin", "--restart", "on-failure:3"] + args)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")

        // The container got exactly the intended arguments, environment and mounts.
        let inspect = try inspectContainer(name)
        let started = StartedWith(inspect)
        #expect(started.entrypoint == ["DataFileUploadDirectory"])
        #expect(started.cmd == ["data", "--config", "config.config", "--topic_name", "xrd"])
        #expect(started.env.contains("TZ=Europe/Berlin"))
        #expect(started.env.contains("PLANTED_SECRET=\(Self.password)"))
        #expect(started.env.contains("EZMSI_FAKE_SLEEP=600"))
        #expect(started.mounts == ["\(dir.path)/data->/home/openmsi/data rw=true",
                                   "\(dir.path)/config.config->/home/openmsi/config.config rw=false"])
        #expect(started.network == "none")
        #expect(started.restart == "on-failure/3")

        // The record names the container and image, hashes the files, and holds no secret.
        let trackerText = try String(contentsOfFile: dir.path + "/tracker.json", encoding: .utf8)
        #expect(!trackerText.contains(Self.password))
        #expect(!run.stdout.contains(Self.password) && !run.stderr.contains(Self.password))
        let tracker = try trackerJSON(dir)
        let record = try #require(tracker["deployment"] as? [String: Any])
        #expect(record["container_id"] as? String == inspect["Id"] as? String)
        #expect(record["container_name"] as? String == name)
        let imageID = try TestDocker.run(["image", "inspect", "--format", "{{.Id}}", TestDocker.image]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(record["image_id"] as? String == imageID)
        let envStamp = try #require(record["env_file"] as? [String: Any])
        let salt = try #require(envStamp["salt"] as? String)
        // PBKDF2-HMAC-SHA256(bytes, salt, 210,000 rounds), recomputed by Python's hashlib; no fast hash beside it.
        let stamp = try Subprocess.run("/usr/bin/python3", ["-c", "import hashlib,sys; print(hashlib.pbkdf2_hmac('sha256', open(sys.argv[2],'rb').read(), sys.argv[1].encode(), 210000).hex())", salt, dir.path + "/openmsi.env"])
        #expect(envStamp["pbkdf2"] as? String == stamp.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(envStamp["sha256"] == nil)
        #expect((record["command"] as? [String])?.contains("--entrypoint") == true)
        #expect(tracker["type"] as? String == "producer")
        #expect(tracker["service_local_target_folder"] as? String == dir.path + "/data")
        #expect(tracker["network"] as? String == "none")
        #expect((tracker["machine_metadata"] as? String)?.isEmpty == false)

        // Running, no drift.
        var status = try ezmsi(["status", "--format", "json", "--deployment", dir.path])
        #expect(status.status == 0, "\(status.stdout)\n\(status.stderr)")
        var report = try decodeJSON(status.stdout)
        #expect(report["state"] as? String == "running")
        #expect((report["drift"] as? [Any])?.isEmpty == true)
        #expect((report["logs"] as? [String])?.contains("FAKE-OPENMSISTREAM DataFileUploadDirectory data --config config.config --topic_name xrd") == true)
        #expect(!status.stdout.contains(Self.password))

        // Drifted: the config and then the env-file change under the running container.
        dir.write("config.config", ExampleFacts.goodProducerConfig + "# edited\n")
        status = try ezmsi(["status", "--format", "json", "--deployment", dir.path])
        #expect(status.status == 1)
        report = try decodeJSON(status.stdout)
        #expect((report["drift"] as? [[String: Any]])?.map { $0["what"] as? String } == ["config"])
        dir.write("openmsi.env", Self.longRunningEnv + "EXTRA=1\n", mode: 0o600)
        status = try ezmsi(["status", "--deployment", dir.path])
        #expect(status.status == 1)
        #expect(status.stdout.contains("drift      config:") && status.stdout.contains("drift      env-file:"), "\(status.stdout)")

        // Stopped: killed, with its exit code.
        _ = try TestDocker.run(["kill", name])
        _ = try TestDocker.run(["wait", name])
        status = try ezmsi(["status", "--format", "json", "--deployment", dir.path])
        #expect(status.status == 1)
        report = try decodeJSON(status.stdout)
        #expect(report["state"] as? String == "stopped")
        #expect((report["container"] as? [String: Any])?["exitCode"] as? Int == 137)

        // A second run refuses to clobber the container; --replace starts a fresh one and records it.
        let again = try ezmsi(["run", "--network", "none"] + args)
        #expect(again.status == 1)
        #expect(again.stderr.contains("already exists"))
        let replaced = try ezmsi(["run", "--network", "none", "--replace"] + args)
        #expect(replaced.status == 0, "\(replaced.stderr)")
        let newID = try inspectContainer(name)["Id"] as? String
        #expect(newID != inspect["Id"] as? String)
        #expect((try trackerJSON(dir)["deployment"] as? [String: Any])?["container_id"] as? String == newID)
        status = try ezmsi(["status", "--format", "json", "--deployment", dir.path])
        #expect(status.status == 0, "\(status.stdout)")
    }

    @Test func statusSeesTheImageTagMoveOn() throws {
        let dir = TempDir("drift")
        let tag = "ezmsi/drift-\(UUID().uuidString.prefix(8).lowercased()):latest"
        #expect(try TestDocker.run(["tag", TestDocker.image, tag]).status == 0)
        defer { _ = try? TestDocker.run(["rmi", "-f", tag]) }
        let args = healthyDeployment(dir, env: Self.longRunningEnv)
        let name = "ezmsi-" + URL(fileURLWithPath: dir.path).lastPathComponent.lowercased()
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        let run = try ezmsi(["run", "--network", "none", "--image", tag] + args)
        #expect(run.status == 0, "\(run.stderr)")
        // A new image under the same tag (as a `docker pull` of a newer release would do).
        let commit = try TestDocker.run(["commit", name, tag])
        #expect(commit.status == 0, "\(commit.stderr)")
        let status = try ezmsi(["status", "--format", "json", "--deployment", dir.path])
        #expect(status.status == 1)
        let drift = try decodeJSON(status.stdout)["drift"] as? [[String: Any]] ?? []
        #expect(drift.map { $0["what"] as? String } == ["image"], "\(drift)")
        #expect(try decodeJSON(status.stdout)["state"] as? String == "running")
    }

    @Test func runStartsNothingWhileTheDoctorFails() throws {
        let dir = TempDir("refuse")
        var args = healthyDeployment(dir)
        unlink(dir.path + "/openmsi.env")
        args.insert(contentsOf: ["--network", "none"], at: 0)
        let out = try ezmsi(["run"] + args)
        #expect(out.status == 1)
        #expect(out.stderr.contains("env.file"), "\(out.stderr)")
        let name = "ezmsi-" + URL(fileURLWithPath: dir.path).lastPathComponent.lowercased()
        #expect(try TestDocker.run(["container", "inspect", name]).status != 0)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/tracker.json"))
        let status = try ezmsi(["status", "--deployment", dir.path])
        #expect(status.status == 3)
        #expect(status.stderr.contains("no deployment is recorded"))
    }

    @Test func foregroundKeepsStdinOpenAndShellLooksAround() throws {
        let dir = TempDir("fg")
        let args = healthyDeployment(dir, env: ExampleFacts.goodEnv + "EZMSI_FAKE_READ_STDIN=1\n")
        // The fake program prints its arguments, then reads a line from stdin: proof that `q` would reach it.
        let fg = try ezmsiWithInput(["run", "--mode", "foreground", "--network", "none"] + args, input: "q\n")
        #expect(fg.status == 0, "\(fg.stderr)")
        #expect(fg.stdout == "FAKE-OPENMSISTREAM DataFileUploadDirectory data --config config.config --topic_name xrd\nFAKE-STDIN q\n", "\(fg.stdout)")
        #expect(fg.stderr.contains("docker run --rm -i --name"), "\(fg.stderr)")
        let record = try #require(try trackerJSON(dir)["deployment"] as? [String: Any])
        #expect(record["mode"] as? String == "foreground")
        #expect(record["container_id"] is NSNull)

        let shellDir = TempDir("shell")
        let shell = try ezmsiWithInput(["run", "--mode", "shell", "--network", "none"] + healthyDeployment(shellDir),
                                       input: "id -u; echo \"$HOME\"; ls /home/openmsi/data; exit 3\n")
        #expect(shell.status == 3)
        #expect(shell.stdout == "1000\n/home/openmsi\nscan.csv\n", "\(shell.stdout)")
        #expect(!FileManager.default.fileExists(atPath: shellDir.path + "/tracker.json"))
    }

    @Test func customImageBuildsLintsCleanAndRunsTheProgramAsPID1() throws {
        let dir = TempDir("custom")
        let args = healthyDeployment(dir, env: Self.longRunningEnv)
        let context = dir.path + "/custom_image"
        let gen = try ezmsi(["generate", "custom-image", context] + args)
        #expect(gen.status == 0, "\(gen.stderr)")
        // The fixture was imported, so it has no registry digest to pin: that is the one thing the lint may say.
        let issues = CustomImageLinter.lint(directory: context)
        #expect(issues.map(\.code) == ["from-unpinned"], "\(issues)")
        // Generating again changes nothing; a hand-edited file is not overwritten.
        let again = try ezmsi(["generate", "custom-image", context] + args)
        #expect(again.status == 0 && again.stderr.contains("unchanged"))
        dir.write("custom_image/startup-script.sh", "#!/bin/bash\necho edited\n", mode: 0o750)
        let clash = try ezmsi(["generate", "custom-image", context] + args)
        #expect(clash.status == 3)
        #expect(try String(contentsOfFile: context + "/startup-script.sh", encoding: .utf8) == "#!/bin/bash\necho edited\n")
        #expect(try ezmsi(["generate", "custom-image", context, "--overwrite"] + args).status == 0)

        let tag = "ezmsi/custom-\(UUID().uuidString.prefix(8).lowercased()):latest"
        let build = try TestDocker.run(["build", "-q", "-t", tag, context], timeout: 300)
        #expect(build.status == 0, "\(build.stderr)")
        defer { _ = try? TestDocker.run(["rmi", "-f", tag]) }
        let name = "ezmsi-" + URL(fileURLWithPath: dir.path).lastPathComponent.lowercased()
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        let run = try ezmsi(["run", "--network", "none", "--custom-image", tag] + args)
        #expect(run.status == 0, "\(run.stderr)")
        let started = StartedWith(try inspectContainer(name))
        #expect(started.entrypoint == ["/home/openmsi/startup-script.sh"])
        #expect(started.mounts == ["\(dir.path)/data->/home/openmsi/data rw=true"])
        // The script exec'd the program, which exec'd sleep: PID 1 is the program's process, not a shell.
        var comm = ""
        for _ in 0..<50 {
            comm = try TestDocker.run(["exec", name, "cat", "/proc/1/comm"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            if comm == "sleep" { break }
            usleep(100_000)
        }
        #expect(comm == "sleep")
        let logs = try TestDocker.run(["logs", name]).stdout
        #expect(logs.contains("FAKE-OPENMSISTREAM DataFileUploadDirectory data --config config.config --topic_name xrd"))
        let modes = try TestDocker.run(["exec", name, "stat", "-c", "%a %u:%g %n", "/home/openmsi/config.config",
                                        "/home/openmsi/startup-script.sh"]).stdout
        #expect(modes == "640 1000:1000 /home/openmsi/config.config\n750 1000:1000 /home/openmsi/startup-script.sh\n")
        // The env-file never enters the image.
        let history = try TestDocker.run(["exec", name, "sh", "-c", "ls -a /home/openmsi"]).stdout
        #expect(!history.contains("openmsi.env"))
        let status = try ezmsi(["status", "--format", "json", "--deployment", dir.path])
        #expect(try decodeJSON(status.stdout)["state"] as? String == "running", "\(status.stdout)")
    }

    @Test func generatedCustomImageWithADigestLintsClean() throws {
        let dir = TempDir("pinned")
        var d = Deployment(directory: dir.path, envFile: dir.path + "/openmsi.env", configFile: dir.path + "/config.config",
                           dataFolder: dir.path + "/data", image: "openmsi/openmsistream:latest", user: nil, extraMounts: [],
                           command: ["DataFileDownloadDirectory", "data", "--config", "config.config", "--topic_name", "t x",
                                     "--consumer_group_id", "lab"],
                           containerName: "ezmsi-p", sources: [:], trackerPath: nil)
        d.site.timezone = "UTC"
        let digest = "openmsi/openmsistream@sha256:" + String(repeating: "ab", count: 32)
        for file in CustomImage.files(FormContext(deployment: d, imageDigest: digest), configBytes: Array("[broker]\n".utf8)) {
            dir.write("ci/" + file.name, bytes: file.content, mode: Int(file.mode))
        }
        #expect(CustomImageLinter.lint(directory: dir.path + "/ci").isEmpty, "\(CustomImageLinter.lint(directory: dir.path + "/ci"))")
        let script = try String(contentsOfFile: dir.path + "/ci/startup-script.sh", encoding: .utf8)
        #expect(script.contains("exec DataFileDownloadDirectory data --config config.config --topic_name 't x' --consumer_group_id lab \"$@\""))
        #expect(try String(contentsOfFile: dir.path + "/ci/Dockerfile", encoding: .utf8).contains("FROM \(digest)\n"))
    }

    @Test func systemdUnitPassesSystemdAnalyzeVerify() throws {
        guard let analyze = Subprocess.which("systemd-analyze", path: ProcessInfo.processInfo.environment["PATH"]) else {
            if TestDocker.required { throw TestFailure("systemd-analyze missing (Debian package systemd)") }
            return
        }
        let dir = TempDir("systemd")
        let args = healthyDeployment(dir, env: Self.longRunningEnv)
        let units = dir.mkdir("units")
        let name = "ezmsi-" + URL(fileURLWithPath: dir.path).lastPathComponent.lowercased()
        let unitPath = units + "/\(name).service"
        let gen = try ezmsi(["generate", "systemd", "--network", "none", "--tz", "UTC", "-o", unitPath] + args)
        #expect(gen.status == 0, "\(gen.stderr)")
        let unit = try String(contentsOfFile: unitPath, encoding: .utf8)
        for line in ["Requires=docker.service", "Restart=on-failure", "ExecStartPre=-", "ExecStop="] {
            #expect(unit.contains(line), "missing \(line)")
        }
        #expect(!unit.contains("KillMode=none"))
        #expect(!unit.contains(Self.password))
        #expect(unit.contains("--env-file"))
        let verify = try Subprocess.run(analyze, ["verify", unitPath], timeout: 60)
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(!verify.stderr.contains(name), "\(verify.stderr)")
        // The oracle can fail: a relative ExecStart is rejected.
        let broken = units + "/broken-\(name).service"
        try unit.replacingOccurrences(of: "ExecStart=/", with: "ExecStart=").write(toFile: broken, atomically: true, encoding: .utf8)
        let bad = try Subprocess.run(analyze, ["verify", broken], timeout: 60)
        #expect(bad.status != 0 || bad.stderr.contains("broken-"), "\(bad.stderr)")

        // What the unit would start is what `ezmsi run` starts: run its ExecStart words (systemd syntax, unescaped
        // by the same rules) under the test daemon, detached for the test.
        let execStart = try #require(unit.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        let words = try SystemdWords.split(String(execStart.dropFirst("ExecStart=".count)))
        #expect(words.first?.hasPrefix("/") == true)
        #expect(Array(words.dropFirst().prefix(2)) == ["run", "--rm"])
        var argv = Array(words.dropFirst())
        argv.insert("-d", at: 1)
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        let started = try TestDocker.run(argv)
        #expect(started.status == 0, "\(started.stderr)")
        let inspect = StartedWith(try inspectContainer(name))
        #expect(inspect.entrypoint == ["DataFileUploadDirectory"])
        #expect(inspect.env.contains("TZ=UTC"))
        #expect(inspect.network == "none")
        #expect(inspect.restart == "no/0")
    }

    @Test func composeFileIsValidAndStartsTheSameContainerAsRun() throws {
        guard let compose = Subprocess.which("docker-compose", path: ProcessInfo.processInfo.environment["PATH"]) else {
            if TestDocker.required { throw TestFailure("docker-compose missing (Debian package docker-compose)") }
            return
        }
        let dir = TempDir("compose")
        let args = ["--network", "none", "--tz", "Europe/Berlin"] + healthyDeployment(dir, env: Self.longRunningEnv)
        let name = "ezmsi-" + URL(fileURLWithPath: dir.path).lastPathComponent.lowercased()
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        #expect(try ezmsi(["run"] + args).status == 0)
        let viaRun = StartedWith(try inspectContainer(name))
        _ = try TestDocker.run(["rm", "-f", name])

        let file = dir.path + "/docker-compose.yml"
        let gen = try ezmsi(["generate", "compose", "-o", file] + args)
        #expect(gen.status == 0, "\(gen.stderr)")
        #expect(!(try String(contentsOfFile: file, encoding: .utf8)).contains(Self.password))
        var env = ProcessInfo.processInfo.environment
        env["DOCKER_HOST"] = TestDocker.host
        let config = try Subprocess.run(compose, ["-f", file, "config", "-q"], environment: env, timeout: 60)
        #expect(config.status == 0, "\(config.stderr)")
        let project = "p" + UUID().uuidString.prefix(8).lowercased()
        let up = try Subprocess.run(compose, ["-p", project, "-f", file, "up", "-d"], environment: env, timeout: 120)
        #expect(up.status == 0, "\(up.stderr)")
        defer { _ = try? Subprocess.run(compose, ["-p", project, "-f", file, "down"], environment: env, timeout: 60) }
        let viaCompose = StartedWith(try inspectContainer(name))
        #expect(viaCompose == viaRun, "compose: \(viaCompose)\nrun: \(viaRun)")
    }

    @Test func windowsScriptTranslatesPathsAndRestartsWithDockerDesktop() throws {
        let dir = TempDir("windows")
        let args = healthyDeployment(dir)
        let out = try ezmsi(["generate", "windows"] + args)
        #expect(out.status == 0, "\(out.stderr)")
        let script = out.stdout
        #expect(script.contains("'--restart'\r\n    'unless-stopped'"))
        #expect(script.contains("(Join-Path $Deployment 'openmsi.env')"))
        #expect(script.contains("(\"type=bind,src=\" + (Join-Path $Deployment 'data') + ',dst=/home/openmsi/data')"))
        #expect(script.contains("'--entrypoint'\r\n    'DataFileUploadDirectory'"))
        let argumentLines = script.components(separatedBy: "\r\n").filter { $0.hasPrefix("    ") }
        #expect(argumentLines.count > 10)
        #expect(!argumentLines.contains { $0.contains(dir.path) }, "Linux paths must not leak into the Windows script")
        var d = Deployment(directory: "/mnt/c/Users/lab/deploy", envFile: "/mnt/c/Users/lab/deploy/openmsi.env",
                           configFile: "/mnt/c/Users/lab/deploy/config.config", dataFolder: "/mnt/d/scans", image: "openmsi/openmsistream:latest",
                           user: nil, extraMounts: [], command: ["DataFileUploadDirectory", "data"], containerName: "x", sources: [:], trackerPath: nil)
        #expect(WindowsScript.windowsPath("/mnt/d/scans", deployment: d) == "'D:\\scans'")
        d.directory = "/srv/x"
        #expect(WindowsScript.windowsPath("/srv/data", deployment: d).contains("CHECK"))
    }
}

/// systemd's own word splitting for Exec lines (systemd.service(5), "Command lines"), used to read back the unit.
enum SystemdWords {
    static func split(_ line: String) throws -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var chars = Array(line)
        var i = 0
        // Specifier and variable escapes come first: %% → %, $$ → $.
        chars = Array(String(chars).replacingOccurrences(of: "%%", with: "%").replacingOccurrences(of: "$$", with: "$"))
        while i < chars.count {
            let c = chars[i]
            if let q = quote {
                if c == q { quote = nil } else if c == "\\", i + 1 < chars.count {
                    i += 1
                    switch chars[i] {
                    case "n": current.append("\n")
                    case "t": current.append("\t")
                    default: current.append(chars[i])
                    }
                } else { current.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c; inWord = true
            } else if c == " " || c == "\t" {
                if inWord { words.append(current); current = ""; inWord = false }
            } else if c == "\\", i + 1 < chars.count {
                i += 1; current.append(chars[i]); inWord = true
            } else {
                current.append(c); inWord = true
            }
            i += 1
        }
        if quote != nil { throw TestFailure("unterminated quote in \(line)") }
        if inWord { words.append(current) }
        return words
    }
}

/// tracker.json updates keep what the user wrote.
struct TrackerWriterTests {
    @Test func recordKeepsUserFieldsOrderAndWords() throws {
        let dir = TempDir("tracker")
        let original = """
            {
              "lab_notes": "keep me",
              "type": "Producer",
              "primary_contact_email": "ada@lab.example.org",
              "service_local_target_folder": "",
              "count": 1.50
            }
            """
        dir.write("tracker.json", original, mode: 0o640)
        let deployment = Deployment(directory: dir.path, envFile: dir.path + "/openmsi.env", configFile: dir.path + "/config.config",
                                    dataFolder: dir.path + "/data", image: "openmsi/openmsistream:latest", user: nil, extraMounts: [],
                                    command: ["DataFileUploadDirectory", "data"], containerName: "ezmsi-x", sources: [:],
                                    trackerPath: dir.path + "/tracker.json")
        let record = DeploymentRecord(recordedBy: "ezmsi test", mode: "daemon", containerName: "ezmsi-x", containerID: "abc",
                                      image: deployment.image, imageID: "sha256:1", imageDigest: nil, command: ["docker", "run"],
                                      config: nil, envFile: nil, host: HostFacts.gather(dockerEngine: nil), startedAt: "2026-11-26T00:00:00Z")
        try TrackerWriter.record(record, for: deployment)
        let text = try String(contentsOfFile: dir.path + "/tracker.json", encoding: .utf8)
        let keys = try OrderedJSON.parse(Array(text.utf8))
        guard case .object(let pairs) = keys else { throw TestFailure("not an object") }
        #expect(Array(pairs.map(\.0).prefix(5)) == ["lab_notes", "type", "primary_contact_email", "service_local_target_folder", "count"])
        #expect(keys["type"] == .string("Producer"), "a user's own words are not replaced")
        #expect(keys["service_local_target_folder"] == .string(dir.path + "/data"), "an empty field is filled")
        #expect(keys["count"] == .number("1.50"), "numbers stay as written")
        #expect(keys["deployment"]?["container_id"] == .string("abc"))
        var st = stat()
        stat(dir.path + "/tracker.json", &st)
        #expect(st.st_mode & 0o777 == 0o640)
        // Loading it back gives the same record.
        let loaded = try #require(try Tracker.load(dir.path + "/tracker.json"))
        #expect(loaded.record == record)
        // Writing it again is stable.
        try TrackerWriter.record(record, for: deployment)
        #expect(try String(contentsOfFile: dir.path + "/tracker.json", encoding: .utf8) == text)
    }

    @Test func orderedJSONRoundTripsAndRejectsBrokenInput() throws {
        let text = "{\n    \"b\": [\n        1,\n        \"x\\n\\u0001é😀\"\n    ],\n    \"a\": {},\n    \"c\": null\n}\n"
        let value = try OrderedJSON.parse(Array(text.utf8))
        #expect(value.rendered() == text)
        #expect(try OrderedJSON.parse(Array("\"\\u00e9\\ud83d\\ude00\"".utf8)) == .string("é😀"))
        for broken in ["{", "{\"a\" 1}", "[1,]", "{\"a\":01}", "\"\\ud83d\"", "{} x"] {
            #expect(throws: OrderedJSON.SyntaxError.self) { try OrderedJSON.parse(Array(broken.utf8)) }
        }
    }
}
