import Foundation

/// Why the daemon's socket could not be used, named from connect(2)'s errno.
public enum SocketFailure: Error, Equatable, Sendable, CustomStringConvertible {
    case noSocketFile(String)
    case notASocket(String)
    case refused(String)            // stale socket: the file exists, nobody listens (daemon down)
    case permissionDenied(String)
    case timedOut(String, Double)
    case protocolError(String, String)
    case other(String, String)

    public var description: String {
        switch self {
        case .noSocketFile(let p): return "no socket file at \(p): the Docker daemon is not running (or listens elsewhere)"
        case .notASocket(let p): return "\(p) exists but is not a socket"
        case .refused(let p): return "\(p) exists but nobody answers on it (a stale socket: the daemon is down)"
        case .permissionDenied(let p): return "permission denied on \(p)"
        case .timedOut(let p, let t): return "the daemon at \(p) accepted the connection but did not answer within \(t) s"
        case .protocolError(let p, let why): return "unexpected answer from \(p): \(why)"
        case .other(let p, let why): return "cannot connect to \(p): \(why)"
        }
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [String: String]   // lower-cased names
    public var body: [UInt8]
}

/// A minimal Engine API client over a unix socket. HTTP/1.0 makes the daemon close the connection after the answer
/// and never use chunked encoding, so reading to EOF is the whole protocol.
public struct EngineClient: Sendable {
    public var socketPath: String
    public var timeout: Double

    public init(socketPath: String, timeout: Double) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

    public func get(_ path: String) -> Result<HTTPResponse, SocketFailure> {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(.other(socketPath, String(cString: strerror(errno)))) }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            return .failure(.other(socketPath, "socket path too long"))
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 {
            switch errno {
            case ENOENT: return .failure(.noSocketFile(socketPath))
            case ECONNREFUSED: return .failure(.refused(socketPath))
            case EACCES, EPERM: return .failure(.permissionDenied(socketPath))
            case ENOTSOCK: return .failure(.notASocket(socketPath))
            case let e: return .failure(.other(socketPath, String(cString: strerror(e))))
            }
        }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: docker\r\nUser-Agent: ezmsi\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return .failure(.timedOut(socketPath, timeout)) }
                return .failure(.other(socketPath, String(cString: strerror(errno))))
            }
            sent += n
        }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return .failure(.timedOut(socketPath, timeout)) }
                return .failure(.other(socketPath, String(cString: strerror(errno))))
            }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
            if data.count > 64 * 1024 * 1024 { return .failure(.protocolError(socketPath, "answer too large")) }
            if Date() > deadline { return .failure(.timedOut(socketPath, timeout)) }
        }
        return Self.parse(data).map { .success($0) } ?? .failure(.protocolError(socketPath, "not an HTTP response"))
    }

    static func parse(_ data: [UInt8]) -> HTTPResponse? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard data.count >= 12, let split = data.firstRange(of: separator) else { return nil }
        let head = String(decoding: data[..<split.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/"), let code = Int(statusLine[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return HTTPResponse(status: code, headers: headers, body: Array(data[split.upperBound...]))
    }

    /// Percent-encodes an image reference for a path segment, keeping `/` and `:` as the daemon accepts them.
    public static func escape(_ reference: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#%")
        return reference.addingPercentEncoding(withAllowedCharacters: allowed) ?? reference
    }
}
