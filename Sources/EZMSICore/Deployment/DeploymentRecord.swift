import Foundation

/// What `ezmsi run` started, kept as the `deployment` object of tracker.json so that `ezmsi status` can find the
/// container and tell whether the image, config or env-file changed since. Holds no secret: files are identified by
/// a salted slow KDF of their bytes (`FileStamp`), never by content.
public struct DeploymentRecord: Codable, Equatable, Sendable {
    public var recordedBy: String
    public var mode: String
    public var containerName: String
    /// nil for a foreground run, recorded before the container exists; status then finds it by name.
    public var containerID: String?
    public var image: String
    public var imageID: String?
    /// `repo@sha256:…` when the image came from a registry; nil for a locally built or imported image.
    public var imageDigest: String?
    /// The exact `docker run` argv, secrets masked.
    public var command: [String]
    public var config: FileStamp?
    public var envFile: FileStamp?
    public var host: HostFacts
    public var startedAt: String

    enum CodingKeys: String, CodingKey {
        case recordedBy = "recorded_by", mode, containerName = "container_name", containerID = "container_id", image
        case imageID = "image_id", imageDigest = "image_digest", command, config, envFile = "env_file", host
        case startedAt = "started_at"
    }

    public init(recordedBy: String, mode: String, containerName: String, containerID: String?, image: String,
                imageID: String?, imageDigest: String?, command: [String], config: FileStamp?, envFile: FileStamp?,
                host: HostFacts, startedAt: String) {
        self.recordedBy = recordedBy
        self.mode = mode
        self.containerName = containerName
        self.containerID = containerID
        self.image = image
        self.imageID = imageID
        self.imageDigest = imageDigest
        self.command = command
        self.config = config
        self.envFile = envFile
        self.host = host
        self.startedAt = startedAt
    }
}

extension DeploymentRecord {
    /// The record in its declared field order, for humans reading tracker.json.
    var orderedJSON: OrderedJSON {
        func str(_ s: String?) -> OrderedJSON { s.map { .string($0) } ?? .null }
        func stamp(_ f: FileStamp?) -> OrderedJSON {
            guard let f else { return .null }
            var fields: [(String, OrderedJSON)] = [("path", .string(f.path)), ("salt", .string(f.salt))]
            if let d = f.pbkdf2 { fields.append(("pbkdf2", .string(d))) }
            if let d = f.sha256 { fields.append(("sha256", .string(d))) }
            return .object(fields)
        }
        return .object([
            ("recorded_by", .string(recordedBy)), ("mode", .string(mode)), ("container_name", .string(containerName)),
            ("container_id", str(containerID)), ("image", .string(image)), ("image_id", str(imageID)),
            ("image_digest", str(imageDigest)), ("command", .array(command.map { .string($0) })),
            ("config", stamp(config)), ("env_file", stamp(envFile)),
            ("host", .object([("hostname", .string(host.hostname)), ("os", .string(host.os)),
                              ("kernel", .string(host.kernel)), ("architecture", .string(host.architecture)),
                              ("docker_engine", str(host.dockerEngine))])),
            ("started_at", .string(startedAt)),
        ])
    }
}

/// A file identified without revealing it: `PBKDF2-HMAC-SHA256(bytes, salt, Digests.pbkdf2Rounds)`. The env-file
/// holds passwords, so a fast hash of it, even salted, would let anyone who reads tracker.json test guesses of a short
/// password against it at GPU speed; the slow KDF makes each guess cost what the bundle's fingerprints cost. The salt
/// is random per record, so the same file in two records (or two sites) cannot be matched.
public struct FileStamp: Codable, Equatable, Sendable {
    public var path: String
    public var salt: String
    public var pbkdf2: String?
    /// Records written by earlier versions: `sha256(salt ":" bytes)`, still compared (and replaced at the next run).
    public var sha256: String?

    public init(path: String, salt: String, pbkdf2: String) {
        self.path = path
        self.salt = salt
        self.pbkdf2 = pbkdf2
    }

    /// nil when the file cannot be read.
    public static func make(path: String, salt: String = FileStamp.newSalt()) -> FileStamp? {
        guard case .success(let snap) = FileReading.read(path) else { return nil }
        return FileStamp(path: path, salt: salt, pbkdf2: Digests.slowDigest(snap.bytes, salt: Array(salt.utf8)))
    }

    /// nil: unchanged; otherwise what changed.
    public func drift() -> String? {
        guard case .success(let snap) = FileReading.read(path) else { return "\(path) can no longer be read" }
        let same: Bool
        if let d = pbkdf2 {
            same = Digests.slowDigest(snap.bytes, salt: Array(salt.utf8)) == d
        } else if let d = sha256 {
            same = Digests.sha256Hex(Array((salt + ":").utf8) + snap.bytes) == d
        } else {
            same = false
        }
        return same ? nil : "\(path) changed since the container was started"
    }

    public static func newSalt() -> String {
        var bytes = [UInt8](repeating: 0, count: 8)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        return Digests.hex(bytes)
    }
}

/// The machine a deployment runs on: what support needs to know, nothing secret.
public struct HostFacts: Codable, Equatable, Sendable {
    public var hostname: String
    public var os: String
    public var kernel: String
    public var architecture: String
    public var dockerEngine: String?

    enum CodingKeys: String, CodingKey {
        case hostname, os, kernel, architecture, dockerEngine = "docker_engine"
    }

    public static func gather(dockerEngine: String?) -> HostFacts {
        var name = [CChar](repeating: 0, count: 256)
        let hostname = gethostname(&name, name.count) == 0 ? String(cString: name) : "?"
        var uts = utsname()
        uname(&uts)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        var os = "Linux"
        if case .success(let snap) = FileReading.read("/etc/os-release") {
            for line in String(decoding: snap.bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
                os = String(line.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            }
        }
        return HostFacts(hostname: hostname, os: os, kernel: field(uts.release), architecture: field(uts.machine),
                         dockerEngine: dockerEngine)
    }

    /// One line for tracker.json's `machine_metadata`.
    public var summary: String {
        "\(hostname): \(os), Linux \(kernel) \(architecture)" + (dockerEngine.map { ", Docker Engine \($0)" } ?? "")
    }
}

/// Writes the record into tracker.json, keeping every field and key order the user wrote; fills the recipe's empty
/// fields from what ezmsi knows. The file is replaced atomically (temp file, fsync, rename): never half-written.
public enum TrackerWriter {
    /// `scrubber`: the deployment's secrets; the program's command is kept only when it carries none.
    public static func record(_ record: DeploymentRecord, for deployment: Deployment,
                              scrubber: Secrets.Scrubber = Secrets.Scrubber(secrets: [])) throws {
        let path = deployment.trackerPath ?? deployment.directory + "/tracker.json"
        var document: OrderedJSON
        var mode: mode_t = 0o644
        switch FileReading.read(path) {
        case .success(let snap):
            mode = mode_t(snap.mode & 0o7777)
            do { document = try OrderedJSON.parse(snap.bytes) } catch let e as OrderedJSON.SyntaxError {
                throw InputError(file: path, line: e.line, message: "tracker.json is not valid JSON",
                                 fix: "correct the JSON syntax, then run again")
            }
            guard case .object = document else {
                throw InputError(file: path, line: 1, message: "tracker.json must hold a JSON object { … }",
                                 fix: "start from the template written by `ezmsi init`")
            }
        case .failure(.missing):
            document = .object(Tracker.recipeFields.map { ($0, .string("")) })
        case .failure(let problem):
            throw InputError(file: path, line: nil, message: problem.description, fix: "make tracker.json readable and writable")
        }

        // The recipe's fields: filled only where empty, so a user's own words are never replaced.
        var known: [String: String] = [
            "service_name": deployment.image,
            "service_local_location": deployment.directory,
            "machine_metadata": record.host.summary,
        ]
        if let role = deployment.program?.role { known["type"] = role.rawValue }
        if let folder = deployment.dataFolder { known["service_local_target_folder"] = folder }
        // ezmsi's definition fields, so that the next `ezmsi doctor`/`run`/`status` needs no flags.
        if Secrets.maskCommand(deployment.command) == deployment.command, !deployment.command.isEmpty,
           deployment.command.allSatisfy({ scrubber.scrub($0) == $0 }) {
            known["openmsistream_command"] = ShellWords.join(deployment.command)
        }
        known["image"] = deployment.image
        known["env_file"] = deployment.envFile
        known["config"] = deployment.configFile
        known["container_name"] = deployment.containerName
        if let user = deployment.user { known["user"] = user }
        if let network = deployment.site.network { known["network"] = network }
        if let tz = deployment.site.timezone { known["tz"] = tz }
        if deployment.site.restart != SiteOptions.defaultRestart { known["restart"] = deployment.site.restart }
        for field in Tracker.recipeFields + Tracker.ezmsiFields {
            guard let value = known[field] else { continue }
            switch document[field] {
            case nil, .null?, .string("")?: document[field] = .string(value)
            default: break
            }
        }
        if deployment.extraMounts.count > 0, document["mounts"] == nil {
            document["mounts"] = .array(deployment.extraMounts.map {
                .string("\($0.host):\($0.container)\($0.readOnly ? ":ro" : "")")
            })
        }
        document["deployment"] = record.orderedJSON
        try AtomicFile.write(path: path, contents: Array(document.rendered().utf8), mode: mode)
    }
}

/// Replace a file in one step: write a temp file next to it, fsync, rename over it.
public enum AtomicFile {
    public struct WriteError: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var reason: String
        public var description: String { "cannot write \(path): \(reason)" }
    }

    public static func write(path: String, contents: [UInt8], mode: mode_t) throws {
        let tmp = path + ".ezmsi-\(getpid()).tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw WriteError(path: path, reason: String(cString: strerror(errno))) }
        var ok = true
        var reason = ""
        contents.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    ok = false; reason = String(cString: strerror(errno)); return
                }
                offset += n
            }
        }
        if ok, fchmod(fd, mode) != 0 || fsync(fd) != 0 { ok = false; reason = String(cString: strerror(errno)) }
        close(fd)
        if ok, rename(tmp, path) != 0 { ok = false; reason = String(cString: strerror(errno)) }
        if !ok {
            unlink(tmp)
            throw WriteError(path: path, reason: reason)
        }
    }
}
