import Foundation
import Testing
@testable import EZMSICore

/// Unique values planted as credentials never appear in any output of any command, in any format.
struct SecretsTests {
    @Test func plantedSecretsNeverAppear() throws {
        let dir = TempDir("secrets")
        let token = UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12)
        let server = "broker-\(token).example:9093"
        let user = "user-\(token)"
        let password = "pw-\(token)-%x"
        let hostOnly = "host-\(token)"
        let literal = "literal-\(token)"
        // Every way a secret can sit in the files: plain, quoted, trailing space, bare key from the host, config literal.
        let env = """
            CONFLUENT_BOOTSTRAP_SERVERS=\(server)
            CONFLUENT_USERNAME="\(user)"
            CONFLUENT_PASSWORD=\(password)\u{20}
            EZMSI_PLANTED_HOST
            CONFLUENT_PASSWORD=\(password)

            """
        var args = healthyDeployment(dir, env: env)
        dir.write("config.config", ExampleFacts.goodProducerConfig + "\n[heartbeat]\nsasl.password = \(literal)\n")
        chmod(dir.path + "/openmsi.env", 0o644)
        let secrets = [server, user, password, hostOnly, literal]
        let hostEnv = ["EZMSI_PLANTED_HOST": hostOnly]
        var outputs: [(String, ProcessOutput)] = []
        for format in ["human", "json", "junit", "markdown", "sarif", "github"] {
            outputs.append(("doctor \(format)", try ezmsi(["doctor", "--format", format] + args, env: hostEnv)))
        }
        for format in ["human", "json"] {
            outputs.append(("command \(format)", try ezmsi(["command", "--force", "--format", format] + args, env: hostEnv)))
            outputs.append(("refused command \(format)", try ezmsi(["command", "--format", format] + args, env: hostEnv)))
        }
        // A Girder API key on the command line is masked in reports too.
        args = Array(args.prefix(while: { $0 != "--" })) + ["--", "GirderUploadStreamProcessor", "http://g/api/v1", literal, "--config", "config.config"]
        outputs.append(("girder json", try ezmsi(["doctor", "--format", "json"] + args, env: hostEnv)))
        outputs.append(("girder human", try ezmsi(["doctor"] + args, env: hostEnv)))
        for (name, out) in outputs {
            #expect(!out.stdout.isEmpty || !out.stderr.isEmpty, "\(name) printed nothing")
            for secret in secrets {
                // Not the value, its base64 or URL encoding, nor any 8 hex digits of its SHA-256.
                let leaks = try SecretForms.leaks(secret, in: out.stdout + out.stderr)
                #expect(leaks.isEmpty, "\(name) leaks \(secret.prefix(6))… as \(leaks)")
            }
        }
        // Presence is still reported, as the length alone.
        let doctor = outputs[0].1.stdout
        #expect([password.count, password.count + 1].contains { doctor.contains("CONFLUENT_PASSWORD is set (\($0) chars)") }, "\(doctor)")
        #expect(outputs.allSatisfy { !$0.1.stdout.contains("sha256 ") }, "no hash is printed next to a credential")
    }
}

/// `ezmsi run` and `ezmsi status` on a real container: the recorded command, the container's log lines and every
/// output hold no secret, in clear, base64 or URL-encoded, nor a SHA-256 prefix of one.
@Suite(.enabled(if: TestDocker.available))
struct SecretsDockerTests {
    @Test func runRecordAndStatusLogsHoldNoSecret() throws {
        let dir = TempDir("secrets-run")
        let password = DeploymentFormsTests.password
        let apiKey = "girder-key-" + UUID().uuidString.prefix(12)
        var args = healthyDeployment(dir, env: DeploymentFormsTests.longRunningEnv)
        dir.write("config.config", ExampleFacts.goodConsumerConfig)
        // The fake program prints its arguments: the API key in clear, and the env-file's password base64- and
        // URL-encoded (as Python's base64.b64encode and urllib.parse.quote write them), reach the container's log.
        let encoded = try FormatOracle.python(["-c", "import base64, sys, urllib.parse; print(base64.b64encode(sys.argv[1].encode()).decode()); print(urllib.parse.quote(sys.argv[1], safe=''))", password])
            .stdout.split(separator: "\n").map(String.init)
        #expect(encoded.count == 2 && encoded[1] != password)
        args = Array(args.prefix { $0 != "--" }) + ["--", "GirderUploadStreamProcessor", "http://girder.example/api/v1", apiKey,
                                                     "--config", "config.config", "--collection_name", "basic:" + encoded[0],
                                                     "--girder_root_folder_path", "/p?pw=" + encoded[1]]
        let name = "ezmsi-" + URL(fileURLWithPath: dir.path).lastPathComponent.lowercased()
        defer { _ = try? TestDocker.run(["rm", "-f", name]) }
        let run = try ezmsi(["run", "--network", "none", "--force"] + args, timeout: 120)
        #expect(run.status == 0, "\(run.stderr)")
        // The container really got the key and logged it (so the scrub below had something to cut).
        let raw = try TestDocker.run(["logs", name])
        var outputs: [(String, String)] = [("run", run.stdout + run.stderr)]
        for _ in 0..<20 where !(try TestDocker.run(["logs", name])).stdout.contains(apiKey) { usleep(250_000) }
        #expect(try TestDocker.run(["logs", name]).stdout.contains(apiKey), "\(raw.stdout)\(raw.stderr)")
        for format in ["human", "json"] {
            let status = try ezmsi(["status", "--format", format, "--deployment", dir.path])
            #expect(status.stdout.contains("FAKE-OPENMSISTREAM GirderUploadStreamProcessor"), "\(format): no log line: \(status.stdout)")
            outputs.append(("status \(format)", status.stdout + status.stderr))
        }
        let tracker = try String(contentsOfFile: dir.path + "/tracker.json", encoding: .utf8)
        outputs.append(("tracker.json", tracker))
        let recorded = try #require((try trackerJSON(dir)["deployment"] as? [String: Any])?["command"] as? [String])
        #expect(recorded.contains("<secret: \(apiKey.count) chars>"), "\(recorded)")
        for (what, text) in outputs {
            for secret in [apiKey, password] {
                let leaks = try SecretForms.leaks(secret, in: text)
                #expect(leaks.isEmpty, "\(what) leaks \(secret.prefix(6))… as \(leaks)")
            }
        }
    }
}
