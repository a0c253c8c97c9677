import Foundation
import Testing
@testable import EZMSICore

/// `ezmsi report`: everything about the setup, nothing secret.
@Suite(.enabled(if: TestDocker.available))
struct SupportBundleTests {
    /// Secrets planted in every input a bundle reads.
    static let secrets = [
        "broker-bootstrap.secret.example:9093", "lab-user-7f3a", "Pa55-w0rd!planted", "literal-config-pw-91",
        "s3-secret-key-77aa", "girder-api-key-5c1e", "another\"quoted-secret", "short-pw9",
    ]

    func plantedDeployment(_ dir: TempDir) -> [String] {
        dir.write("openmsi.env", """
            CONFLUENT_BOOTSTRAP_SERVERS=\(Self.secrets[0])
            CONFLUENT_USERNAME=\(Self.secrets[1])
            CONFLUENT_PASSWORD=\(Self.secrets[2])
            SAME_AS_PASSWORD=\(Self.secrets[2])
            QUOTED=\(Self.secrets[6])
            SHORT_SECRET=\(Self.secrets[7])
            TZ=Europe/Berlin

            """, mode: 0o600)
        dir.write("config.config", """
            [broker]
            bootstrap.servers = $CONFLUENT_BOOTSTRAP_SERVERS
            sasl.mechanism = PLAIN
            security.protocol = SASL_SSL
            sasl.username = $CONFLUENT_USERNAME
            sasl.password = \(Self.secrets[3])

            [producer]
            key.serializer = StringSerializer
            value.serializer = DataFileChunkSerializer

            [s3]
            secret_key_id = \(Self.secrets[4])

            """)
        dir.write("tracker.json", """
            {"type": "producer", "installation_notes": "", "primary_contact_email": "ada@lab.example.org",
             "openmsistream_command": "GirderUploadStreamProcessor https://girder.example/api \(Self.secrets[5]) --config config.config"}

            """)
        chown(dir.mkdir("data"), 1000, 1000)
        return ["--deployment", dir.path, "--folder", dir.path + "/data"]
    }

    @Test func bundleHoldsTheFactsAndNoPlantedSecret() throws {
        let dir = TempDir("bundle")
        let args = plantedDeployment(dir)
        let file = dir.path + "/bundle.json"
        let out = try ezmsi(["report", "-o", file] + args)
        #expect(out.status == 0, "\(out.stderr)")
        let text = try String(contentsOfFile: file, encoding: .utf8)
        for secret in Self.secrets {
            // Not the value, nor its base64 or URL encoding, nor any 8 hex digits of its SHA-256.
            let leaks = try SecretForms.leaks(secret, in: text)
            #expect(leaks.isEmpty, "\(secret) leaked into the bundle as \(leaks)")
            #expect(try SecretForms.leaks(secret, in: out.stdout + out.stderr).isEmpty)
        }
        var st = stat()
        stat(file, &st)
        #expect(st.st_mode & 0o077 == 0, "the bundle file is private")

        // The published schema (schemas/bundle.schema.json) holds for the real bundle.
        try FormatOracle.expectValid("bundle", [text], "ezmsi report")
        let bundle = try decodeJSON(text)
        #expect(bundle["bundleVersion"] as? Int == 2)
        #expect((bundle["tool"] as? [String: Any])?["version"] as? String == EZMSI.version)
        let report = try #require(bundle["report"] as? [String: Any])
        #expect((report["checks"] as? [Any])?.isEmpty == false)
        let host = try #require(bundle["host"] as? [String: Any])
        for key in ["os", "kernel", "architecture", "dockerClient"] { #expect(host[key] is String, "host.\(key)") }
        let engine = try #require(host["dockerEngine"] as? [String: Any])
        #expect(engine["version"] as? String == "20.10.24+dfsg1" || (engine["version"] as? String)?.isEmpty == false)
        #expect(engine["storageDriver"] as? String == "vfs")
        #expect(engine["flavour"] as? [String] == ["rootful"])
        let binds = try #require(host["bindSources"] as? [[String: Any]])
        let data = try #require(binds.first { $0["role"] as? String == "data" })
        #expect(data["filesystem"] is String && data["mountOptions"] is String, "\(data)")

        // Secrets are length + a PBKDF2 fingerprint with the bundle's salt, recomputed here by Python's hashlib;
        // equal values give equal fingerprints within the bundle; a value under 12 characters gets its length only.
        let deployment = try #require(bundle["deployment"] as? [String: Any])
        let variables = try #require((deployment["envFile"] as? [String: Any])?["variables"] as? [[String: Any]])
        let password = try #require(variables.first { $0["key"] as? String == "CONFLUENT_PASSWORD" })
        let same = try #require(variables.first { $0["key"] as? String == "SAME_AS_PASSWORD" })
        #expect(password["length"] as? Int == Self.secrets[2].count)
        #expect(password["value"] == nil)
        let kdf = try #require((bundle["redaction"] as? [String: Any])?["kdf"] as? [String: Any])
        #expect(kdf["algorithm"] as? String == "PBKDF2-HMAC-SHA256")
        let rounds = try #require(kdf["rounds"] as? Int)
        #expect(rounds >= 200_000)
        let salt = try #require(kdf["salt"] as? String)
        #expect(salt.count >= 32)
        let bytes = try #require(kdf["bytes"] as? Int)
        func pbkdf2(_ value: String) throws -> String {
            let out = try FormatOracle.python(["-c", "import hashlib, sys; print(hashlib.pbkdf2_hmac('sha256', sys.argv[1].encode(), bytes.fromhex(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])).hex())",
                                               value, salt, String(rounds), String(bytes)])
            return out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(password["fingerprint"] as? String == (try pbkdf2(Self.secrets[2])))
        #expect(password["fingerprint"] as? String == same["fingerprint"] as? String)
        let configOptions = ((deployment["config"] as? [String: Any])?["sections"] as? [[String: Any]] ?? []).flatMap { $0["options"] as? [[String: Any]] ?? [] }
        let literal = try #require(configOptions.first { $0["key"] as? String == "sasl.password" })
        #expect(literal["fingerprint"] as? String == (try pbkdf2(Self.secrets[3])))
        let short = try #require(variables.first { $0["key"] as? String == "SHORT_SECRET" })
        #expect(short["length"] as? Int == Self.secrets[7].count)
        #expect(short["fingerprint"] == nil && short["value"] == nil, "too short to fingerprint: \(short)")
        #expect(variables.first { $0["key"] as? String == "TZ" }?["value"] as? String == "Europe/Berlin", "harmless values are shown")
        let redaction = try #require(bundle["redaction"] as? [String: Any])
        #expect((redaction["redactedCount"] as? Int ?? 0) >= 7)
        #expect((redaction["places"] as? [String])?.contains { $0.contains("sasl.password") } == true)

        // A second bundle uses another salt: hashes cannot be matched across bundles.
        let second = try decodeJSON(try ezmsi(["report"] + args).stdout)
        let secondVars = (((second["deployment"] as? [String: Any])?["envFile"] as? [String: Any])?["variables"] as? [[String: Any]]) ?? []
        #expect(secondVars.first { $0["key"] as? String == "CONFLUENT_PASSWORD" }?["fingerprint"] as? String != password["fingerprint"] as? String)
    }

    @Test func mountTableFindsTheFilesystemOfAPath() {
        let table = MountTable.parse("""
            22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
            40 22 0:35 / /mnt/lab\\040data rw,nosuid - nfs4 server:/export rw,vers=4.2
            """)
        #expect(table.entries.count == 2)
        #expect(table.entries[1].mountPoint == "/mnt/lab data")
        #expect(table.entry(containing: "/mnt/lab data/scans")?.filesystem == "nfs4")
        #expect(table.entry(containing: "/mnt/lab datax")?.filesystem == "ext4")
    }
}
