/// Secrets never appear in output: ezmsi shows presence, length and a short hash instead.
public enum Secrets {
    /// e.g. `set, 12 chars, sha256 3f2a9c1b`.
    public static func fingerprint(_ value: String) -> String {
        let hash = SHA256.hex(Array(value.utf8)).prefix(8)
        return "\(value.count) chars, sha256 \(hash)"
    }

    /// Environment keys whose values are never secret and may be printed.
    static let harmlessKeys: Set<String> = ["TZ", "HOME", "PATH", "LANG", "LC_ALL", "USER", "PYTHONUNBUFFERED"]

    /// Positional arguments that carry secrets (the Girder API key sits on the command line).
    static let secretPositionals: [String: Int] = ["GirderUploadStreamProcessor": 2]

    public static func maskCommand(_ command: [String]) -> [String] {
        guard let program = command.first, let index = secretPositionals[program] else { return command }
        var masked = command
        var seen = 0
        for i in masked.indices.dropFirst() where !masked[i].hasPrefix("--") && !masked[i - 1].hasPrefix("--") {
            seen += 1
            if seen == index { masked[i] = "<secret: \(fingerprint(masked[i]))>" }
        }
        return masked
    }

    /// The last line of defence: every value from the env-file (but harmless keys) and every secret-looking config
    /// value is cut out of the rendered output before it is written.
    public struct Scrubber: Sendable {
        var secrets: [String]

        public init(secrets: [String]) {
            // Longest first, so a secret that contains another is removed whole.
            self.secrets = Array(Set(secrets.filter { $0.count >= 4 })).sorted { $0.count > $1.count }
        }

        public func scrub(_ text: String) -> String {
            guard !secrets.isEmpty else { return text }
            var out = text
            for s in secrets where out.contains(s) {
                out = out.replacingOccurrences(of: s, with: "‹redacted›")
            }
            return out
        }
    }

    static let secretConfigKeys: Set<String> = ["sasl.username", "sasl.password", "ssl.key.password",
                                                "ssl.keystore.password", "sasl.oauthbearer.client.secret",
                                                "access_key_id", "secret_key_id", "bootstrap.servers"]

    public static func isSecretKey(_ key: String) -> Bool { secretConfigKeys.contains(key) }

    public static func scrubber(for facts: Facts) -> Scrubber {
        var values: [String] = []
        if case .success(let env) = facts.envFile.get() {
            for entry in env.file.entries where !harmlessKeys.contains(entry.key) {
                if let v = entry.value { values.append(v); values.append(v.trimmingCharacters(in: .init(charactersIn: "\"' "))) }
            }
        }
        if case .success(let config) = facts.config.get() {
            for section in config.file.sections {
                for option in section.options where secretConfigKeys.contains(option.key) && !option.raw.hasPrefix("$") {
                    values.append(option.raw)
                }
            }
        }
        for arg in facts.deployment.command where Secrets.maskCommand(facts.deployment.command).contains(where: { $0.contains(Secrets.fingerprint(arg)) }) {
            values.append(arg)
        }
        return Scrubber(secrets: values)
    }
}
