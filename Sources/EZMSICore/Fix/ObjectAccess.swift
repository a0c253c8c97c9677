import CACL
import Foundation
import Glibc
import Synchronization

/// How `fix` and `undo` reach and identify the objects they change, so that a change lands on the object that was
/// judged or on nothing (the threat model is in the README's "Fixing folder permissions").
///
/// - Every entry is opened relative to the descriptor of its verified parent directory, one name at a time:
///   `openat2(O_PATH | O_NOFOLLOW, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS)`
///   (Linux 5.6+), else `openat(O_PATH | O_NOFOLLOW)`. A name is never a path, so the fallback resolves exactly as
///   much as openat2 does; what openat2's RESOLVE_NO_XDEV adds is checked on both routes by comparing the opened
///   object's mount id with the root's (`statx` STATX_MNT_ID, Linux 5.8+, else `/proc/self/fdinfo`).
/// - The O_PATH descriptor is `statx`ed and compared with what the walk judged (device, inode, type, mode, owner,
///   link count, change time, mount id). O_PATH opens nothing: a device or FIFO swapped in has no effect.
/// - Changes go through that object only, acting on the O_PATH descriptor itself: `fchownat(AT_EMPTY_PATH)`,
///   `fchmodat2(AT_EMPTY_PATH)` (Linux 6.6+; else `chmod` of the `/proc/self/fd/N` magic link), and the xattr calls
///   through the magic link (`setxattrat(procfd, "N")`, Linux 6.13+; the magic link is the object, not a path lookup
///   in the tree). On kernels without `setxattrat` the object is reopened through its magic link (only after its type
///   was verified as a directory or regular file) for `fsetxattr`; where that reopen is refused (a non-root invoker
///   without read permission), `setxattr` of the magic link's full path. Every route acts on the descriptor's object;
///   none is weaker.
/// - What identifies the object beyond its inode number is its birth time (`statx`) and its file handle
///   (`name_to_handle_at` on the descriptor): the filesystem's own name for the object over time, which holds the inode
///   generation on ext4, xfs, btrfs and tmpfs (it is what NFS uses to tell a reused inode number from the original).
enum ObjectAccess {
    #if arch(x86_64)
    static let statxNumber = 332
    static let openat2Number = 437
    static let nameToHandleNumber = 303
    #elseif arch(arm64)
    static let statxNumber = 291
    static let openat2Number = 437
    static let nameToHandleNumber = 264
    #else
    static let statxNumber = -1
    static let openat2Number = -1
    static let nameToHandleNumber = -1
    #endif

    static let STATX_BASIC_STATS: UInt32 = 0x7FF
    static let STATX_BTIME: UInt32 = 0x800
    static let STATX_MNT_ID: UInt32 = 0x1000
    static let RESOLVE_NO_XDEV: UInt64 = 0x01
    static let RESOLVE_NO_MAGICLINKS: UInt64 = 0x02
    static let RESOLVE_NO_SYMLINKS: UInt64 = 0x04
    static let RESOLVE_BENEATH: UInt64 = 0x08
    /// `FS_IOC_GETVERSION` (`_IOR('v', 1, long)`): the inode generation, on ext2/3/4, btrfs, xfs and a few others.
    static let FS_IOC_GETVERSION: UInt = 0x80087601
    static let PROC_SUPER_MAGIC = 0x9FA0

    /// Routes that tests (and `EZMSI_FIX_FALLBACKS=openat2,fchmodat2,mntid,reopen,xattrat,ctime`) can turn off, to prove the
    /// fallbacks keep the guarantee.
    static let openat2 = SyscallRoute("openat2", available: openat2Number >= 0)
    static let statxMountID = SyscallRoute("mntid", available: statxNumber >= 0)
    /// The reopen through /proc (off: every change uses the O_PATH routes, as for a non-root invoker).
    static let reopenRoute = SyscallRoute("reopen")
    /// Trusting an unchanged change time (off: the ACLs are always read again through the descriptor, as on kernels
    /// and file systems without multigrain timestamps).
    static let changeTimeRoute = SyscallRoute("ctime")

    /// `/proc/self/fd`, opened once, when it is the kernel's procfs: the magic links are only trusted then. -1 if not.
    static let procFD: Int32 = {
        let fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return -1 }
        guard filesystemType(fd) == UInt64(PROC_SUPER_MAGIC) else { Glibc.close(fd); return -1 }
        return fd
    }()
    static var procUsable: Bool { procFD >= 0 }

    /// Whether an unchanged change time proves that an object's ACLs are the ones read earlier on the file system of
    /// `fd`. Only with multigrain timestamps (Linux 6.13+, on ext4, xfs, btrfs and tmpfs): once the change time has
    /// been read, the next change of the object gets a strictly later one. With coarse timestamps a rename away and
    /// back, or a setxattr, within one clock tick leaves it as it was, so the ACLs must be read again.
    static func changeTimeProvesUnchanged(_ fd: Int32) -> Bool {
        guard kernelAtLeast(6, 13), let type = filesystemType(fd) else { return false }
        return multigrainFilesystems.contains(type)
    }

    /// `statfs`'s `f_type` of the file system of `fd`; nil if it cannot be read.
    static func filesystemType(_ fd: Int32) -> UInt64? {
        var s = statfs()
        guard fstatfs(fd, &s) == 0 else { return nil }
        return UInt64(UInt(bitPattern: Int(s.f_type))) & 0xFFFF_FFFF
    }

    /// ext4 (also ext2/3), xfs, btrfs, tmpfs: the file systems that opted into multigrain timestamps in 6.13.
    static let multigrainFilesystems: Set<UInt64> = [0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994]

    /// Whether the running kernel's release (`uname -r`) is at least major.minor.
    static func kernelAtLeast(_ major: Int, _ minor: Int, release: String? = nil) -> Bool {
        let text: String
        if let release {
            text = release
        } else {
            var u = utsname()
            uname(&u)
            text = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let parts = text.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return false }
        return (parts[0], parts[1]) >= (major, minor)
    }

    // MARK: Opening

    /// Opens `name` (one component) in `dirfd` as O_PATH without following a symlink or crossing a mount. -1 + errno.
    static func openEntry(_ dirfd: Int32, _ name: UnsafePointer<CChar>, directory: Bool = false) -> Int32 {
        let flags = O_PATH | O_NOFOLLOW | O_CLOEXEC | (directory ? O_DIRECTORY : 0)
        if !openat2.off {
            struct OpenHow { var flags: UInt64; var mode: UInt64; var resolve: UInt64 }
            var how = OpenHow(flags: UInt64(flags), mode: 0,
                              resolve: RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS)
            let r = withUnsafeMutablePointer(to: &how) {
                Xattr.syscall6(openat2Number, Int(dirfd), Int(bitPattern: name), Int(bitPattern: $0),
                               MemoryLayout<OpenHow>.size, 0, 0)
            }
            if r >= 0 {
                openat2.worked()
                return Int32(r)
            }
            let e = errno
            if e != ENOSYS { errno = e; return -1 }
            openat2.missing()
        }
        return openat(dirfd, name, flags)
    }

    /// Reopens a verified O_PATH descriptor of a directory or regular file as a real one (read-only, never blocking,
    /// never a controlling terminal), through its magic link. -1 when refused (then the O_PATH routes are used).
    static func reopen(_ pathFD: Int32) -> Int32 {
        guard procUsable, !reopenRoute.off else { return -1 }
        return FixSys.withDescriptorName(pathFD) { openat(procFD, $0, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) }
    }

    /// Whether changes need a reopened descriptor: only for the xattrs, on kernels without `setxattrat`.
    static var reopenForChanges: Bool { FixSys.xattrAt.off }

    /// The file handle of a descriptor (O_PATH or not): `body` gets its type and bytes, or nil where the filesystem
    /// has none (FUSE, procfs).
    static func withFileHandle<R>(_ fd: Int32, _ body: ((type: Int32, bytes: UnsafeRawBufferPointer)?) -> R) -> R {
        guard nameToHandleNumber >= 0 else { return body(nil) }
        // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[MAX_HANDLE_SZ = 128]; }
        return withUnsafeTemporaryAllocation(byteCount: 8 + 128, alignment: 8) { raw -> R in
            raw.storeBytes(of: UInt32(128), toByteOffset: 0, as: UInt32.self)
            var mountID: Int32 = 0
            let r = withUnsafeMutablePointer(to: &mountID) { m in
                "".withCString { empty in
                    Xattr.syscall6(nameToHandleNumber, Int(fd), Int(bitPattern: empty), Int(bitPattern: raw.baseAddress),
                                   Int(bitPattern: m), Int(AT_EMPTY_PATH), 0)
                }
            }
            let count = Int(raw.load(fromByteOffset: 0, as: UInt32.self))
            guard r == 0, count <= 128 else { return body(nil) }
            return body((raw.load(fromByteOffset: 4, as: Int32.self), UnsafeRawBufferPointer(rebasing: raw[8..<(8 + count)])))
        }
    }

    /// The file handle as the journal writes it ("TYPE:HEX"); nil where the filesystem has none.
    static func fileHandle(_ fd: Int32) -> String? {
        withFileHandle(fd) { h -> String? in
            guard let h else { return nil }
            var line = JSONLine(capacity: 8 + 2 * h.bytes.count)
            line.handle(type: h.type, bytes: h.bytes)
            return String(decoding: line.bytes.dropFirst().dropLast(), as: UTF8.self)
        }
    }

    // MARK: Identity

    /// What identifies an object and what was judged of it.
    struct Identity: Equatable {
        var dev: UInt64
        var ino: UInt64
        /// `st_mode` with the type bits.
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        var nlink: UInt64
        var ctimeSec: Int64
        var ctimeNsec: Int64
        /// Birth time in nanoseconds since the epoch; nil where the filesystem does not record it.
        var btime: Int64?
        /// nil where neither statx nor fdinfo tells.
        var mountID: UInt64?

        var type: UInt32 { mode & UInt32(S_IFMT) }
        var isDirectory: Bool { type == UInt32(S_IFDIR) }
        var isRegular: Bool { type == UInt32(S_IFREG) }

        /// The same object with the same security attributes as judged: device, inode, birth time (where recorded),
        /// type, mode, owner, and for a regular file its link count (a new hard link may be outside the folder). Not
        /// the times or a directory's link count: the instrument writing files while the fix runs changes those and
        /// nothing that the decision depends on. The ACLs are compared by the caller.
        func sameAsJudged(_ judged: Identity) -> Bool {
            dev == judged.dev && ino == judged.ino && mode == judged.mode && uid == judged.uid && gid == judged.gid
                && (!isRegular || nlink == judged.nlink) && (judged.btime == nil || btime == judged.btime)
        }
    }

    /// `statx(dirfd, name)` (AT_SYMLINK_NOFOLLOW; `name` "" with AT_EMPTY_PATH = the descriptor itself). Also fills a
    /// classic `stat` for code that wants one. nil + errno on failure; ENOSYS kernels fall back to fstatat.
    static func statx(_ dirfd: Int32, _ name: UnsafePointer<CChar>, emptyPath: Bool, wantMountID: Bool,
                      into st: inout stat) -> Identity? {
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
                      UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
                      UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
                      UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        let flags = Int(AT_SYMLINK_NOFOLLOW) | (emptyPath ? Int(AT_EMPTY_PATH) : 0)
        let mountWanted = wantMountID && !statxMountID.off
        let mask = STATX_BASIC_STATS | STATX_BTIME | (mountWanted ? STATX_MNT_ID : 0)
        let r = withUnsafeMutableBytes(of: &buffer) { b in
            Xattr.syscall6(statxNumber, Int(dirfd), Int(bitPattern: name), flags, Int(mask), Int(bitPattern: b.baseAddress), 0)
        }
        if r != 0 {
            guard errno == ENOSYS else { return nil }
            let ok = emptyPath ? fstat(dirfd, &st) == 0 : fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
            guard ok else { return nil }
            return Identity(st)
        }
        return withUnsafeBytes(of: &buffer) { b -> Identity in
            func u32(_ o: Int) -> UInt32 { b.loadUnaligned(fromByteOffset: o, as: UInt32.self) }
            func u64(_ o: Int) -> UInt64 { b.loadUnaligned(fromByteOffset: o, as: UInt64.self) }
            func i64(_ o: Int) -> Int64 { b.loadUnaligned(fromByteOffset: o, as: Int64.self) }
            let got = u32(0)
            let mode = UInt32(b.loadUnaligned(fromByteOffset: 28, as: UInt16.self))
            let dev = makeDevice(major: u32(136), minor: u32(140))
            st = stat()
            st.st_dev = __dev_t(dev)
            st.st_ino = __ino_t(u64(32))
            st.st_mode = mode
            st.st_nlink = __nlink_t(u32(16))
            st.st_uid = u32(20)
            st.st_gid = u32(24)
            st.st_rdev = __dev_t(makeDevice(major: u32(128), minor: u32(132)))
            st.st_size = __off_t(Int64(bitPattern: u64(40)))
            st.st_blksize = __blksize_t(u32(4))
            st.st_blocks = __blkcnt_t(Int64(bitPattern: u64(48)))
            st.st_atim = timespec(tv_sec: Int(i64(64)), tv_nsec: Int(u32(72)))
            st.st_mtim = timespec(tv_sec: Int(i64(112)), tv_nsec: Int(u32(120)))
            st.st_ctim = timespec(tv_sec: Int(i64(96)), tv_nsec: Int(u32(104)))
            var id = Identity(st)
            if got & STATX_BTIME != 0 { id.btime = i64(80) &* 1_000_000_000 &+ Int64(u32(88)) }
            if mountWanted {
                if got & STATX_MNT_ID != 0 {
                    id.mountID = u64(144)
                    statxMountID.worked()
                } else {
                    statxMountID.missing()
                }
            }
            return id
        }
    }

    /// The identity of an open descriptor (O_PATH or not), with its mount id (statx, else fdinfo).
    static func identity(of fd: Int32) -> Identity? {
        var st = stat()
        guard var id = "".withCString({ statx(fd, $0, emptyPath: true, wantMountID: true, into: &st) }) else { return nil }
        if id.mountID == nil { id.mountID = fdinfoMountID(fd) }
        return id
    }

    /// `mnt_id:` of `/proc/self/fdinfo/N` (Linux 3.15+).
    static func fdinfoMountID(_ fd: Int32) -> UInt64? {
        guard procUsable else { return nil }
        let f = open("/proc/self/fdinfo/\(fd)", O_RDONLY | O_CLOEXEC)
        guard f >= 0 else { return nil }
        defer { close(f) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { read(f, $0.baseAddress!, 512) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("mnt_id:") {
            return UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// The inode generation through a real (not O_PATH) descriptor; nil where the filesystem has none.
    static func generation(_ fd: Int32) -> UInt32? {
        var value: Int = 0
        let r = withUnsafeMutablePointer(to: &value) { ioctl(fd, FS_IOC_GETVERSION, $0) }
        return r == 0 ? UInt32(truncatingIfNeeded: value) : nil
    }

    /// glibc's `makedev` (what `st_dev` holds).
    static func makeDevice(major: UInt32, minor: UInt32) -> UInt64 {
        let ma = UInt64(major), mi = UInt64(minor)
        return ((ma & 0xFFFF_F000) << 32) | ((ma & 0xFFF) << 8) | ((mi & 0xFFFF_FF00) << 12) | (mi & 0xFF)
    }
}

/// One verified object: its O_PATH descriptor, and a real descriptor when the reopen was allowed. Every change goes
/// through it.
struct VerifiedObject {
    let pathFD: Int32
    let realFD: Int32
    let identity: ObjectAccess.Identity

    func close() {
        if realFD >= 0 { Glibc.close(realFD) }
        if pathFD >= 0 { Glibc.close(pathFD) }
    }

    private var handle: EntryHandle { realFD >= 0 ? EntryHandle(fd: realFD, isPath: false) : EntryHandle(fd: pathFD, isPath: true) }


    func chown(_ uid: UInt32, _ gid: UInt32) -> Int32 { handle.chown(uid, gid) }
    func chmod(_ mode: UInt32) -> Int32 { handle.chmod(mode) }
    func setXattr(_ name: UnsafePointer<CChar>, _ value: UnsafeRawBufferPointer) -> Int32 {
        if realFD < 0 && !ObjectAccess.procUsable { return EOPNOTSUPP }
        return handle.setXattr(name, value)
    }
    func removeXattr(_ name: UnsafePointer<CChar>) -> Int32 {
        if realFD < 0 && !ObjectAccess.procUsable { return EOPNOTSUPP }
        return handle.removeXattr(name)
    }
    func getXattr(_ name: String) -> XattrRead { handle.getXattr(name) }
    /// The file handle ("TYPE:HEX"), nil where the filesystem offers none.
    var fileHandle: String? { ObjectAccess.fileHandle(pathFD) }
    /// The inode generation (`FS_IOC_GETVERSION`), for journals written before file handles were recorded.
    var generation: UInt32? {
        if realFD >= 0 { return ObjectAccess.generation(realFD) }
        let real = ObjectAccess.reopen(pathFD)
        guard real >= 0 else { return nil }
        defer { Glibc.close(real) }
        return ObjectAccess.generation(real)
    }

    enum Refusal: Error, Equatable {
        case gone(Int32)
        case otherMount
        case replaced
        case notFileOrDirectory
    }

    /// Opens `name` in `dirfd` and checks it is the object judged (`judged`, on the mount `mountID`).
    static func open(_ dirfd: Int32, _ name: UnsafePointer<CChar>, judged: ObjectAccess.Identity,
                     mountID: UInt64) -> Result<VerifiedObject, Refusal> {
        let fd = ObjectAccess.openEntry(dirfd, name)
        guard fd >= 0 else { return .failure(errno == EXDEV ? .otherMount : .gone(errno)) }
        return verify(pathFD: fd, judged: judged, mountID: mountID)
    }

    /// Takes ownership of `pathFD` (closed on refusal). `reopen`: also open a real descriptor (through the magic link)
    /// when several reads and changes will follow (undo), which is cheaper than a lookup through /proc for each; the
    /// fix makes one change per entry and reopens only on kernels without `setxattrat`.
    static func verify(pathFD fd: Int32, judged: ObjectAccess.Identity?, mountID: UInt64,
                       reopen: Bool = ObjectAccess.reopenForChanges) -> Result<VerifiedObject, Refusal> {
        guard let id = ObjectAccess.identity(of: fd) else {
            let e = errno
            Glibc.close(fd)
            return .failure(.gone(e))
        }
        guard id.mountID == mountID else { Glibc.close(fd); return .failure(.otherMount) }
        guard id.isDirectory || id.isRegular else { Glibc.close(fd); return .failure(.notFileOrDirectory) }
        if let judged, !id.sameAsJudged(judged) { Glibc.close(fd); return .failure(.replaced) }
        // The magic link of `fd` is the object itself (no path lookup in the tree), so the reopened descriptor is it.
        let real = reopen ? ObjectAccess.reopen(fd) : -1
        return .success(VerifiedObject(pathFD: fd, realFD: real, identity: id))
    }
}

extension ObjectAccess.Identity {
    /// From a classic `stat` (no birth time, no mount id).
    init(_ st: stat) {
        self.init(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino), mode: st.st_mode, uid: st.st_uid, gid: st.st_gid,
                  nlink: UInt64(st.st_nlink), ctimeSec: Int64(st.st_ctim.tv_sec), ctimeNsec: Int64(st.st_ctim.tv_nsec),
                  btime: nil, mountID: nil)
    }
}

/// A system-call route the kernel may lack, or that a test (or `EZMSI_FIX_FALLBACKS=NAME`) turns off: unknown until
/// first used, then usable or not.
final class SyscallRoute: Sendable {
    private let state: Atomic<UInt8>  // 0 unknown, 1 works, 2 off

    init(_ name: String, available: Bool = true) {
        let off = (ProcessInfo.processInfo.environment["EZMSI_FIX_FALLBACKS"] ?? "").split(separator: ",")
        state = Atomic(available && !off.contains(Substring(name)) ? 0 : 2)
    }

    var off: Bool { state.load(ordering: .relaxed) == 2 }
    func worked() { _ = state.compareExchange(expected: 0, desired: 1, ordering: .relaxed) }
    func missing() { state.store(2, ordering: .relaxed) }

    /// For tests: force the route on or off; nil = detect again.
    var usable: Bool? {
        get { let v = state.load(ordering: .relaxed); return v == 1 ? true : v == 2 ? false : nil }
        set { state.store(newValue == nil ? 0 : (newValue! ? 1 : 2), ordering: .relaxed) }
    }
}
