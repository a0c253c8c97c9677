import Foundation
import Testing
@testable import EZMSIChecks
@testable import EZMSICore

/// A credential written into config.config instead of `$NAME`: a warning that names the key and line (never the
/// value), and `ezmsi generate custom-image` refuses to bake it into an image.
struct LiteralSecretTests {
    static let literal = "hunter2-literal-" + UUID().uuidString.prefix(8)

    /// A healthy consumer deployment whose [broker] sasl.password (line 6) is a literal.
    func deployment(_ dir: TempDir, config: String) -> [String] {
        var args = healthyDeployment(dir)
        dir.write("config.config", config)
        args = Array(args.prefix { $0 != "--" }) + ["--", "DataFileDownloadDirectory", "data", "--config", "config.config",
                                                     "--topic_name", "xrd", "--consumer_group_id", "xrd_lab"]
        return args
    }

    static var literalConfig: String {
        ExampleFacts.goodConsumerConfig.replacingOccurrences(of: "sasl.password     = $CONFLUENT_PASSWORD",
                                                             with: "sasl.password     = \(literal)")
    }

    static func line(of needle: String, in text: String) -> Int {
        (text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains(needle) } ?? -1) + 1
    }

    @Test func literalCredentialsAreFoundWithTheirLineAndReferencesAreNot() {
        let text = "[DEFAULT]\nsasl.username = dflt-user\n[broker]\nsasl.password = $CONFLUENT_PASSWORD\nsasl.username =\n" +
            "bootstrap.servers = b:9092\n[s3]\naccess_key_id = AKIA-literal\nsecret_key_id = $SECRET_KEY_ID\n[heartbeat]\nssl.key.password = k\n"
        let found = Secrets.literalSecrets(in: ConfigParser.parse(text: text, path: "/c"))
        #expect(found.map { "\($0.section) \($0.key) \($0.line) \($0.suggestedVariable)" } == [
            "DEFAULT sasl.username 2 CONFLUENT_USERNAME", "s3 access_key_id 8 ACCESS_KEY_ID", "heartbeat ssl.key.password 11 SSL_KEY_PASSWORD",
        ])
    }

    @Test func doctorWarnsWithKeyAndLineAndNeverTheValue() throws {
        let dir = TempDir("literal")
        let args = deployment(dir, config: Self.literalConfig)
        let json = try ezmsi(["doctor", "--offline", "--skip", "docker.", "--format", "json"] + args)
        let report = try JSONDecoder().decode(Report.self, from: Data(json.stdout.utf8))
        let keys = try #require(report.checks.first { $0.id == "config.keys" })
        let finding = try #require(keys.findings.first { $0.code == "literal-secret" }, "\(keys.findings.map(\.code))")
        #expect(finding.severity == .warn)
        #expect(finding.location == Location(file: dir.path + "/config.config", line: Self.line(of: Self.literal, in: Self.literalConfig)))
        #expect(finding.message.contains("[broker] sasl.password"))
        #expect(finding.remediation?.text.hasPrefix("Move it to the env-file and write $NAME") == true)
        #expect(finding.remediation?.text.contains("$CONFLUENT_PASSWORD") == true)
        for format in ["human", "json", "markdown", "github"] {
            let out = try ezmsi(["doctor", "--offline", "--skip", "docker.", "--format", format] + args)
            #expect(out.stdout.contains("literal-secret") || out.stdout.contains("literal credential"), "\(format)")
            #expect(try SecretForms.leaks(Self.literal, in: out.stdout + out.stderr).isEmpty, "\(format) shows the value")
        }
        // The same config with $NAME has no such finding.
        let cleanDir = TempDir("literal-ok")
        let clean = try ezmsi(["doctor", "--offline", "--skip", "docker.", "--format", "json"] + deployment(cleanDir, config: ExampleFacts.goodConsumerConfig))
        let cleanReport = try JSONDecoder().decode(Report.self, from: Data(clean.stdout.utf8))
        #expect(cleanReport.checks.flatMap(\.findings).allSatisfy { $0.code != "literal-secret" })
    }

    @Test func customImageRefusesALiteralCredentialAndTheGirderKey() throws {
        let dir = TempDir("literal-image")
        let args = deployment(dir, config: Self.literalConfig)
        let context = dir.path + "/custom_image"
        for extra in [[], ["--force"]] {
            let out = try ezmsi(["generate", "custom-image", context] + extra + args, timeout: 120)
            #expect(out.status == 1, "\(extra): \(out.stdout)\(out.stderr)")
            let line = Self.line(of: Self.literal, in: Self.literalConfig)
            #expect(out.stderr.contains("\(dir.path)/config.config:\(line): [broker] sasl.password holds a literal credential"), "\(out.stderr)")
            #expect(out.stderr.contains("write `sasl.password = $CONFLUENT_PASSWORD`"))
            #expect(try SecretForms.leaks(Self.literal, in: out.stdout + out.stderr).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: context), "nothing is written")
        }

        // A Girder API key on the command line would land in the startup script: refused too.
        let girder = Array(args.prefix { $0 != "--" }) + ["--", "GirderUploadStreamProcessor", "http://girder.example/api/v1",
                                                          "girder-key-\(UUID().uuidString.prefix(8))", "--config", "config.config"]
        dir.write("config.config", ExampleFacts.goodConsumerConfig)
        let refused = try ezmsi(["generate", "custom-image", context, "--force"] + girder, timeout: 120)
        #expect(refused.status == 1 && refused.stderr.contains("carries a secret"), "\(refused.stderr)")
        #expect(!refused.stderr.contains(girder[girder.count - 3]))
        #expect(!FileManager.default.fileExists(atPath: context))

        // With $NAME the image is written, and what its Dockerfile says of the config is true of the copy.
        let ok = try ezmsi(["generate", "custom-image", context, "--force"] + args, timeout: 120)
        #expect(ok.status == 0, "\(ok.stderr)")
        let dockerfile = try String(contentsOfFile: context + "/Dockerfile", encoding: .utf8)
        #expect(dockerfile.contains("It holds no credential"))
        let copied = try #require(FileManager.default.contents(atPath: context + "/config.config"))
        #expect(Secrets.literalSecrets(in: ConfigParser.parse(bytes: Array(copied), path: "copy")).isEmpty)
        #expect(String(decoding: copied, as: UTF8.self).contains("sasl.password     = $CONFLUENT_PASSWORD"))
    }
}
