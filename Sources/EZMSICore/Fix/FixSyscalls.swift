import Foundation
import Glibc
import Synchronization

/// Linux open/at flags Glibc does not import (they need _GNU_SOURCE); the same values on x86_64 and arm64.
let O_PATH: Int32 = 0o10000000
let AT_EMPTY_PATH: Int32 = 0x1000

/// The system calls that act on an O_PATH descriptor itself (see `ObjectAccess`): `fchownat(fd, "", AT_EMPTY_PATH)`;
/// `fchmodat2(fd, "", mode, AT_EMPTY_PATH)` (Linux 6.6+), else `chmod` of the `/proc/self/fd/N` magic link;
/// `setxattrat`/`getxattrat`/`removexattrat(procfd, "N")` (Linux 6.13+; `procfd` is `/proc/self/fd`, opened once), else
/// `setxattr`/`removexattr` of the magic link's full path. The magic link is the opened object, never a path lookup in
/// the tree. (The xattr calls refuse an O_PATH descriptor with AT_EMPTY_PATH, so the magic link is the only way short
/// of reopening the object, which costs a whole `open` per entry.)
enum FixSys {
    #if arch(x86_64) || arch(arm64)
    static let fchmodat2Number = 452
    static let setxattratNumber = 463
    static let removexattratNumber = 466
    #else
    static let fchmodat2Number = -1
    static let setxattratNumber = -1
    static let removexattratNumber = -1
    #endif

    /// The `*xattrat` calls on `/proc/self/fd` (off: `EZMSI_FIX_FALLBACKS=xattrat`, or a kernel before 6.13).
    static let xattrAt = SyscallRoute("xattrat", available: setxattratNumber >= 0)

    /// `body` with the decimal name of `fd` in `/proc/self/fd`, NUL-terminated (no allocation).
    static func withDescriptorName<R>(_ fd: Int32, _ body: (UnsafePointer<CChar>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 12) { buffer in
            var digits = UInt32(max(fd, 0))
            var end = 11
            buffer[end] = 0
            repeat {
                end -= 1
                buffer[end] = CChar(48 + digits % 10)
                digits /= 10
            } while digits > 0
            return body(UnsafePointer(buffer.baseAddress! + end))
        }
    }

    /// One `*xattrat` call through the magic link of `fd`: its result, or nil when the route is not there (then the
    /// caller takes the next one).
    private static func throughMagicLink(_ fd: Int32, _ call: (Int32, UnsafePointer<CChar>) -> Int) -> Int? {
        let procFD = ObjectAccess.procFD
        guard !xattrAt.off, procFD >= 0 else { return nil }
        let r = withDescriptorName(fd) { call(procFD, $0) }
        if r >= 0 { xattrAt.worked(); return r }
        if errno == ENOSYS { xattrAt.missing(); return nil }
        return r
    }

    /// `setxattrat(procfd, "N", 0, attr, value)`: 0, errno, or nil (route missing).
    static func setAt(_ fd: Int32, _ attr: UnsafePointer<CChar>, _ value: UnsafeRawBufferPointer) -> Int32? {
        var args = Xattr.XattrArgs(value: UInt64(UInt(bitPattern: value.baseAddress)), size: UInt32(value.count), flags: 0)
        let r = withUnsafeMutablePointer(to: &args) { argsPointer in
            throughMagicLink(fd) { dir, name in
                Xattr.syscall6(setxattratNumber, Int(dir), Int(bitPattern: name), 0, Int(bitPattern: attr),
                               Int(bitPattern: argsPointer), MemoryLayout<Xattr.XattrArgs>.size)
            }
        }
        guard let r else { return nil }
        return r == 0 ? 0 : errno
    }

    /// `removexattrat(procfd, "N", 0, attr)`: 0, errno, or nil (route missing).
    static func removeAt(_ fd: Int32, _ attr: UnsafePointer<CChar>) -> Int32? {
        let r = throughMagicLink(fd) { dir, name in
            Xattr.syscall6(removexattratNumber, Int(dir), Int(bitPattern: name), 0, Int(bitPattern: attr), 0, 0)
        }
        guard let r else { return nil }
        return r == 0 ? 0 : errno
    }

    /// `getxattrat(procfd, "N", 0, attr)` read whole; nil result when the route is missing.
    static func getAt(_ fd: Int32, _ attr: String) -> XattrRead? {
        guard !xattrAt.off, ObjectAccess.procFD >= 0 else { return nil }
        var missing = false
        let bytes = Xattr.read { buffer, size in
            let r = throughMagicLink(fd) { dir, name in Xattr.getAt(dir, name, attr, buffer, size, following: true) }
            if r == nil { missing = true; errno = ENOSYS; return -1 }
            return r!
        }
        let e = errno
        return missing ? nil : XattrRead(bytes, errno: e)
    }

    typealias PathSet = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeRawPointer?, Int, Int32) -> Int32
    typealias PathRemove = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>) -> Int32

    private static func symbol<T>(_ name: String, as type: T.Type) -> T {
        guard let handle = dlopen(nil, RTLD_NOW), let pointer = dlsym(handle, name) else {
            fatalError("libc has no \(name)")
        }
        return unsafeBitCast(pointer, to: type)
    }

    /// `setxattr` / `removexattr` FOLLOW the path: used only on `/proc/self/fd/N` of an O_PATH descriptor.
    static let setFollowing: PathSet = symbol("setxattr", as: PathSet.self)
    static let removeFollowing: PathRemove = symbol("removexattr", as: PathRemove.self)

    /// `EZMSI_FIX_FALLBACKS=fchmodat2` or a test turns it off (as on kernels before 6.6).
    static let fchmodat2 = SyscallRoute("fchmodat2", available: fchmodat2Number >= 0)

    /// chmod of the object an O_PATH descriptor holds. 0 or errno.
    static func chmodPath(_ fd: Int32, _ mode: UInt32) -> Int32 {
        if !fchmodat2.off {
            let r = "".withCString {
                Xattr.syscall6(fchmodat2Number, Int(fd), Int(bitPattern: $0), Int(mode), Int(AT_EMPTY_PATH), 0, 0)
            }
            if r == 0 {
                fchmodat2.worked()
                return 0
            }
            let e = errno
            if e != ENOSYS && e != EINVAL { return e }
            fchmodat2.missing()
        }
        guard ObjectAccess.procUsable else { return EOPNOTSUPP }
        return "/proc/self/fd/\(fd)".withCString { Glibc.chmod($0, mode) } == 0 ? 0 : errno
    }
}

/// An open descriptor of the entry itself: a real one (O_RDONLY, e.g. the root) or an O_PATH one (undo, fallbacks).
/// O_PATH descriptors are used through `/proc/self/fd/N` (xattrs, chmod fallback) or `AT_EMPTY_PATH` (chown, chmod).
struct EntryHandle {
    var fd: Int32
    var isPath: Bool

    private func procPath<R>(_ body: (UnsafePointer<CChar>) -> R) -> R {
        "/proc/self/fd/\(fd)".withCString(body)
    }

    /// 0 or errno.
    func setXattr(_ attr: UnsafePointer<CChar>, _ value: UnsafeRawBufferPointer) -> Int32 {
        let r: Int32
        if isPath {
            if let e = FixSys.setAt(fd, attr, value) { return e }
            r = procPath { FixSys.setFollowing($0, attr, value.baseAddress, value.count, 0) }
        } else {
            r = Xattr.fset(fd, attr, value.baseAddress, value.count, 0)
        }
        return r == 0 ? 0 : errno
    }

    /// 0 or errno; ENODATA (nothing to remove) counts as done.
    func removeXattr(_ attr: UnsafePointer<CChar>) -> Int32 {
        if isPath, let e = FixSys.removeAt(fd, attr) { return e == ENODATA ? 0 : e }
        let r = isPath ? procPath { FixSys.removeFollowing($0, attr) } : Xattr.fremove(fd, attr)
        if r == 0 { return 0 }
        let e = errno
        return e == ENODATA ? 0 : e
    }

    /// The attribute bytes; `.absent` for ENODATA (or an empty value), `.failed(errno)` otherwise.
    func getXattr(_ attr: String) -> XattrRead {
        let bytes: [UInt8]?
        if isPath, let read = FixSys.getAt(fd, attr) { return read }
        if isPath {
            let p = "/proc/self/fd/\(fd)"
            bytes = Xattr.read { Xattr.get(p, attr, $0, $1) }
        } else {
            bytes = Xattr.read { Xattr.fget(fd, attr, $0, $1) }
        }
        return XattrRead(bytes, errno: errno)
    }

    func chmod(_ mode: UInt32) -> Int32 {
        if !isPath { return fchmod(fd, mode) == 0 ? 0 : errno }
        return FixSys.chmodPath(fd, mode)
    }

    func chown(_ uid: UInt32, _ gid: UInt32) -> Int32 {
        if !isPath { return fchown(fd, uid, gid) == 0 ? 0 : errno }
        return "".withCString { fchownat(fd, $0, uid, gid, AT_EMPTY_PATH) } == 0 ? 0 : errno
    }

    func stat() -> Glibc.stat? {
        var st = Glibc.stat()
        return fstat(fd, &st) == 0 ? st : nil
    }
}

enum XattrRead: Equatable {
    case value([UInt8])
    case absent
    case unsupported
    case failed(Int32)

    var bytes: [UInt8]? {
        if case .value(let b) = self { return b }
        return nil
    }

    /// The attribute holds exactly `want` (nil: none stored). A failed read matches nothing.
    func holds<C: Collection>(_ want: C?) -> Bool where C.Element == UInt8 {
        switch self {
        case .value(let b): return want.map { b.elementsEqual($0) } ?? false
        case .absent, .unsupported: return want == nil
        case .failed: return false
        }
    }

    /// What a read returned: `.absent` for ENODATA or an empty value (4 bytes: the header alone), `.unsupported`
    /// where the filesystem has no ACLs, `.failed(errno)` otherwise. Pass `errno` right after the call.
    init(_ bytes: [UInt8]?, errno e: Int32) {
        guard let bytes else {
            if e == ENODATA { self = .absent } else if e == EOPNOTSUPP || e == ENOTSUP { self = .unsupported } else { self = .failed(e) }
            return
        }
        self = bytes.count <= 4 ? .absent : .value(bytes)
    }
}
