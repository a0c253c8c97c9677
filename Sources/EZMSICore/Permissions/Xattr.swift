import Glibc
import Synchronization

/// The extended-attribute system calls, which Swift's Glibc module does not import (<sys/xattr.h> is not in its module
/// map). They are looked up once with dlsym: each is a plain, non-variadic libc function, so calling it through a
/// `@convention(c)` pointer is exact. If `#include <sys/xattr.h>` is ever added to Sources/CACL/shim.h these can call
/// the imported declarations instead.
///
/// `getxattrat(2)` (Linux 6.13+) reads an attribute relative to a directory descriptor without following symlinks;
/// glibc has no wrapper, so it goes through `syscall(2)` (on Linux x86_64 and arm64 a variadic call passes integer
/// arguments exactly like a fixed one). When the kernel answers ENOSYS the scanner uses `lgetxattr` on the full path.
enum Xattr {
    static let accessName = "system.posix_acl_access"
    static let defaultName = "system.posix_acl_default"

    typealias PathGet = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int
    typealias FDGet = @convention(c) (Int32, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int
    typealias PathSet = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeRawPointer?, Int, Int32) -> Int32
    typealias FDSet = @convention(c) (Int32, UnsafePointer<CChar>, UnsafeRawPointer?, Int, Int32) -> Int32
    typealias PathRemove = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>) -> Int32
    typealias FDRemove = @convention(c) (Int32, UnsafePointer<CChar>) -> Int32
    typealias Syscall6 = @convention(c) (Int, Int, Int, Int, Int, Int, Int) -> Int

    private static func symbol<T>(_ name: String, as type: T.Type) -> T {
        guard let handle = dlopen(nil, RTLD_NOW), let pointer = dlsym(handle, name) else {
            fatalError("libc has no \(name)")
        }
        return unsafeBitCast(pointer, to: type)
    }

    static let lget: PathGet = symbol("lgetxattr", as: PathGet.self)
    static let get: PathGet = symbol("getxattr", as: PathGet.self)
    static let fget: FDGet = symbol("fgetxattr", as: FDGet.self)
    static let lset: PathSet = symbol("lsetxattr", as: PathSet.self)
    static let fset: FDSet = symbol("fsetxattr", as: FDSet.self)
    static let lremove: PathRemove = symbol("lremovexattr", as: PathRemove.self)
    static let fremove: FDRemove = symbol("fremovexattr", as: FDRemove.self)
    static let syscall6: Syscall6 = symbol("syscall", as: Syscall6.self)

    typealias GetDents = @convention(c) (Int32, UnsafeMutableRawPointer?, Int) -> Int

    /// `getdents64(2)` (glibc 2.30+ exports a wrapper; else the raw system call).
    static let getdents: GetDents? = {
        guard let handle = dlopen(nil, RTLD_NOW), let pointer = dlsym(handle, "getdents64") else { return nil }
        return unsafeBitCast(pointer, to: GetDents.self)
    }()

    static func getdents64(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ size: Int) -> Int {
        if let getdents { return getdents(fd, buffer, size) }
        #if arch(x86_64)
        return syscall6(217, Int(fd), Int(bitPattern: buffer), size, 0, 0, 0)
        #else
        return syscall6(61, Int(fd), Int(bitPattern: buffer), size, 0, 0, 0)
        #endif
    }

    #if arch(x86_64) || arch(arm64)
    /// __NR_getxattrat: the same number on x86_64 and the generic (arm64) table.
    static let getxattratNumber = 464
    #else
    static let getxattratNumber = -1
    #endif

    /// Whether getxattrat works on this kernel: nil until the first call tells (0 unknown, 1 yes, 2 no).
    private static let getxattratState = Atomic<UInt8>(getxattratNumber < 0 ? 2 : 0)

    static var getxattratWorks: Bool? {
        get {
            switch getxattratState.load(ordering: .relaxed) {
            case 1: return true
            case 2: return false
            default: return nil
            }
        }
        set { getxattratState.store(newValue == nil ? 0 : (newValue! ? 1 : 2), ordering: .relaxed) }
    }

    struct XattrArgs {
        var value: UInt64
        var size: UInt32
        var flags: UInt32
    }

    /// `getxattrat(dirfd, name, AT_SYMLINK_NOFOLLOW, attr)`: the length read, or -1 with errno (ENOSYS on old kernels).
    /// (`following: true`: AT flags 0, used only on a `/proc/self/fd` magic link, which is the object itself.)
    static func getAt(_ dirfd: Int32, _ name: UnsafePointer<CChar>, _ attr: UnsafePointer<CChar>,
                      _ buffer: UnsafeMutableRawPointer?, _ size: Int, following: Bool = false) -> Int {
        var args = XattrArgs(value: UInt64(UInt(bitPattern: buffer)), size: UInt32(size), flags: 0)
        return withUnsafeMutablePointer(to: &args) { argsPointer in
            syscall6(getxattratNumber, Int(dirfd), Int(bitPattern: name), following ? 0 : Int(AT_SYMLINK_NOFOLLOW),
                     Int(bitPattern: attr), Int(bitPattern: argsPointer), MemoryLayout<XattrArgs>.size)
        }
    }

    /// Reads a whole attribute into a byte array: nil with errno set when absent (ENODATA) or unreadable.
    static func read(_ reader: (UnsafeMutableRawPointer?, Int) -> Int) -> [UInt8]? {
        var size = 132  // 4 + 16 entries
        while true {
            var bytes = [UInt8](repeating: 0, count: size)
            let n = bytes.withUnsafeMutableBytes { reader($0.baseAddress, size) }
            if n >= 0 { bytes.removeSubrange(n...); return bytes }
            guard errno == ERANGE else { return nil }
            let needed = reader(nil, 0)
            if needed < 0 { return nil }
            size = max(needed, size * 2)
        }
    }
}
