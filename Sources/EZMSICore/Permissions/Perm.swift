/// Permission bits as the kernel and ACL entries hold them: r = 4, w = 2, x = 1.
public struct Perm: OptionSet, Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt16

    public init(rawValue: UInt16) { self.rawValue = rawValue & 7 }

    public static let r = Perm(rawValue: 4)
    public static let w = Perm(rawValue: 2)
    public static let x = Perm(rawValue: 1)
    public static let rwx: Perm = [.r, .w, .x]

    /// The three bits of a mode at `shift` (6 = owner, 3 = group, 0 = other).
    public init(mode: UInt32, shift: UInt32) { self.init(rawValue: UInt16((mode >> shift) & 7)) }

    /// `rwx`, `r-x`, `---`.
    public var description: String {
        (contains(.r) ? "r" : "-") + (contains(.w) ? "w" : "-") + (contains(.x) ? "x" : "-")
    }

    /// Parses `rwx`, `r-x`, `rw`, `x`, `-` (as setfacl does: any order, dashes ignored).
    public init?(text: String) {
        var bits: UInt16 = 0
        for c in text {
            switch c {
            case "r": bits |= 4
            case "w": bits |= 2
            case "x": bits |= 1
            case "-": break
            default: return nil
            }
        }
        self.init(rawValue: bits)
    }

    public static func < (a: Perm, b: Perm) -> Bool { a.rawValue < b.rawValue }
}

/// What a program does with a file system object. Each operation is the set of permission checks the kernel makes
/// for it, each check one `inode_permission` call: `listDirectory` is two checks (r to open/readdir, x to look up the
/// entries) while `createInDirectory` is one check of w and x together (`may_create`). So a process whose groups hold
/// `r--` and `--x` in two separate ACL group entries can list the directory, but with `-w-` and `--x` it cannot create.
public enum AccessOperation: String, CaseIterable, Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    /// open(O_RDONLY) of a file, inotify watch: r.
    case readFile = "read-file"
    /// readdir and stat of the entries: r and x.
    case listDirectory = "list-directory"
    /// path lookup through a directory (or exec of a file): x.
    case traverse
    /// creat/mkdir/rename into a directory: w+x in one check.
    case createInDirectory = "create-in-directory"
    /// open(O_WRONLY) of an existing file: w.
    case writeFile = "write-file"

    /// All the bits the operation needs.
    public var want: Perm {
        switch self {
        case .readFile: return .r
        case .listDirectory: return [.r, .x]
        case .traverse: return .x
        case .createInDirectory: return [.w, .x]
        case .writeFile: return .w
        }
    }

    /// The separate kernel checks, in the order the kernel makes them; every one must pass.
    public var checks: [Perm] {
        switch self {
        case .listDirectory: return [.r, .x]
        default: return [want]
        }
    }

    /// For messages: "read", "list", "enter", "create files in", "write".
    public var verb: String {
        switch self {
        case .readFile: return "read"
        case .listDirectory: return "list"
        case .traverse: return "enter"
        case .createInDirectory: return "create files in"
        case .writeFile: return "write"
        }
    }

    public var description: String { rawValue }

    private var order: Int { AccessOperation.allCases.firstIndex(of: self)! }
    public static func < (a: AccessOperation, b: AccessOperation) -> Bool { a.order < b.order }
}
