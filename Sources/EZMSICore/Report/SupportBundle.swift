import Foundation

/// `ezmsi report`: one JSON file a user attaches to a ticket. It says everything about the setup and nothing secret:
/// secret values are replaced by their length and, for values of `SupportBundleBuilder.minimumFingerprintLength`
/// characters or more, a fingerprint: PBKDF2-HMAC-SHA256 with a random salt per bundle and `Digests.pbkdf2Rounds`
/// rounds. Support can see that two places (the env-file and the config, say) hold the same value (same fingerprint
/// within one bundle) without seeing it; the salt is in the bundle (`redaction.kdf`), so anyone can check a
/// fingerprint, but each guess costs the full KDF, and a short value, which guessing could find, gets no
/// fingerprint at all. Fingerprints of two bundles cannot be matched (different salts).
public struct SupportBundle: Encodable, Sendable {
    /// 2: `hash` (8 hex digits of salted SHA-256) became `fingerprint` (PBKDF2) with `redaction.kdf`.
    public static let bundleVersion = 2

    public var bundleVersion = SupportBundle.bundleVersion
    public var tool: Report.Tool
    public var generatedAt: String
    public var report: Report
    public var host: Host
    public var deployment: DeploymentPart
    public var redaction: Redaction

    public struct Host: Encodable, Sendable {
        public var hostname: String
        public var os: String
        public var kernel: String
        public var architecture: String
        public var dockerClient: String?
        public var dockerEngine: Engine?
        public var bindSources: [BindSource]
    }

    public struct Engine: Encodable, Sendable {
        public var version: String
        public var apiVersion: String
        public var os: String
        /// rootless, userns-remap, selinux, or rootful.
        public var flavour: [String]
        public var storageDriver: String?
        public var cgroupDriver: String?
        public var cgroupVersion: String?
        public var components: [String]
    }

    /// Where a bind mount's host side lives: the filesystem decides ACL support, ownership semantics and speed.
    public struct BindSource: Encodable, Sendable {
        public var role: String
        public var path: String
        public var exists: Bool
        public var filesystem: String?
        public var mountPoint: String?
        public var mountOptions: String?
        public var superOptions: String?
    }

    public struct DeploymentPart: Encodable, Sendable {
        public var summary: DeploymentSummary
        public var site: SiteOptions
        public var envFile: EnvPart
        public var config: ConfigPart
        public var tracker: [String: String]
        public var record: DeploymentRecord?
    }

    public struct EnvPart: Encodable, Sendable {
        public var path: String
        public var problem: String?
        public var mode: String?
        public var refusedByDocker: String?
        public var variables: [Variable]
    }

    /// One value: shown only when it cannot be secret, else its length and (when long enough) its fingerprint.
    public struct Variable: Encodable, Sendable {
        public var key: String
        public var line: Int
        public var bare: Bool
        public var value: String?
        public var length: Int?
        public var fingerprint: String?
    }

    public struct ConfigPart: Encodable, Sendable {
        public var path: String
        public var problem: String?
        public var sections: [Section]
        public var syntaxErrors: [String]
    }

    public struct Section: Encodable, Sendable {
        public var name: String
        public var line: Int
        public var options: [Variable]
    }

    public struct Redaction: Encodable, Sendable {
        public var method: String
        public var kdf: KDFParameters
        public var redactedCount: Int
        /// Where values were withheld, e.g. `openmsi.env:3 CONFLUENT_PASSWORD`.
        public var places: [String]
    }

    /// How each `fingerprint` was made: hex of PBKDF2(`algorithm`, password = the value's UTF-8 bytes, `salt` (hex
    /// decoded), `rounds`, `bytes` output bytes); values shorter than `minimumLength` characters have none.
    public struct KDFParameters: Encodable, Sendable {
        public var algorithm: String
        public var rounds: Int
        public var salt: String
        public var bytes: Int
        public var minimumLength: Int
    }
}

public enum SupportBundleBuilder {
    /// Values of these env keys are never secret and help support (timezone, paths).
    static var harmlessEnvKeys: Set<String> { Secrets.harmlessKeys }

    /// Values shorter than this get no fingerprint, only their length: even a slow KDF does not protect a value
    /// short enough to enumerate.
    public static let minimumFingerprintLength = 12

    public static func build(report: Report, facts: Facts, salt: [UInt8] = randomSalt()) -> SupportBundle {
        let d = facts.deployment
        var places: [String] = []
        var fingerprints: [String: String] = [:]   // the KDF is slow on purpose: once per distinct value
        func redact(_ value: String, place: String) -> (length: Int, fingerprint: String?) {
            places.append(place)
            guard value.count >= minimumFingerprintLength else { return (value.count, nil) }
            if let known = fingerprints[value] { return (value.count, known) }
            let fingerprint = Digests.slowFingerprint(value, salt: salt)
            fingerprints[value] = fingerprint
            return (value.count, fingerprint)
        }

        // The env-file: keys, lines, and for each value its length and hash.
        var env = SupportBundle.EnvPart(path: d.envFile, problem: nil, mode: nil, refusedByDocker: nil, variables: [])
        switch facts.envFile.get() {
        case .failure(let problem): env.problem = problem.description
        case .success(let fact):
            env.mode = String(fact.mode & 0o7777, radix: 8)
            env.refusedByDocker = fact.file.error.map { "line \($0.line): \($0.dockerMessage)" }
            for entry in fact.file.entries {
                var v = SupportBundle.Variable(key: entry.key, line: entry.line, bare: entry.value == nil)
                if let value = entry.value {
                    if harmlessEnvKeys.contains(entry.key) {
                        v.value = value
                    } else {
                        let r = redact(value, place: "\((d.envFile as NSString).lastPathComponent):\(entry.line) \(entry.key)")
                        v.length = r.length
                        v.fingerprint = r.fingerprint
                    }
                }
                env.variables.append(v)
            }
        }

        // The config: values shown, except secret keys and anything that is not a `$VAR` reference in a section
        // holding credentials ([broker], [s3], [girder]); references are names, not values.
        var config = SupportBundle.ConfigPart(path: d.configFile, problem: nil, sections: [], syntaxErrors: [])
        switch facts.config.get() {
        case .failure(let problem): config.problem = problem.description
        case .success(let fact):
            config.syntaxErrors = fact.file.errors.map { "line \($0.line): \($0.kind): \($0.message)" }
            for section in fact.file.sections {
                var part = SupportBundle.Section(name: section.name, line: section.line, options: [])
                for option in section.options {
                    var v = SupportBundle.Variable(key: option.key, line: option.line, bare: false)
                    let raw = option.raw.trimmingCharacters(in: .whitespaces)
                    if raw.hasPrefix("$") || !(Secrets.isSecretKey(option.key) || Self.mayHoldSecrets(section.name, option.key)) {
                        v.value = raw
                    } else {
                        let r = redact(raw, place: "\((d.configFile as NSString).lastPathComponent):\(option.line) [\(section.name)] \(option.key)")
                        v.length = r.length
                        v.fingerprint = r.fingerprint
                    }
                    part.options.append(v)
                }
                config.sections.append(part)
            }
        }

        var tracker: [String: String] = [:]
        let loaded = facts.tracker.get()
        if let loaded {
            for (key, value) in loaded.recipe { tracker[key] = value }
        }

        // Host and engine.
        let hostFacts = HostFacts.gather(dockerEngine: nil)
        var engine: SupportBundle.Engine?
        if case .reachable(_, let info) = facts.engine.get() {
            var flavour: [String] = []
            if info.rootless { flavour.append("rootless") }
            if info.usernsRemap { flavour.append("userns-remap") }
            if info.selinux { flavour.append("selinux") }
            if flavour.isEmpty { flavour.append("rootful") }
            engine = SupportBundle.Engine(version: info.serverVersion, apiVersion: info.apiVersion, os: info.os, flavour: flavour,
                                          storageDriver: info.storageDriver, cgroupDriver: info.cgroupDriver,
                                          cgroupVersion: info.cgroupVersion, components: info.components)
        }
        let table = MountTable.current()
        let binds = d.mounts.map { mount -> SupportBundle.BindSource in
            var exists = false
            var st = stat()
            if stat(mount.host, &st) == 0 { exists = true }
            let entry = table.entry(containing: mount.host)
            return SupportBundle.BindSource(role: mount.role, path: mount.host, exists: exists, filesystem: entry?.filesystem,
                                            mountPoint: entry?.mountPoint, mountOptions: entry?.options, superOptions: entry?.superOptions)
        }
        let host = SupportBundle.Host(hostname: hostFacts.hostname, os: hostFacts.os, kernel: hostFacts.kernel,
                                      architecture: hostFacts.architecture, dockerClient: facts.dockerCLI.get().version,
                                      dockerEngine: engine, bindSources: binds)
        let formatter = ISO8601DateFormatter()
        return SupportBundle(
            tool: report.tool, generatedAt: formatter.string(from: Date()), report: report, host: host,
            deployment: SupportBundle.DeploymentPart(summary: report.deployment, site: d.site, envFile: env, config: config,
                                                     tracker: tracker, record: loaded?.record),
            redaction: SupportBundle.Redaction(
                method: "secret values replaced by their length and, from \(minimumFingerprintLength) characters on, a fingerprint: PBKDF2-HMAC-SHA256 of the value with the salt and rounds of `kdf` (the salt is random per bundle): equal fingerprints within one bundle mean equal values",
                kdf: SupportBundle.KDFParameters(algorithm: "PBKDF2-HMAC-SHA256", rounds: Digests.pbkdf2Rounds, salt: Digests.hex(salt),
                                                 bytes: Digests.fingerprintBytes, minimumLength: minimumFingerprintLength),
                redactedCount: places.count, places: places))
    }

    /// Credentials live in these sections whatever the key is called (e.g. `[s3] secret_key_id`).
    static func mayHoldSecrets(_ section: String, _ key: String) -> Bool {
        let lowered = key.lowercased()
        if ["password", "secret", "token", "api_key", "apikey", "username", "credential"].contains(where: { lowered.contains($0) }) {
            return true
        }
        return ["s3", "girder"].contains(section.lowercased()) && lowered != "endpoint_url" && lowered != "region"
            || section.lowercased() == "broker" && lowered == "bootstrap.servers"
    }

    public static func randomSalt() -> [UInt8] { (0..<16).map { _ in UInt8.random(in: 0...255) } }
}

/// /proc/self/mountinfo: which filesystem and mount options a path lives on.
public struct MountTable: Sendable {
    public struct Entry: Sendable {
        public var mountPoint: String
        public var filesystem: String
        public var options: String
        public var superOptions: String
    }

    public var entries: [Entry]

    public static func current() -> MountTable {
        guard case .success(let snap) = FileReading.read("/proc/self/mountinfo") else { return MountTable(entries: []) }
        return parse(String(decoding: snap.bytes, as: UTF8.self))
    }

    /// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue` (proc(5)).
    public static func parse(_ text: String) -> MountTable {
        var entries: [Entry] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 10, let dash = fields.firstIndex(of: "-"), dash >= 6, dash + 3 < fields.count else { continue }
            entries.append(Entry(mountPoint: unescape(fields[4]), filesystem: fields[dash + 1], options: fields[5],
                                 superOptions: fields[dash + 3]))
        }
        return MountTable(entries: entries)
    }

    /// The last-mounted entry whose mount point contains the (resolved) path.
    public func entry(containing path: String) -> Entry? {
        var resolved = path
        if let real = realpath(path, nil) { resolved = String(cString: real); free(real) }
        var best: Entry?
        for entry in entries {
            let mp = entry.mountPoint
            let inside = mp == "/" || resolved == mp || resolved.hasPrefix(mp + "/")
            if inside, (best == nil || mp.count >= best!.mountPoint.count) { best = entry }
        }
        return best
    }

    /// mountinfo writes space, tab, newline and backslash as `\040`, `\011`, `\012`, `\134`.
    static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out = [UInt8]()
        let bytes = Array(s.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count,
               let v = UInt8(String(decoding: bytes[i + 1...i + 3], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else { out.append(bytes[i]); i += 1 }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
