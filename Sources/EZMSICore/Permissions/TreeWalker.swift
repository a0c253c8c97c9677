import Foundation
import Glibc
import Synchronization

/// What a directory entry is (`lstat`: a symlink is a symlink).
public enum TreeEntryKind: String, Sendable, Hashable, Codable {
    case directory, file, symlink, other
}

/// What the walker does after visiting an entry.
public enum TreeVisitAction: Sendable, Equatable {
    /// Continue; a directory is entered and its descendants get `context`.
    case descend(context: UInt8)
    /// Do not enter this directory (no effect on other kinds).
    case skipChildren
    /// End the walk now.
    case stop
}

/// Why the walker did not visit (or did not enter) something.
public enum TreeSkipReason: Hashable, Sendable, CustomStringConvertible {
    /// On another file system than the root (a mount point inside the tree): not visited, not entered.
    case otherFilesystem
    /// ezmsi itself could not stat, open, list or read the ACL of it (errno).
    case unreadable(operation: String, errno: Int32)
    /// Replaced between being listed and being entered (different device/inode): not entered.
    case changedDuringScan

    public var description: String {
        switch self {
        case .otherFilesystem: return "on another file system"
        case let .unreadable(op, e): return "cannot \(op): " + String(cString: strerror(e))
        case .changedDuringScan: return "changed during the scan"
        }
    }
}

/// One entry as the walker sees it. ONLY VALID DURING THE VISITOR CALL: it points into the walker's buffers.
public struct TreeEntry {
    /// 0 for the root.
    public let depth: Int
    public let kind: TreeEntryKind
    /// `fstatat(parentFD, name, AT_SYMLINK_NOFOLLOW)`; for the root `fstat` of the opened root.
    public let stat: stat
    /// The open directory that contains the entry (AT_FDCWD for the root, whose `name` is then its path).
    /// Descriptor-based code (a fixer) opens the entry with `openat(parentFD, name, O_NOFOLLOW | …)`.
    public let parentFD: Int32
    /// NUL-terminated name in `parentFD`.
    public let name: UnsafePointer<CChar>
    /// The context the nearest ancestor directory's visit returned (0 for the root).
    public let context: UInt8
    /// Stored access ACL attribute bytes; nil when there is none, it was not read, or the kind has none.
    public let rawAccessACL: UnsafeRawBufferPointer?
    /// Where the access ACL comes from (`.modeBits` when no attribute, or when not read).
    public let aclOrigin: ACLOrigin
    /// `stat` plus what identifies the object beyond its inode number (birth time, mount id), from the same `statx`.
    let identity: ObjectAccess.Identity
    /// What the visitor's `token(forDirectory:)` returned for the directory that contains the entry (0 for the root's
    /// entries and the root itself).
    let parentToken: UInt64

    let path: UnsafePointer<CChar>
    let pathLength: Int
    let rootLength: Int
    let useGetxattrat: Bool

    /// Path relative to the root, `.` for the root itself.
    public var relativePath: String {
        if pathLength <= rootLength { return "." }
        let start = UnsafeRawPointer(path + rootLength + 1).assumingMemoryBound(to: UInt8.self)
        return String(decoding: UnsafeBufferPointer(start: start, count: pathLength - rootLength - 1), as: UTF8.self)
    }

    /// The absolute path (for messages and path-based fallbacks).
    public var absolutePath: String { String(cString: path) }

    /// The name as a String.
    public var nameString: String { String(cString: name) }

    /// The decoded stored access ACL; nil when none (the mode bits are the ACL) or undecodable.
    public var accessACL: FileACL? { rawAccessACL.flatMap { try? FileACL(xattr: $0) } }

    /// The access ACL, synthesized from the mode bits when none is stored.
    public var effectiveAccessACL: FileACL { accessACL ?? FileACL(mode: stat.st_mode) }

    public var security: InodeSecurity {
        InodeSecurity(uid: stat.st_uid, gid: stat.st_gid, mode: stat.st_mode, acl: accessACL)
    }

    /// Reads the default ACL of a directory entry (one more system call, not following symlinks); nil for other kinds
    /// or when the directory has none.
    public func defaultACL() throws -> FileACL? {
        guard kind == .directory else { return nil }
        let bytes: [UInt8]?
        if depth == 0 {
            // The root was opened following symlinks in its path (as Docker resolves a bind source): read the same.
            bytes = Xattr.read { Xattr.get(path, Xattr.defaultName, $0, $1) }
        } else if useGetxattrat {
            bytes = Xattr.read { Xattr.getAt(parentFD, name, Xattr.defaultName, $0, $1) }
        } else {
            bytes = Xattr.read { Xattr.lget(path, Xattr.defaultName, $0, $1) }
        }
        switch try FileACL.interpret(bytes, operation: "read default ACL of", path: absolutePath) {
        case .acl(let acl): return acl
        case .absent, .unsupported: return nil
        }
    }
}

public protocol TreeVisitor {
    /// Called for every entry on the root's file system, the root first (depth 0), each directory's entries before
    /// its subdirectories are entered.
    mutating func visit(_ entry: TreeEntry) -> TreeVisitAction
    /// Called for what was not visited or not entered; `path` is relative to the root.
    mutating func skipped(path: String, reason: TreeSkipReason)
    /// Called for a directory the walk will enter (after `visit` returned `.descend`): a number the walker hands back
    /// as `parentToken` of its entries (the fix journal's directory record).
    mutating func token(forDirectory entry: TreeEntry) -> UInt64
}

extension TreeVisitor {
    public mutating func token(forDirectory entry: TreeEntry) -> UInt64 { 0 }
}

public enum TreeWalkError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpenRoot(String, Int32)

    public var description: String {
        switch self {
        case let .cannotOpenRoot(p, e): return "cannot open \(p): " + String(cString: strerror(e))
        }
    }
}

/// A recursive walk that never follows symlinks below the root, stays on the root's file system and mount (a bind
/// mount of the same file system is another mount: compared by mount id), keeps at most
/// `maxOpenDirectories` descriptors open and holds no list of entries: memory is the pending subdirectory names of
/// the directories on the current path.
///
/// System calls per entry: one `statx(AT_SYMLINK_NOFOLLOW)` and, for directories and regular files, one
/// `getxattrat(dirfd, name, AT_SYMLINK_NOFOLLOW, "system.posix_acl_access")` (Linux 6.13+; on older kernels
/// `lgetxattr` on the full path). Directories are read with `getdents64` into one 64 KiB buffer.
public final class TreeWalker {
    public enum ACLPolicy: Sendable {
        /// Read the access ACL of directories and regular files.
        case all
        /// Only of directories (faster when files need no evaluation).
        case directoriesOnly
        case none
    }

    public struct Options: Sendable {
        public var oneFilesystem = true
        public var maxOpenDirectories = 64
        public var acls: ACLPolicy = .all

        public init(oneFilesystem: Bool = true, maxOpenDirectories: Int = 64, acls: ACLPolicy = .all) {
            self.oneFilesystem = oneFilesystem
            self.maxOpenDirectories = max(2, maxOpenDirectories)
            self.acls = acls
        }
    }

    public let root: String
    public let options: Options

    /// The root's device, after `walk` opened it.
    public private(set) var rootDevice: UInt64 = 0
    /// The root's mount id (nil where the kernel tells none, then only the device is compared).
    private(set) var rootMountID: UInt64?
    /// Highest number of directory descriptors open at once during the last walk (for tests).
    public private(set) var peakOpenDirectories = 0
    /// How many times a directory had to be re-opened by path because of the descriptor cap.
    public private(set) var reopenCount = 0

    public init(root: String, options: Options = Options()) {
        self.root = root
        self.options = options
    }

    // MARK: State

    private struct Frame {
        var fd: Int32
        var dev: UInt64
        var ino: UInt64
        /// Name in the parent, NUL-terminated (empty for the root).
        var name: [CChar]
        var pathLength: Int
        var depth: Int
        var context: UInt8
        var token: UInt64 = 0
        // Pending subdirectories, packed.
        var names: [CChar] = []
        var starts: [Int32] = []
        var inodes: [UInt64] = []
        var contexts: [UInt8] = []
        var tokens: [UInt64] = []
        var next = 0

        var pending: Bool { next < starts.count }
    }

    private var path: UnsafeMutablePointer<CChar> = .allocate(capacity: 4096)
    private var pathCapacity = 4096
    private var rootLength = 0
    private let dentsSize = 64 * 1024
    private lazy var dents: UnsafeMutableRawPointer = .allocate(byteCount: dentsSize, alignment: 8)
    private let xattrSize = 4096
    private lazy var xattrBuffer: UnsafeMutableRawPointer = .allocate(byteCount: xattrSize, alignment: 8)
    private var largeXattr: UnsafeMutableRawPointer?
    private var largeXattrSize = 0
    private var frames: [Frame] = []
    private var openCount = 0
    private var stopped = false
    private var useGetxattrat = false

    deinit {
        path.deallocate()
        dents.deallocate()
        xattrBuffer.deallocate()
        largeXattr?.deallocate()
        for f in frames where f.fd >= 0 { close(f.fd) }
    }

    private func ensurePath(_ needed: Int) {
        guard needed + 1 > pathCapacity else { return }
        var cap = pathCapacity
        while cap < needed + 1 { cap *= 2 }
        let bigger = UnsafeMutablePointer<CChar>.allocate(capacity: cap)
        bigger.update(from: path, count: pathCapacity)
        path.deallocate()
        path = bigger
        pathCapacity = cap
    }

    /// Sets the path buffer to `<prefix of length base>/<name>` and returns the new length.
    private func setPath(base: Int, name: UnsafePointer<CChar>, nameLength: Int) -> Int {
        ensurePath(base + 1 + nameLength)
        path[base] = 0x2F  // "/"
        (path + base + 1).update(from: name, count: nameLength)
        path[base + 1 + nameLength] = 0
        return base + 1 + nameLength
    }

    private func relative(_ length: Int) -> String {
        if length <= rootLength { return "." }
        let start = UnsafeRawPointer(path + rootLength + 1).assumingMemoryBound(to: UInt8.self)
        return String(decoding: UnsafeBufferPointer(start: start, count: length - rootLength - 1), as: UTF8.self)
    }

    // MARK: Walk

    /// Walks the tree. Throws only when the root cannot be opened; everything below is reported to the visitor.
    /// The root path itself is resolved like Docker resolves a bind-mount source (symlinks in it are followed).
    public func walk<V: TreeVisitor>(_ visitor: inout V) throws {
        try walk(&visitor, pool: nil)
    }

    private func reset() {
        for f in frames where f.fd >= 0 { close(f.fd) }
        frames.removeAll()
        openCount = 0
        stopped = false
        useGetxattrat = Xattr.getxattratWorks ?? true
    }

    /// Sets the path buffer to `bytes` (NUL-terminated) and returns its length.
    private func setPath(_ bytes: [CChar]) -> Int {
        ensurePath(bytes.count)
        bytes.withUnsafeBufferPointer { path.update(from: $0.baseAddress!, count: bytes.count) }
        return bytes.count - 1
    }

    func walk<V: TreeVisitor>(_ visitor: inout V, pool: WorkPool?) throws {
        reset()
        peakOpenDirectories = 0
        reopenCount = 0

        var trimmed = root
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        let rootBytes = Array(trimmed.utf8CString)
        rootLength = setPath(rootBytes)
        // "/" as the root: entries become "//name"; harmless for the kernel, and relative paths stay right.

        let rootFD = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw TreeWalkError.cannotOpenRoot(root, errno) }
        var st = stat()
        guard let rootIdentity = "".withCString({ ObjectAccess.statx(rootFD, $0, emptyPath: true, wantMountID: true, into: &st) }) else {
            let e = errno
            close(rootFD)
            throw TreeWalkError.cannotOpenRoot(root, e)
        }
        rootDevice = UInt64(st.st_dev)
        rootMountID = rootIdentity.mountID ?? ObjectAccess.fdinfoMountID(rootFD)
        openCount = 1
        peakOpenDirectories = 1

        // The root's own ACL, through its descriptor.
        var raw: UnsafeRawBufferPointer?
        var origin = ACLOrigin.modeBits
        if options.acls != .none {
            let n = Xattr.fget(rootFD, Xattr.accessName, xattrBuffer, xattrSize)
            if let e = classify(n, into: &raw, origin: &origin, reader: { Xattr.fget(rootFD, Xattr.accessName, $0, $1) }) {
                visitor.skipped(path: ".", reason: .unreadable(operation: "read the ACL", errno: e))
                close(rootFD)
                openCount = 0
                return
            }
        }
        let action = rootBytes.withUnsafeBufferPointer { rb -> TreeVisitAction in
            var identity = rootIdentity
            identity.mountID = rootMountID
            let entry = TreeEntry(depth: 0, kind: .directory, stat: st, parentFD: AT_FDCWD, name: rb.baseAddress!,
                                  context: 0, rawAccessACL: raw, aclOrigin: origin, identity: identity, parentToken: 0,
                                  path: path, pathLength: rootLength, rootLength: rootLength, useGetxattrat: useGetxattrat)
            let action = visitor.visit(entry)
            if case .descend = action { _ = visitor.token(forDirectory: entry) }
            return action
        }
        guard case .descend(let context) = action else {
            close(rootFD)
            openCount = 0
            return
        }
        frames.append(Frame(fd: rootFD, dev: UInt64(st.st_dev), ino: UInt64(st.st_ino), name: [], pathLength: rootLength,
                            depth: 0, context: context, token: 0))
        readDirectory(frameIndex: 0, &visitor, pool: pool)
        drain(&visitor, pool: pool)
    }

    /// Walks a subtree another walker handed over (parallel audit). `rootLength`/`rootDevice` are the whole tree's.
    func walk<V: TreeVisitor>(donated item: WorkItem, _ visitor: inout V, pool: WorkPool?) {
        reset()
        rootLength = item.rootLength
        rootDevice = item.rootDevice
        rootMountID = item.rootMountID
        let length = setPath(item.path)
        if item.batchNames != nil {
            var st = stat()
            guard fstat(item.parentFD, &st) == 0 else {
                visitor.skipped(path: relative(length), reason: .unreadable(operation: "stat the directory", errno: errno))
                close(item.parentFD)
                return
            }
            openCount = 1
            peakOpenDirectories = max(peakOpenDirectories, 1)
            frames.append(Frame(fd: item.parentFD, dev: UInt64(st.st_dev), ino: UInt64(st.st_ino), name: [],
                                pathLength: length, depth: item.depth, context: item.context, token: item.token))
            readDirectory(frameIndex: 0, &visitor, pool: pool, batch: item)
            drain(&visitor, pool: pool)
            return
        }
        let fd = item.name.withUnsafeBufferPointer {
            openat(item.parentFD, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        }
        let openErrno = errno
        close(item.parentFD)
        guard fd >= 0 else {
            visitor.skipped(path: relative(length), reason: .unreadable(operation: "open the directory", errno: openErrno))
            return
        }
        guard let st = checkOpened(fd, expectedIno: item.ino, path: relative(length), &visitor) else { return }
        openCount = 1
        peakOpenDirectories = max(peakOpenDirectories, 1)
        frames.append(Frame(fd: fd, dev: st.dev, ino: st.ino, name: item.name, pathLength: length,
                            depth: item.depth, context: item.context, token: item.token))
        readDirectory(frameIndex: 0, &visitor, pool: pool)
        drain(&visitor, pool: pool)
    }

    /// Hands the pending subdirectory nearest to the walk's base (the biggest subtree, likely) to an idle worker.
    private func donate(to pool: WorkPool) {
        for k in frames.indices where frames[k].pending && frames[k].fd >= 0 {
            let i = frames[k].next
            let dup = fcntl(frames[k].fd, F_DUPFD_CLOEXEC, 0)
            guard dup >= 0 else { return }
            frames[k].next += 1
            let start = Int(frames[k].starts[i])
            let name: [CChar] = frames[k].names.withUnsafeBufferPointer { buf in
                let p = buf.baseAddress! + start
                return Array(UnsafeBufferPointer(start: p, count: strlen(p) + 1))
            }
            let base = frames[k].pathLength
            var itemPath = Array(UnsafeBufferPointer(start: path, count: base))
            itemPath.append(0x2F)
            itemPath.append(contentsOf: name)
            pool.give(WorkItem(parentFD: dup, name: name, ino: frames[k].inodes[i], path: itemPath,
                               depth: frames[k].depth + 1, context: frames[k].contexts[i], rootLength: rootLength,
                               rootDevice: rootDevice, rootMountID: rootMountID, token: frames[k].tokens[i]))
            return
        }
    }

    private func drain<V: TreeVisitor>(_ visitor: inout V, pool: WorkPool?) {
        while !stopped, let top = frames.indices.last {
            if !frames[top].pending {
                if frames[top].fd >= 0 { close(frames[top].fd); openCount -= 1 }
                frames.removeLast()
                continue
            }
            if let pool, pool.hungry {
                donate(to: pool)
                if !frames[top].pending { continue }
            }
            guard ensureOpen(top, &visitor) else {
                frames[top].next = frames[top].starts.count
                continue
            }
            let i = frames[top].next
            frames[top].next += 1
            let parentFD = frames[top].fd
            let base = frames[top].pathLength
            let depth = frames[top].depth + 1
            let expectedIno = frames[top].inodes[i]
            let context = frames[top].contexts[i]
            let token = frames[top].tokens[i]
            let start = Int(frames[top].starts[i])
            let nameArray: [CChar] = frames[top].names.withUnsafeBufferPointer { buf in
                let p = buf.baseAddress! + start
                return Array(UnsafeBufferPointer(start: p, count: strlen(p) + 1))
            }
            let length = nameArray.withUnsafeBufferPointer { setPath(base: base, name: $0.baseAddress!, nameLength: $0.count - 1) }
            let fd = nameArray.withUnsafeBufferPointer {
                openat(parentFD, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            }
            if fd < 0 {
                visitor.skipped(path: relative(length), reason: .unreadable(operation: "open the directory", errno: errno))
                continue
            }
            guard let cst = checkOpened(fd, expectedIno: expectedIno, path: relative(length), &visitor) else { continue }
            if openCount >= options.maxOpenDirectories { closeOldest() }
            openCount += 1
            peakOpenDirectories = max(peakOpenDirectories, openCount)
            frames.append(Frame(fd: fd, dev: cst.dev, ino: cst.ino, name: nameArray,
                                pathLength: length, depth: depth, context: context, token: token))
            readDirectory(frameIndex: frames.count - 1, &visitor, pool: pool)
        }
        for f in frames where f.fd >= 0 { close(f.fd) }
        frames.removeAll()
        openCount = 0
    }

    /// A directory just opened to be entered: the inode listed, on the root's file system and mount. Closes it and
    /// reports otherwise.
    private func checkOpened<V: TreeVisitor>(_ fd: Int32, expectedIno: UInt64, path: @autoclosure () -> String,
                                            _ visitor: inout V) -> ObjectAccess.Identity? {
        guard let id = ObjectAccess.identity(of: fd), id.ino == expectedIno else {  // mount id: statx, else fdinfo
            close(fd)
            visitor.skipped(path: path(), reason: .changedDuringScan)
            return nil
        }
        if options.oneFilesystem && (id.dev != rootDevice || id.mountID != rootMountID) {
            close(fd)
            visitor.skipped(path: path(), reason: .otherFilesystem)
            return nil
        }
        return id
    }

    /// Closes the descriptor of the outermost open directory except the walk's base (kept as the anchor for
    /// re-opening) and the innermost (in use).
    private func closeOldest() {
        for i in frames.indices.dropFirst().dropLast() where frames[i].fd >= 0 {
            close(frames[i].fd)
            frames[i].fd = -1
            openCount -= 1
            return
        }
    }

    /// Re-opens a directory whose descriptor was closed: component by component from the nearest open ancestor,
    /// each with O_NOFOLLOW, checking every inode against the one seen during the walk.
    private func ensureOpen<V: TreeVisitor>(_ index: Int, _ visitor: inout V) -> Bool {
        if frames[index].fd >= 0 { return true }
        reopenCount += 1
        var anchor = index
        while anchor > 0 && frames[anchor].fd < 0 { anchor -= 1 }
        var fd = frames[anchor].fd
        var ownsFD = false
        for j in (anchor + 1)...index {
            let next = frames[j].name.withUnsafeBufferPointer {
                openat(fd, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            }
            if ownsFD { close(fd) }
            let id = next >= 0 ? ObjectAccess.identity(of: next) : nil
            if next < 0 || id == nil || id!.ino != frames[j].ino || id!.dev != frames[j].dev
                || (options.oneFilesystem && id!.mountID != rootMountID) {
                if next >= 0 { close(next) }
                visitor.skipped(path: relative(frames[index].pathLength), reason: .changedDuringScan)
                return false
            }
            fd = next
            ownsFD = true
        }
        if openCount >= options.maxOpenDirectories { closeOldest() }
        frames[index].fd = fd
        openCount += 1
        peakOpenDirectories = max(peakOpenDirectories, openCount)
        return true
    }

    /// Interprets an xattr read into `xattrBuffer`: sets `raw`/`origin`; returns an errno for a real failure.
    /// ERANGE (an ACL of more than 511 entries) re-reads into a larger buffer through `reader`.
    @inline(__always)
    private func classify(_ n: Int, into raw: inout UnsafeRawBufferPointer?, origin: inout ACLOrigin,
                          reader: (UnsafeMutableRawPointer?, Int) -> Int) -> Int32? {
        if n >= 0 {
            raw = n <= 4 ? nil : UnsafeRawBufferPointer(start: xattrBuffer, count: n)
            origin = n <= 4 ? .modeBits : .stored
            return nil
        }
        let e = errno
        switch e {
        case ENODATA:
            raw = nil
            origin = .modeBits
            return nil
        case EOPNOTSUPP:
            raw = nil
            origin = .unsupported
            return nil
        case ERANGE:
            while true {
                let needed = reader(nil, 0)
                if needed < 0 { return errno }
                if needed > largeXattrSize {
                    largeXattr?.deallocate()
                    largeXattr = .allocate(byteCount: needed, alignment: 8)
                    largeXattrSize = needed
                }
                let got = reader(largeXattr, largeXattrSize)
                if got >= 0 {
                    raw = UnsafeRawBufferPointer(start: largeXattr, count: got)
                    origin = .stored
                    return nil
                }
                if errno != ERANGE { return errno }
            }
        default:
            return e
        }
    }

    /// Subdirectories to enter, packed.
    private struct Pending {
        var names: [CChar] = []
        var starts: [Int32] = []
        var inodes: [UInt64] = []
        var contexts: [UInt8] = []
        var tokens: [UInt64] = []
    }

    /// Reads one directory completely (or the batch of its entries another walker handed over): visits every entry,
    /// remembers the subdirectories to enter. When a pool has idle walkers, the rest of the current `getdents64`
    /// buffer is handed over as a batch (so one huge flat directory is shared too).
    private func readDirectory<V: TreeVisitor>(frameIndex: Int, _ visitor: inout V, pool: WorkPool? = nil,
                                               batch: WorkItem? = nil) {
        let dirFD = frames[frameIndex].fd
        let base = frames[frameIndex].pathLength
        let depth = frames[frameIndex].depth + 1
        let context = frames[frameIndex].context
        let token = frames[frameIndex].token
        var pending = Pending()

        if let batch, let names = batch.batchNames {
            names.withUnsafeBufferPointer { buf in
                for start in batch.batchStarts {
                    let name = buf.baseAddress! + Int(start)
                    if !processEntry(name, strlen(name), dirFD: dirFD, base: base, depth: depth, context: context,
                                     token: token, &visitor, &pending) { break }
                }
            }
        } else {
            outer: while true {
                let n = Xattr.getdents64(dirFD, dents, dentsSize)
                if n == 0 { break }
                if n < 0 {
                    visitor.skipped(path: relative(base), reason: .unreadable(operation: "list the directory", errno: errno))
                    break
                }
                var offset = 0
                var seen = 0
                while offset < n {
                    seen += 1
                    if seen & 127 == 0, let pool, pool.hungry, n - offset > 64 * 24 {
                        donateBatch(from: offset, to: n, frameIndex: frameIndex, pool: pool)
                        break
                    }
                    let record = dents + offset
                    offset += Int(record.loadUnaligned(fromByteOffset: 16, as: UInt16.self))
                    let name = (record + 19).assumingMemoryBound(to: CChar.self)
                    // Skip "." and "..".
                    if name[0] == 0x2E && (name[1] == 0 || (name[1] == 0x2E && name[2] == 0)) { continue }
                    if !processEntry(name, strlen(name), dirFD: dirFD, base: base, depth: depth, context: context,
                                     token: token, &visitor, &pending) { break outer }
                }
            }
        }
        path[base] = 0
        frames[frameIndex].names = pending.names
        frames[frameIndex].starts = pending.starts
        frames[frameIndex].inodes = pending.inodes
        frames[frameIndex].contexts = pending.contexts
        frames[frameIndex].tokens = pending.tokens
        frames[frameIndex].next = 0
    }

    /// Hands the records `from..<to` of the current getdents buffer to the pool.
    private func donateBatch(from: Int, to: Int, frameIndex: Int, pool: WorkPool) {
        let dup = fcntl(frames[frameIndex].fd, F_DUPFD_CLOEXEC, 0)
        guard dup >= 0 else { return }
        var names: [CChar] = []
        var starts: [Int32] = []
        var offset = from
        while offset < to {
            let record = dents + offset
            offset += Int(record.loadUnaligned(fromByteOffset: 16, as: UInt16.self))
            let name = (record + 19).assumingMemoryBound(to: CChar.self)
            if name[0] == 0x2E && (name[1] == 0 || (name[1] == 0x2E && name[2] == 0)) { continue }
            starts.append(Int32(names.count))
            names.append(contentsOf: UnsafeBufferPointer(start: name, count: strlen(name) + 1))
        }
        let base = frames[frameIndex].pathLength
        var dirPath = Array(UnsafeBufferPointer(start: path, count: base))
        dirPath.append(0)
        pool.give(WorkItem(parentFD: dup, name: [], ino: frames[frameIndex].ino, path: dirPath,
                           depth: frames[frameIndex].depth, context: frames[frameIndex].context, rootLength: rootLength,
                           rootDevice: rootDevice, rootMountID: rootMountID, token: frames[frameIndex].token,
                           batchNames: names, batchStarts: starts))
    }

    /// stat, ACL, visit one entry of the directory `dirFD`. False when the visitor stopped the walk.
    @inline(__always)
    private func processEntry<V: TreeVisitor>(_ name: UnsafePointer<CChar>, _ nameLength: Int, dirFD: Int32, base: Int,
                                              depth: Int, context: UInt8, token: UInt64, _ visitor: inout V,
                                              _ pending: inout Pending) -> Bool {
        let length = setPath(base: base, name: name, nameLength: nameLength)
        var st = stat()
        guard let identity = ObjectAccess.statx(dirFD, name, emptyPath: false, wantMountID: true, into: &st) else {
            let e = errno
            if e != ENOENT { visitor.skipped(path: relative(length), reason: .unreadable(operation: "stat", errno: e)) }
            return true
        }
        let kind: TreeEntryKind
        switch st.st_mode & S_IFMT {
        case S_IFDIR: kind = .directory
        case S_IFREG: kind = .file
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        if options.oneFilesystem && (UInt64(st.st_dev) != rootDevice
            || (identity.mountID != nil && rootMountID != nil && identity.mountID != rootMountID)) {
            visitor.skipped(path: relative(length), reason: .otherFilesystem)
            return true
        }
        var raw: UnsafeRawBufferPointer?
        var origin = ACLOrigin.modeBits
        let acls = options.acls
        let wantACL = kind == .directory ? acls != .none : (kind == .file && acls == .all)
        if wantACL {
            var r: Int
            if useGetxattrat {
                r = Xattr.getAt(dirFD, name, Xattr.accessName, xattrBuffer, xattrSize)
                if r < 0 && errno == ENOSYS {
                    useGetxattrat = false
                    Xattr.getxattratWorks = false
                    r = Xattr.lget(path, Xattr.accessName, xattrBuffer, xattrSize)
                } else if Xattr.getxattratWorks == nil {
                    Xattr.getxattratWorks = true
                }
            } else {
                r = Xattr.lget(path, Xattr.accessName, xattrBuffer, xattrSize)
            }
            let useAt = useGetxattrat
            let p = UnsafePointer(path)
            if let e = classify(r, into: &raw, origin: &origin, reader: { buf, size in
                useAt ? Xattr.getAt(dirFD, name, Xattr.accessName, buf, size) : Xattr.lget(p, Xattr.accessName, buf, size)
            }) {
                visitor.skipped(path: relative(length), reason: .unreadable(operation: "read the ACL", errno: e))
                return true
            }
        }
        let entry = TreeEntry(depth: depth, kind: kind, stat: st, parentFD: dirFD, name: name, context: context,
                              rawAccessACL: raw, aclOrigin: origin, identity: identity, parentToken: token, path: path,
                              pathLength: length, rootLength: rootLength, useGetxattrat: useGetxattrat)
        switch visitor.visit(entry) {
        case .stop:
            stopped = true
            return false
        case .skipChildren:
            return true
        case .descend(let childContext):
            if kind == .directory {
                pending.starts.append(Int32(pending.names.count))
                pending.names.append(contentsOf: UnsafeBufferPointer(start: name, count: nameLength + 1))
                pending.inodes.append(UInt64(st.st_ino))
                pending.contexts.append(childContext)
                pending.tokens.append(visitor.token(forDirectory: entry))
            }
            return true
        }
    }
}

/// A subtree handed from one walker to another: the parent directory (a duplicated descriptor the receiver closes)
/// and the name and inode seen there.
struct WorkItem {
    var parentFD: Int32
    var name: [CChar]
    var ino: UInt64
    /// Absolute path of the subtree, NUL-terminated.
    var path: [CChar]
    var depth: Int
    var context: UInt8
    var rootLength: Int
    var rootDevice: UInt64
    var rootMountID: UInt64?
    /// The visitor's token of the directory (`name` in `parentFD`, or `parentFD` itself for a batch).
    var token: UInt64
    /// A batch of entries of the directory `parentFD` itself (then `path` is that directory's), instead of a subtree.
    var batchNames: [CChar]? = nil
    var batchStarts: [Int32] = []
}

/// The shared state of a parallel walk: subtrees offered by busy walkers to idle ones.
final class WorkPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [WorkItem] = []
    private var idle = 0
    private var finished = false
    private let workers: Int
    /// Queued items do not outnumber idle workers: one item is kept ready even when none is idle, so a worker that
    /// finishes finds work at once instead of waiting while the others are busy changing a batch (which does not
    /// look at the pool). Read without the lock on the hot path (a stale value only delays a donation).
    private let hungryFlag = Atomic<Bool>(false)

    init(workers: Int) { self.workers = workers }

    var hungry: Bool { hungryFlag.load(ordering: .relaxed) }

    private func update() { hungryFlag.store(workers > 1 ? idle >= items.count : idle > items.count, ordering: .relaxed) }

    func give(_ item: WorkItem) {
        condition.lock()
        items.append(item)
        update()
        condition.signal()
        condition.unlock()
    }

    /// The next subtree, or nil when every worker is idle and nothing is queued (the walk is over).
    func take() -> WorkItem? {
        condition.lock()
        defer { condition.unlock() }
        idle += 1
        update()
        while items.isEmpty && !finished {
            if idle == workers {
                finished = true
                condition.broadcast()
                break
            }
            condition.wait()
        }
        guard let item = items.popLast() else { return nil }
        idle -= 1
        update()
        return item
    }
}
