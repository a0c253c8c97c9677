import Glibc
import Synchronization

/// The system calls the fixer changes entries with. Every change is made either relative to an open directory with
/// `AT_SYMLINK_NOFOLLOW` (the entry's name, as the walker saw it) or through a descriptor of the entry itself; nothing
/// is ever resolved through a symlink.
///
/// - `setxattrat(2)` / `removexattrat(2)` (Linux 6.13+, no glibc wrapper): write an ACL by name relative to a directory
///   descriptor. On older kernels (ENOSYS): `openat(O_PATH | O_NOFOLLOW)`, check the inode, then `setxattr` on
///   `/proc/self/fd/N` (the magic link is the opened inode, never a path lookup in the tree).
/// - `fchmodat2(2)` (Linux 6.6+) with `AT_SYMLINK_NOFOLLOW`; fallback the same O_PATH route with `chmod`.
/// - `fchownat(AT_SYMLINK_NOFOLLOW)` (every kernel).
/// Linux open/at flags Glibc does not import (they need _GNU_SOURCE); the same values on x86_64 and arm64.
let O_PATH: Int32 = 0o10000000
let AT_EMPTY_PATH: Int32 = 0x1000

enum FixSys {
    // The unified system call numbers (x86_64 and the generic table of arm64 agree for these).
    #if arch(x86_64) || arch(arm64)
    static let fchmodat2Number = 452
    static let setxattratNumber = 463
    static let removexattratNumber = 466
    #else
    static let fchmodat2Number = -1
    static let setxattratNumber = -1
    static let removexattratNumber = -1
    #endif

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

    /// 0 unknown, 1 works, 2 ENOSYS (or not available on this architecture).
    private static let setxattratState = Atomic<UInt8>(setxattratNumber < 0 ? 2 : 0)
    private static let fchmodat2State = Atomic<UInt8>(fchmodat2Number < 0 ? 2 : 0)

    /// For tests: force the fallbacks (as on kernels before 6.13 / 6.6). nil = detect.
    static var setxattratUsable: Bool? {
        get { state(setxattratState) }
        set { setxattratState.store(newValue == nil ? 0 : (newValue! ? 1 : 2), ordering: .relaxed) }
    }

    static var fchmodat2Usable: Bool? {
        get { state(fchmodat2State) }
        set { fchmodat2State.store(newValue == nil ? 0 : (newValue! ? 1 : 2), ordering: .relaxed) }
    }

    private static func state(_ a: borrowing Atomic<UInt8>) -> Bool? {
        switch a.load(ordering: .relaxed) {
        case 1: return true
        case 2: return false
        default: return nil
        }
    }

    private struct XattrArgs {
        var value: UInt64
        var size: UInt32
        var flags: UInt32
    }

    // MARK: Relative to a directory, by name, never following

    /// Writes attribute `attr` of `name` in `dirfd` (not following a symlink). 0, or an errno. `expectedIno` is checked
    /// on the fallback route (the fast route writes what the name designates, as the walker just saw it).
    static func setXattr(dirfd: Int32, name: UnsafePointer<CChar>, attr: UnsafePointer<CChar>,
                         value: UnsafeRawBufferPointer, expectedIno: UInt64) -> Int32 {
        if setxattratState.load(ordering: .relaxed) != 2 {
            var args = XattrArgs(value: UInt64(UInt(bitPattern: value.baseAddress)), size: UInt32(value.count), flags: 0)
            let r = withUnsafeMutablePointer(to: &args) { argsPointer in
                Xattr.syscall6(setxattratNumber, Int(dirfd), Int(bitPattern: name), Int(AT_SYMLINK_NOFOLLOW),
                               Int(bitPattern: attr), Int(bitPattern: argsPointer), MemoryLayout<XattrArgs>.size)
            }
            if r == 0 {
                if setxattratState.load(ordering: .relaxed) == 0 { setxattratState.store(1, ordering: .relaxed) }
                return 0
            }
            let e = errno
            if e != ENOSYS { return e }
            setxattratState.store(2, ordering: .relaxed)
        }
        return withPathDescriptor(dirfd: dirfd, name: name, expectedIno: expectedIno) { fd in
            EntryHandle(fd: fd, isPath: true).setXattr(attr, value)
        }
    }

    /// Removes attribute `attr` of `name` in `dirfd`; ENODATA counts as done.
    static func removeXattr(dirfd: Int32, name: UnsafePointer<CChar>, attr: UnsafePointer<CChar>, expectedIno: UInt64) -> Int32 {
        if setxattratState.load(ordering: .relaxed) != 2 {
            let r = Xattr.syscall6(removexattratNumber, Int(dirfd), Int(bitPattern: name), Int(AT_SYMLINK_NOFOLLOW),
                                   Int(bitPattern: attr), 0, 0)
            if r == 0 { return 0 }
            let e = errno
            if e == ENODATA { return 0 }
            if e != ENOSYS { return e }
            setxattratState.store(2, ordering: .relaxed)
        }
        return withPathDescriptor(dirfd: dirfd, name: name, expectedIno: expectedIno) { fd in
            EntryHandle(fd: fd, isPath: true).removeXattr(attr)
        }
    }

    /// chmod of `name` in `dirfd`, not following a symlink.
    static func chmod(dirfd: Int32, name: UnsafePointer<CChar>, mode: UInt32, expectedIno: UInt64) -> Int32 {
        if fchmodat2State.load(ordering: .relaxed) != 2 {
            let r = Xattr.syscall6(fchmodat2Number, Int(dirfd), Int(bitPattern: name), Int(mode), Int(AT_SYMLINK_NOFOLLOW), 0, 0)
            if r == 0 {
                if fchmodat2State.load(ordering: .relaxed) == 0 { fchmodat2State.store(1, ordering: .relaxed) }
                return 0
            }
            let e = errno
            if e != ENOSYS && e != EINVAL { return e }
            fchmodat2State.store(2, ordering: .relaxed)
        }
        return withPathDescriptor(dirfd: dirfd, name: name, expectedIno: expectedIno) { fd in
            EntryHandle(fd: fd, isPath: true).chmod(mode)
        }
    }

    /// chown of `name` in `dirfd`, not following a symlink.
    static func chown(dirfd: Int32, name: UnsafePointer<CChar>, uid: UInt32, gid: UInt32) -> Int32 {
        fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno
    }

    /// Opens `name` with O_PATH | O_NOFOLLOW, checks it is the inode expected and not a symlink, runs `body`.
    private static func withPathDescriptor(dirfd: Int32, name: UnsafePointer<CChar>, expectedIno: UInt64,
                                           _ body: (Int32) -> Int32) -> Int32 {
        let fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return errno }
        if (st.st_mode & S_IFMT) == S_IFLNK { return ELOOP }
        if UInt64(st.st_ino) != expectedIno { return ESTALE }
        return body(fd)
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
            r = procPath { FixSys.setFollowing($0, attr, value.baseAddress, value.count, 0) }
        } else {
            r = Xattr.fset(fd, attr, value.baseAddress, value.count, 0)
        }
        return r == 0 ? 0 : errno
    }

    /// 0 or errno; ENODATA (nothing to remove) counts as done.
    func removeXattr(_ attr: UnsafePointer<CChar>) -> Int32 {
        let r = isPath ? procPath { FixSys.removeFollowing($0, attr) } : Xattr.fremove(fd, attr)
        if r == 0 { return 0 }
        let e = errno
        return e == ENODATA ? 0 : e
    }

    /// The attribute bytes; `.absent` for ENODATA (or an empty value), `.failed(errno)` otherwise.
    func getXattr(_ attr: String) -> XattrRead {
        let bytes: [UInt8]?
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
        if FixSys.fchmodat2Usable != false {
            let r = "".withCString {
                Xattr.syscall6(FixSys.fchmodat2Number, Int(fd), Int(bitPattern: $0), Int(mode), Int(AT_EMPTY_PATH), 0, 0)
            }
            if r == 0 { return 0 }
            let e = errno
            if e != ENOSYS && e != EINVAL { return e }
        }
        return procPath { Glibc.chmod($0, mode) } == 0 ? 0 : errno
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
