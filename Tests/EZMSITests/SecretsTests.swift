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
        for format in ["human", "json"] {
            outputs.append(("doctor \(format)", try ezmsi(["doctor", "--format", format] + args, env: hostEnv)))
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
                #expect(!out.stdout.contains(secret) && !out.stderr.contains(secret), "\(name) leaks \(secret.prefix(6))…")
            }
        }
        // Presence is still reported, as a length and a short hash.
        let doctor = outputs[0].1.stdout
        #expect(doctor.contains("CONFLUENT_PASSWORD is set ("))
    }
}
