import Foundation

/// Secrets never appear in output: ezmsi shows presence and length instead, never a hash of the value (an unsalted
/// hash of a password is a way to test guesses against it). Only the support bundle fingerprints values, salted and
/// with a slow KDF (`SupportBundleBuilder`).
public enum Secrets {
    /// e.g. `12 chars`.
    public static func fingerprint(_ value: String) -> String {
        "\(value.count) char\(value.count == 1 ? "" : "s")"
    }

    /// Environment keys whose values are never secret and may be printed.
    static let harmlessKeys: Set<String> = ["TZ", "HOME", "PATH", "LANG", "LC_ALL", "USER", "PYTHONUNBUFFERED"]

    /// Positional arguments that carry secrets (the Girder API key sits on the command line).
    static let secretPositionals: [String: Int] = ["GirderUploadStreamProcessor": 2]

    /// The arguments of `command` that `maskCommand` hides.
    public static func secretArguments(_ command: [String]) -> [String] {
        zip(command, maskCommand(command)).filter { $0.0 != $0.1 }.map(\.0)
    }

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
    /// value is cut out of the rendered output before it is written, as itself and in the encodings a program's log
    /// line or a URL carries it in: base64 (standard and URL-safe, at any alignment inside a longer base64 text, as
    /// in `Authorization: Basic …`) and URL encoding (`%XX`, upper- or lower-case, and `+` for space).
    public struct Scrubber: Sendable {
        /// The values given, and what is cut out: those values and their encodings, longest first.
        var values: Set<String>
        var secrets: [String]

        public init(secrets: [String]) {
            let values = Set(secrets.filter { $0.count >= 4 })
            self.values = values
            var all = values
            for value in values { all.formUnion(Self.encodings(of: value)) }
            // Longest first, so a secret that contains another is removed whole.
            self.secrets = all.sorted { $0.count != $1.count ? $0.count > $1.count : $0 < $1 }
        }

        /// This scrubber and `more` secrets.
        public func adding(_ more: [String]) -> Scrubber { Scrubber(secrets: Array(values) + more) }

        /// The encoded forms of `value` worth cutting out: those of 6 characters or more that differ from it.
        static func encodings(of value: String) -> Set<String> {
            var forms = Set<String>()
            let bytes = Array(value.utf8)
            // base64 of the value at each of the three alignments it can have inside a longer encoded text: the
            // characters that depend on the value's bytes alone.
            for offset in 0..<3 {
                let encoded = Array((Data(repeating: 0, count: offset) + Data(bytes)).base64EncodedString().utf8)
                let first = (8 * offset + 5) / 6, end = (8 * (offset + bytes.count)) / 6
                guard end > first else { continue }
                let core = String(decoding: encoded[first..<end], as: UTF8.self)
                forms.insert(core)
                forms.insert(core.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_"))
            }
            var unreserved = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
            if let url = value.addingPercentEncoding(withAllowedCharacters: unreserved) {
                forms.insert(url)
                forms.insert(Self.lowercasedEscapes(url))
            }
            unreserved.insert(" ")
            if let form = value.addingPercentEncoding(withAllowedCharacters: unreserved)?.replacingOccurrences(of: " ", with: "+") {
                forms.insert(form)
                forms.insert(Self.lowercasedEscapes(form))
            }
            return forms.filter { $0.count >= 6 && $0 != value }
        }

        /// `%2F` → `%2f`.
        static func lowercasedEscapes(_ s: String) -> String {
            var out = ""
            var pending = 0
            for c in s {
                if c == "%" { pending = 2; out.append(c); continue }
                if pending > 0 { out.append(contentsOf: c.lowercased()); pending -= 1 } else { out.append(c) }
            }
            return out
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

    /// Config keys that hold a credential (a broker address is not one: it is secret-looking, not a credential).
    static let credentialConfigKeys: Set<String> = secretConfigKeys.subtracting(["bootstrap.servers"])

    /// A credential written into the config itself instead of `$NAME` (which OpenMSIStream expands from the
    /// environment, i.e. the env-file).
    public struct LiteralSecret: Equatable, Sendable {
        public var section: String
        public var key: String
        public var line: Int
        /// The env-file variable to move it to: the recipe's name where there is one.
        public var suggestedVariable: String
    }

    /// Every literal credential in `config` ([DEFAULT] included), in file order. An empty value is none.
    public static func literalSecrets(in config: ConfigFile) -> [LiteralSecret] {
        let named: [String: String] = ["sasl.username": "CONFLUENT_USERNAME", "sasl.password": "CONFLUENT_PASSWORD"]
        var found: [LiteralSecret] = []
        for (section, options) in [("DEFAULT", config.defaults)] + config.sections.map({ ($0.name, $0.options) }) {
            for option in options where credentialConfigKeys.contains(option.key) {
                let raw = option.raw.trimmingCharacters(in: .whitespaces)
                guard !raw.isEmpty, !raw.hasPrefix("$") else { continue }
                let variable = named[option.key] ?? option.key.uppercased().replacingOccurrences(of: ".", with: "_")
                found.append(LiteralSecret(section: section, key: option.key, line: option.line, suggestedVariable: variable))
            }
        }
        return found.sorted { $0.line < $1.line }
    }

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
        return Scrubber(secrets: values + secretArguments(facts.deployment.command))
    }
}
