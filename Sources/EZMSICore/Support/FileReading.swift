import Foundation

/// Why a file the deployment names could not be read. Each case becomes a clear finding, never a crash.
public enum FileProblem: Error, Equatable, Sendable, CustomStringConvertible {
    case missing(String)
    case isDirectory(String)
    case notRegular(String)
    case unreadable(String, String)
    case tooLarge(String, Int)

    public var description: String {
        switch self {
        case .missing(let p): return "\(p) does not exist"
        case .isDirectory(let p): return "\(p) is a directory, not a file"
        case .notRegular(let p): return "\(p) is not a regular file"
        case .unreadable(let p, let why): return "\(p) cannot be read: \(why)"
        case .tooLarge(let p, let n): return "\(p) is \(n) bytes, more than ezmsi reads (16 MiB)"
        }
    }

    public var code: String {
        switch self {
        case .missing: return "file-missing"
        case .isDirectory: return "file-is-directory"
        case .notRegular: return "file-not-regular"
        case .unreadable: return "file-unreadable"
        case .tooLarge: return "file-too-large"
        }
    }
}

public struct FileSnapshot: Sendable {
    public var path: String
    public var bytes: [UInt8]
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
}

public enum FileReading {
    public static let limit = 16 * 1024 * 1024

    /// Reads a whole regular file through one descriptor (so stat and content describe the same inode).
    public static func read(_ path: String) -> Result<FileSnapshot, FileProblem> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            let e = errno
            if e == ENOENT || e == ENOTDIR { return .failure(.missing(path)) }
            return .failure(.unreadable(path, String(cString: strerror(e))))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(.unreadable(path, String(cString: strerror(errno)))) }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return .failure(.isDirectory(path))
        case S_IFREG: break
        default: return .failure(.notRegular(path))
        }
        if Int(st.st_size) > limit { return .failure(.tooLarge(path, Int(st.st_size))) }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var filled = 0
        while true {
            if filled == bytes.count { bytes.append(contentsOf: [UInt8](repeating: 0, count: 4096)) }
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EISDIR { return .failure(.isDirectory(path)) }
                return .failure(.unreadable(path, String(cString: strerror(errno))))
            }
            if n == 0 { break }
            filled += n
            if filled > limit { return .failure(.tooLarge(path, filled)) }
        }
        bytes.removeSubrange(filled...)
        return .success(FileSnapshot(path: path, bytes: bytes, mode: UInt32(st.st_mode), uid: st.st_uid, gid: st.st_gid))
    }
}
