import Foundation

/// A bind mount, host path to container path.
public struct Mount: Codable, Equatable, Sendable {
    public var host: String
    public var container: String
    public var readOnly: Bool
    /// Why it exists: `data`, `config` or `extra`.
    public var role: String

    public init(host: String, container: String, readOnly: Bool = false, role: String = "extra") {
        self.host = host
        self.container = container
        self.readOnly = readOnly
        self.role = role
    }

    /// Parses `HOST:CONTAINER[:ro|:rw]`, HOST made absolute against `base`.
    public static func parse(_ spec: String, base: String) -> Mount? {
        var parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var readOnly = false
        if parts.count == 3, ["ro", "rw"].contains(parts[2]) { readOnly = parts.removeLast() == "ro" }
        guard parts.count == 2, !parts[0].isEmpty, parts[1].hasPrefix("/") else { return nil }
        return Mount(host: Paths.absolute(parts[0], base: base), container: Paths.normalize(parts[1]), readOnly: readOnly)
    }
}

/// Everything the doctor judges and the hand-off runs: one resolved description.
public struct Deployment: Codable, Sendable {
    public var directory: String
    public var envFile: String
    public var configFile: String
    /// The host data folder mounted at /home/openmsi/data.
    public var dataFolder: String?
    public var image: String
    /// `--user`; nil means the image's own user.
    public var user: String?
    public var extraMounts: [Mount]
    /// The OpenMSIStream command, program first (e.g. `DataFileUploadDirectory data --config config.config`).
    public var command: [String]
    public var containerName: String
    /// Site options every hand-off form carries (`docker run`, compose, systemd, Windows).
    public var site: SiteOptions = SiteOptions()
    /// Where each field came from: `flag`, `tracker.json` or `default`.
    public var sources: [String: String]
    public var trackerPath: String?

    /// The image's working directory, where relative paths in the command resolve.
    public static let workingDirectory = ProgramTable.imageHome

    public var program: ProgramSpec? { command.first.flatMap(ProgramTable.program(named:)) }

    /// Data folder, config file and extra mounts, in the order `docker run` gets them.
    public var mounts: [Mount] {
        var list: [Mount] = []
        if let dataFolder { list.append(Mount(host: dataFolder, container: ProgramTable.containerDataPath, role: "data")) }
        list.append(Mount(host: configFile, container: ProgramTable.containerConfigPath, readOnly: true, role: "config"))
        list.append(contentsOf: extraMounts)
        return list
    }

    /// Maps a path as the program sees it inside the container to the host, through the mounts.
    public func hostPath(forContainerPath path: String) -> (host: String, mount: Mount)? {
        let absolute = Paths.absolute(path, base: Self.workingDirectory)
        for mount in mounts.sorted(by: { $0.container.count > $1.container.count }) {
            if absolute == mount.container { return (mount.host, mount) }
            if absolute.hasPrefix(mount.container + "/") {
                return (mount.host + absolute.dropFirst(mount.container.count), mount)
            }
        }
        return nil
    }
}

/// Options a real site needs, passed through to every form ezmsi hands off.
public struct SiteOptions: Codable, Equatable, Sendable {
    /// `--network`: e.g. `host` for a broker on the same machine; nil is docker's default network.
    public var network: String?
    /// Restart policy of the daemon form (`docker run --restart`, compose `restart:`); systemd uses its own.
    public var restart: String = SiteOptions.defaultRestart
    /// `TZ` inside the container (log and registry timestamps); nil keeps the image's.
    public var timezone: String?

    public static let defaultRestart = "unless-stopped"
    public static let restartPolicies = ["no", "always", "unless-stopped", "on-failure"]

    public init(network: String? = nil, restart: String = SiteOptions.defaultRestart, timezone: String? = nil) {
        self.network = network
        self.restart = restart
        self.timezone = timezone
    }

    /// docker's own check: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    public static func isValidRestart(_ policy: String) -> Bool {
        if restartPolicies.contains(policy) { return true }
        guard policy.hasPrefix("on-failure:"), let n = Int(policy.dropFirst("on-failure:".count)) else { return false }
        return n >= 0
    }
}

/// What the command line said; nil means "not given".
public struct DeploymentFlags: Sendable {
    public var deployment: String?
    public var envFile: String?
    public var config: String?
    public var folder: String?
    public var image: String?
    public var user: String?
    public var mounts: [String] = []
    public var name: String?
    public var network: String?
    public var restart: String?
    public var timezone: String?
    public var command: [String] = []

    public init() {}
}

/// A problem that stops ezmsi before any probe runs (exit code 3).
public struct InputError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int?
    public var message: String
    public var fix: String

    public init(file: String, line: Int?, message: String, fix: String) {
        self.file = file
        self.line = line
        self.message = message
        self.fix = fix
    }

    public var description: String {
        let location = line.map { "\(file):\($0)" } ?? file
        return "\(location): \(message)\n  fix: \(fix)"
    }
}

public enum DeploymentResolver {
    public static let defaultImage = "openmsi/openmsistream:latest"

    /// flags > tracker.json > defaults.
    public static func resolve(_ flags: DeploymentFlags, cwd: String) throws -> Deployment {
        let directory = Paths.absolute(flags.deployment ?? ".", base: cwd)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw InputError(file: directory, line: nil, message: "the deployment folder does not exist or is not a folder",
                             fix: "pass --deployment DIR naming a folder, or create one with `ezmsi init DIR --program NAME`")
        }
        let trackerPath = directory + "/tracker.json"
        let tracker = try Tracker.load(trackerPath)
        var sources: [String: String] = [:]

        func pick(_ field: String, flag: String?, tracked: String?, base: String = cwd, path: Bool,
                  fallback: String?) -> String? {
            if let flag, !flag.isEmpty { sources[field] = "flag"; return path ? Paths.absolute(flag, base: base) : flag }
            if let tracked, !tracked.isEmpty {
                sources[field] = "tracker.json"
                return path ? Paths.absolute(Paths.expandHome(tracked), base: directory) : tracked
            }
            sources[field] = "default"
            return fallback
        }
        let envFile = pick("envFile", flag: flags.envFile, tracked: tracker?.envFile, path: true,
                           fallback: directory + "/openmsi.env")!
        let config = pick("config", flag: flags.config, tracked: tracker?.config, path: true,
                          fallback: directory + "/config.config")!
        let folder = pick("folder", flag: flags.folder.map(Paths.expandHome), tracked: tracker?.targetFolder, path: true,
                          fallback: nil)
        let image = pick("image", flag: flags.image, tracked: tracker?.image, path: false, fallback: defaultImage)!
        let user = pick("user", flag: flags.user, tracked: tracker?.user, path: false, fallback: nil)
        let name = pick("name", flag: flags.name, tracked: tracker?.containerName, path: false,
                        fallback: "ezmsi-" + Paths.slug(URL(fileURLWithPath: directory).lastPathComponent))!

        let network = pick("network", flag: flags.network, tracked: tracker?.network, path: false, fallback: nil)
        let restart = pick("restart", flag: flags.restart, tracked: tracker?.restart, path: false,
                           fallback: SiteOptions.defaultRestart)!
        guard SiteOptions.isValidRestart(restart) else {
            throw InputError(file: sources["restart"] == "flag" ? "--restart" : trackerPath, line: nil,
                             message: "\"\(restart)\" is not a docker restart policy",
                             fix: "use one of: no, always, unless-stopped, on-failure[:N]")
        }
        let timezone = pick("timezone", flag: flags.timezone, tracked: tracker?.timezone, path: false, fallback: nil)

        var mounts: [Mount] = []
        let mountSpecs = flags.mounts.isEmpty ? (tracker?.mounts ?? []) : flags.mounts
        sources["mounts"] = flags.mounts.isEmpty ? (tracker?.mounts.isEmpty == false ? "tracker.json" : "default") : "flag"
        for spec in mountSpecs {
            guard let mount = Mount.parse(spec, base: flags.mounts.isEmpty ? directory : cwd) else {
                throw InputError(file: flags.mounts.isEmpty ? trackerPath : "--mount", line: nil,
                                 message: "cannot read the mount \"\(spec)\"",
                                 fix: "write it as HOST:CONTAINER or HOST:CONTAINER:ro with an absolute container path")
            }
            mounts.append(mount)
        }

        var command = flags.command
        sources["command"] = "flag"
        if command.isEmpty, let tracked = tracker?.command, !tracked.isEmpty {
            command = tracked
            sources["command"] = "tracker.json"
        } else if command.isEmpty {
            sources["command"] = "default"
        }
        return Deployment(directory: directory, envFile: envFile, configFile: config, dataFolder: folder, image: image,
                          user: user, extraMounts: mounts, command: command, containerName: name,
                          site: SiteOptions(network: network, restart: restart, timezone: timezone), sources: sources,
                          trackerPath: tracker == nil ? nil : trackerPath)
    }
}

public enum Paths {
    public static func absolute(_ path: String, base: String) -> String {
        normalize(path.hasPrefix("/") ? path : base + "/" + path)
    }

    /// Removes `.`, `..` and duplicate slashes lexically (as the container's path lookup will see them).
    public static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    public static func expandHome(_ path: String) -> String {
        guard path == "~" || path.hasPrefix("~/") else { return path }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
        return home + path.dropFirst()
    }

    static func slug(_ s: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_.-")
        let lowered = s.lowercased().map { allowed.contains($0) ? $0 : "-" }
        let result = String(lowered).trimmingCharacters(in: CharacterSet(charactersIn: "-."))
        return result.isEmpty ? "deployment" : result
    }
}
