import COpenSSL
import Foundation

/// Why a bootstrap server could not be reached: name resolution, TCP, or the TLS handshake.
public enum ConnectFailure: Error, Sendable, Equatable {
    /// getaddrinfo failed (its message).
    case unresolvable(String)
    case resolveTimeout(Double)
    /// Every address refused the connection: nothing listens on that port.
    case refused
    /// No answer to the TCP handshake within the time left.
    case timeout(Double)
    /// Another socket error (strerror), e.g. no route to host.
    case network(String)
    case tls(TLSFailure)
}

/// A failed TLS handshake, with certificate problems named.
public struct TLSFailure: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case selfSigned = "self-signed certificate"
        case selfSignedInChain = "self-signed certificate in the chain"
        case unknownCA = "certificate signed by an unknown CA"
        case expired = "certificate expired"
        case notYetValid = "certificate not yet valid"
        case hostnameMismatch = "certificate does not name the host"
        case otherVerification = "certificate not accepted"
        case caUnusable = "ssl.ca.location unusable"
        case notTLS = "not a TLS server"
        case closed = "connection closed during the TLS handshake"
        case timeout = "TLS handshake timed out"
        case handshake = "TLS handshake failed"
    }
    public var kind: Kind
    /// OpenSSL's own words (verification error string or error queue).
    public var detail: String
    public var verifyCode: Int

    public init(kind: Kind, detail: String, verifyCode: Int = 0) {
        self.kind = kind
        self.detail = detail
        self.verifyCode = verifyCode
    }

    static func from(verifyCode code: Int) -> TLSFailure {
        let text = String(cString: X509_verify_cert_error_string(code))
        let kind: Kind
        switch Int32(code) {
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: kind = .selfSigned
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: kind = .selfSignedInChain
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
             X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: kind = .unknownCA
        case X509_V_ERR_CERT_HAS_EXPIRED: kind = .expired
        case X509_V_ERR_CERT_NOT_YET_VALID: kind = .notYetValid
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH: kind = .hostnameMismatch
        default: kind = .otherVerification
        }
        return TLSFailure(kind: kind, detail: text, verifyCode: code)
    }
}

/// A point in time the I/O must finish by.
public struct BrokerDeadline: Sendable {
    let end: DispatchTime
    public init(seconds: Double) { end = .now() + max(0.05, seconds) }
    public var remaining: Double {
        let now = DispatchTime.now().uptimeNanoseconds
        return end.uptimeNanoseconds > now ? Double(end.uptimeNanoseconds - now) / 1e9 : 0
    }
    /// A shorter deadline inside this one.
    public func capped(_ seconds: Double) -> BrokerDeadline { BrokerDeadline(seconds: min(seconds, remaining)) }
}

public struct ConnectionClosed: Error, Sendable {}
public struct ConnectionTimedOut: Error, Sendable {}
public struct ConnectionError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// One connection to a bootstrap server: plain TCP, or TLS through OpenSSL. Blocking I/O bounded by a deadline.
public final class BrokerConnection {
    let fd: Int32
    let deadline: BrokerDeadline
    private var ctx: OpaquePointer?
    private var ssl: OpaquePointer?
    /// `TLSv1.3` etc. when TLS is used.
    public private(set) var tlsVersion: String?
    /// How many addresses the host name resolved to.
    public private(set) var addressCount = 0

    private init(fd: Int32, deadline: BrokerDeadline) {
        self.fd = fd
        self.deadline = deadline
    }

    deinit { close() }

    public func close() {
        if let ssl { SSL_free(ssl); self.ssl = nil }
        if let ctx { SSL_CTX_free(ctx); self.ctx = nil }
        if fd >= 0 { Glibc.close(fd) }
    }

    // MARK: resolve and connect

    struct Address {
        var storage: sockaddr_storage
        var length: socklen_t
        var family: Int32
    }

    /// getaddrinfo on its own thread, so that a hanging resolver costs at most the time left.
    static func resolve(_ host: String, port: Int, deadline: BrokerDeadline) -> Result<[Address], ConnectFailure> {
        final class Box: @unchecked Sendable { var result: Result<[Address], ConnectFailure>? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(host, String(port), &hints, &list)
            if rc != 0 {
                let text = rc == EAI_SYSTEM ? String(cString: strerror(errno)) : String(cString: gai_strerror(rc))
                box.result = .failure(.unresolvable(text))
            } else {
                var out: [Address] = []
                var p = list
                while let ai = p {
                    var storage = sockaddr_storage()
                    withUnsafeMutableBytes(of: &storage) { dst in
                        dst.copyMemory(from: UnsafeRawBufferPointer(start: ai.pointee.ai_addr, count: Int(ai.pointee.ai_addrlen)))
                    }
                    out.append(Address(storage: storage, length: ai.pointee.ai_addrlen, family: ai.pointee.ai_family))
                    p = ai.pointee.ai_next
                }
                freeaddrinfo(list)
                box.result = out.isEmpty ? .failure(.unresolvable("no addresses")) : .success(out)
            }
            done.signal()
        }
        let wait = deadline.remaining
        if done.wait(timeout: .now() + wait) == .timedOut { return .failure(.resolveTimeout(wait)) }
        return box.result!
    }

    /// Resolves, connects to the first address that accepts, and (when `tls`) completes the TLS handshake.
    public static func open(_ server: BrokerServer, settings: BrokerSettings, deadline: BrokerDeadline) -> Result<BrokerConnection, ConnectFailure> {
        let addresses: [Address]
        switch resolve(server.host, port: server.port, deadline: deadline) {
        case .failure(let f): return .failure(f)
        case .success(let a): addresses = a
        }
        var lastFailure = ConnectFailure.timeout(deadline.remaining)
        var sawRefused = false
        for address in addresses {
            guard deadline.remaining > 0 else { break }
            switch connect(address, deadline: deadline) {
            case .success(let fd):
                let connection = BrokerConnection(fd: fd, deadline: deadline)
                connection.addressCount = addresses.count
                if settings.usesTLS {
                    if let failure = connection.handshake(host: server.host, settings: settings) { return .failure(.tls(failure)) }
                }
                return .success(connection)
            case .failure(let f):
                if f == .refused { sawRefused = true }
                lastFailure = f
            }
        }
        return .failure(sawRefused ? .refused : lastFailure)
    }

    static func connect(_ address: Address, deadline: BrokerDeadline) -> Result<Int32, ConnectFailure> {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(.network(String(cString: strerror(errno)))) }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        var storage = address.storage
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
        }
        var err: Int32 = rc == 0 ? 0 : errno
        if rc != 0 && err == EINPROGRESS {
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let wait = deadline.remaining
            let n = poll(&pfd, 1, Int32(max(1, wait * 1000)))
            if n == 0 { Glibc.close(fd); return .failure(.timeout(wait)) }
            var soError: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
            err = n < 0 ? errno : soError
        }
        guard err == 0 else {
            Glibc.close(fd)
            return .failure(err == ECONNREFUSED ? .refused : .network(String(cString: strerror(err))))
        }
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        return .success(fd)
    }

    /// Sets the socket's send and receive timeouts to the time left.
    private func armTimeouts() throws {
        let left = deadline.remaining
        guard left > 0 else { throw ConnectionTimedOut() }
        var tv = timeval(tv_sec: Int(left), tv_usec: Int((left - Double(Int(left))) * 1_000_000))
        if tv.tv_sec == 0 && tv.tv_usec == 0 { tv.tv_usec = 1000 }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    // MARK: TLS

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// OpenSSL's error queue as text, emptied.
    static func openSSLErrors() -> String {
        var parts: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            if let reason = ERR_reason_error_string(code) { parts.append(String(cString: reason)) }
        }
        return parts.joined(separator: "; ")
    }

    /// Verifies the peer against ssl.ca.location when it is set, else the system CA bundle, and the host name unless
    /// `ssl.endpoint.identification.algorithm = none`, like librdkafka.
    func handshake(host: String, settings: BrokerSettings) -> TLSFailure? {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            return TLSFailure(kind: .handshake, detail: Self.openSSLErrors())
        }
        self.ctx = ctx
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        if let ca = settings.caHostPath {
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: ca, isDirectory: &isDir)
            let ok = isDir.boolValue ? SSL_CTX_load_verify_locations(ctx, nil, ca) : SSL_CTX_load_verify_locations(ctx, ca, nil)
            if ok != 1 {
                return TLSFailure(kind: .caUnusable, detail: "no certificate could be read from it: \(Self.openSSLErrors())")
            }
        } else {
            SSL_CTX_set_default_verify_paths(ctx)
        }
        guard let ssl = SSL_new(ctx) else { return TLSFailure(kind: .handshake, detail: Self.openSSLErrors()) }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        let ip = Self.isIPAddress(host)
        if !ip { _ = ezmsi_ssl_set_sni(ssl, host) }
        if settings.checkHostname {
            if ip { X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) } else { SSL_set1_host(ssl, host) }
        }
        do { try armTimeouts() } catch { return TLSFailure(kind: .timeout, detail: "no time left") }
        errno = 0
        let rc = SSL_connect(ssl)
        if rc == 1 {
            tlsVersion = String(cString: SSL_get_version(ssl))
            return nil
        }
        let savedErrno = errno
        let verify = SSL_get_verify_result(ssl)
        if verify != X509_V_OK { return TLSFailure.from(verifyCode: verify) }
        let sslError = SSL_get_error(ssl, rc)
        let queue = Self.openSSLErrors()
        if sslError == SSL_ERROR_WANT_READ || sslError == SSL_ERROR_WANT_WRITE || savedErrno == EAGAIN {
            return TLSFailure(kind: .timeout, detail: "no answer to the TLS handshake in time")
        }
        if queue.contains("wrong version number") || queue.contains("packet length too long") || queue.contains("record layer failure") {
            return TLSFailure(kind: .notTLS, detail: queue)
        }
        if sslError == SSL_ERROR_SYSCALL || (sslError == SSL_ERROR_SSL && queue.contains("unexpected eof")) {
            return TLSFailure(kind: .closed, detail: queue.isEmpty ? (savedErrno == 0 ? "end of file" : String(cString: strerror(savedErrno))) : queue)
        }
        return TLSFailure(kind: .handshake, detail: queue.isEmpty ? "SSL error \(sslError)" : queue)
    }

    // MARK: bytes

    public func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            try armTimeouts()
            let n: Int = bytes.withUnsafeBytes { buf in
                let p = buf.baseAddress! + sent
                if let ssl { return Int(SSL_write(ssl, p, Int32(bytes.count - sent))) }
                return Glibc.send(fd, p, bytes.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { throw ConnectionTimedOut() }
                if errno == EPIPE || errno == ECONNRESET || n == 0 { throw ConnectionClosed() }
                throw ConnectionError(description: String(cString: strerror(errno)))
            }
            sent += n
        }
    }

    /// Exactly `count` bytes; fewer means the peer closed (`ConnectionClosed` carries nothing read so far).
    public func receive(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            try armTimeouts()
            errno = 0
            let n: Int = out.withUnsafeMutableBytes { buf in
                let p = buf.baseAddress! + got
                if let ssl { return Int(SSL_read(ssl, p, Int32(count - got))) }
                return Glibc.recv(fd, p, count - got, 0)
            }
            if n == 0 { throw ConnectionClosed() }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { throw ConnectionTimedOut() }
                if errno == ECONNRESET || ssl != nil { throw ConnectionClosed() }
                throw ConnectionError(description: String(cString: strerror(errno)))
            }
            got += n
        }
        return out
    }
}

/// Runs `body` with SIGPIPE blocked on this thread, then discards a SIGPIPE it raised: OpenSSL writes to the socket
/// with write(2), which would otherwise kill ezmsi when a broker closes the connection.
func withSIGPIPEBlocked<T>(_ body: () throws -> T) rethrows -> T {
    var set = sigset_t()
    var old = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGPIPE)
    pthread_sigmask(SIG_BLOCK, &set, &old)
    defer {
        var pending = sigset_t()
        sigpending(&pending)
        if sigismember(&pending, SIGPIPE) == 1 {
            var zero = timespec(tv_sec: 0, tv_nsec: 0)
            _ = sigtimedwait(&set, nil, &zero)
        }
        pthread_sigmask(SIG_SETMASK, &old, nil)
    }
    return try body()
}
