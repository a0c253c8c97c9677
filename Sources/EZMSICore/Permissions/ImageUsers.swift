import Foundation

/// An image's /etc/passwd and /etc/group, read without running the image. nil = the file does not exist there.
public struct ImageUserFiles: Codable, Sendable, Equatable {
    public var imageID: String
    public var passwd: String?
    public var group: String?

    public init(imageID: String, passwd: String?, group: String?) {
        self.imageID = imageID
        self.passwd = passwd
        self.group = group
    }

    /// The container identity for `spec` (`--user`, or the image's `Config.User`; `""` = root).
    public func resolve(spec: String, groupAdd: [String] = [], source: String? = nil) throws -> ContainerIdentity {
        try IdentityResolver.resolve(spec: spec, passwd: passwd, group: group, groupAdd: groupAdd, source: source)
    }
}

public enum ImageUserFilesError: Error, Equatable, Sendable, CustomStringConvertible {
    case docker(command: String, status: Int32, stderr: String)
    case timedOut(String)
    case badArchive(String)

    public var description: String {
        switch self {
        case let .docker(command, status, stderr):
            return "docker \(command) failed (exit \(status)): \(stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
        case .timedOut(let c): return "docker \(c) did not finish in time"
        case .badArchive(let why): return "docker cp returned a bad archive: \(why)"
        }
    }
}

/// Reads /etc/passwd and /etc/group out of an image: `docker create` (never started, no network), `docker cp -L
/// CONTAINER:/etc/passwd -` (a tar stream, parsed here), `docker rm -f`. Cached by image id in
/// `${XDG_CACHE_HOME:-~/.cache}/ezmsi/images/<id>.json` (an image id names immutable content).
public enum ImageUserGatherer {
    public static func cacheDirectory(environment: [String: String]) -> String? {
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return xdg + "/ezmsi/images" }
        guard let home = environment["HOME"], !home.isEmpty else { return nil }
        return home + "/.cache/ezmsi/images"
    }

    static func cacheFile(directory: String, imageID: String) -> String {
        let hex = imageID.hasPrefix("sha256:") ? String(imageID.dropFirst(7)) : imageID
        let safe = String(hex.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        return directory + "/" + safe + ".json"
    }

    /// The cached files of `imageID`, or reads them from the image and caches them.
    /// `cacheDirectory` nil disables the cache. `environment` must carry DOCKER_HOST etc. for the docker CLI.
    public static func load(imageID: String, docker: String, environment: [String: String],
                            cacheDirectory: String?, timeout: Double = 60) throws -> (files: ImageUserFiles, cached: Bool) {
        if let cacheDirectory {
            let file = cacheFile(directory: cacheDirectory, imageID: imageID)
            if let data = FileManager.default.contents(atPath: file),
               let cached = try? JSONDecoder().decode(ImageUserFiles.self, from: data), cached.imageID == imageID {
                return (cached, true)
            }
        }
        let files = try gather(image: imageID, imageID: imageID, docker: docker, environment: environment, timeout: timeout)
        if let cacheDirectory {
            store(files, directory: cacheDirectory)
        }
        return (files, false)
    }

    static func store(_ files: ImageUserFiles, directory: String) {
        let fm = FileManager.default
        guard (try? fm.createDirectory(atPath: directory, withIntermediateDirectories: true)) != nil,
              let data = try? JSONEncoder().encode(files) else { return }
        let file = cacheFile(directory: directory, imageID: files.imageID)
        let temp = file + ".tmp\(getpid())"
        guard fm.createFile(atPath: temp, contents: data) else { return }
        if rename(temp, file) != 0 { unlink(temp) }
    }

    /// Reads the files from `image` (a reference or id) without caching.
    public static func gather(image: String, imageID: String, docker: String, environment: [String: String],
                              timeout: Double = 60) throws -> ImageUserFiles {
        let create = try run(docker, ["create", "--pull", "never", "--network", "none", "--entrypoint", "/ezmsi-never-started",
                                      "--label", "ezmsi.purpose=read-image-users", image],
                             environment: environment, timeout: timeout)
        guard create.status == 0 else {
            throw ImageUserFilesError.docker(command: "create", status: create.status, stderr: create.stderr)
        }
        let container = String(decoding: create.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? run(docker, ["rm", "-f", container], environment: environment, timeout: timeout) }
        func copy(_ path: String) throws -> String? {
            let out = try run(docker, ["cp", "-L", "\(container):\(path)", "-"], environment: environment, timeout: timeout)
            if out.status != 0 {
                if out.stderr.contains("Could not find the file") || out.stderr.contains("No such container:path") {
                    return nil
                }
                throw ImageUserFilesError.docker(command: "cp \(path)", status: out.status, stderr: out.stderr)
            }
            guard let bytes = try Tar.firstFile(out.stdout) else { return nil }
            return String(decoding: bytes, as: UTF8.self)
        }
        return ImageUserFiles(imageID: imageID, passwd: try copy("/etc/passwd"), group: try copy("/etc/group"))
    }

    struct RawOutput {
        var status: Int32
        var stdout: [UInt8]
        var stderr: String
    }

    static func run(_ executable: String, _ arguments: [String], environment: [String: String], timeout: Double) throws -> RawOutput {
        do {
            let raw = try Subprocess.runRaw(executable, arguments, environment: environment, timeout: timeout)
            return RawOutput(status: raw.status, stdout: raw.stdout, stderr: raw.stderr)
        } catch SubprocessError.timedOut {
            throw ImageUserFilesError.timedOut(arguments.first ?? executable)
        }
    }
}

/// Just enough of ustar/pax/GNU tar to take the first regular file out of `docker cp … -`.
enum Tar {
    static func firstFile(_ bytes: [UInt8]) throws -> [UInt8]? {
        var offset = 0
        while offset + 512 <= bytes.count {
            let header = bytes[offset..<offset + 512]
            if header.allSatisfy({ $0 == 0 }) { return nil }
            guard checksumOK(header) else { throw ImageUserFilesError.badArchive("bad header checksum at \(offset)") }
            let size = try number(header, at: 124, length: 12)
            let type = header[header.startIndex + 156]
            let dataStart = offset + 512
            guard size >= 0, dataStart + size <= bytes.count else {
                throw ImageUserFilesError.badArchive("entry of \(size) bytes runs past the end")
            }
            switch type {
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
                return Array(bytes[dataStart..<dataStart + size])
            case UInt8(ascii: "2"), UInt8(ascii: "1"):
                return nil  // a link (docker cp -L should have resolved it)
            default:
                break  // pax headers (x, g), GNU long names (L, K), directories…
            }
            offset = dataStart + (size + 511) / 512 * 512
        }
        return nil
    }

    /// Octal (NUL/space terminated) or GNU base-256 (high bit of the first byte set).
    static func number(_ header: ArraySlice<UInt8>, at position: Int, length: Int) throws -> Int {
        let start = header.startIndex + position
        let field = header[start..<start + length]
        if let first = field.first, first & 0x80 != 0 {
            var value = Int(first & 0x7F)
            for b in field.dropFirst() { value = value << 8 | Int(b) }
            return value
        }
        var value = 0
        var seenDigit = false
        for b in field {
            if b == 0 || (b == 0x20 && seenDigit) { break }
            if b == 0x20 { continue }
            guard (0x30...0x37).contains(b) else { throw ImageUserFilesError.badArchive("bad octal number") }
            value = value * 8 + Int(b - 0x30)
            seenDigit = true
        }
        return value
    }

    static func checksumOK(_ header: ArraySlice<UInt8>) -> Bool {
        guard let stored = try? number(header, at: 148, length: 8) else { return false }
        var sum = 0
        for (i, b) in header.enumerated() { sum += (148..<156).contains(i) ? 0x20 : Int(b) }
        return sum == stored
    }
}
