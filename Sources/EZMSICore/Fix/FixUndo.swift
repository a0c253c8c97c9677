import Foundation
import Glibc

extension FolderFixer {
    /// Restores exactly what the journal recorded (reverse order); verifies device+inode before touching an entry;
    /// never follows symlinks.
    ///
    /// Each entry is reached component by component from the root with `openat(O_PATH | O_NOFOLLOW)`, its device and
    /// inode compared with the record, and only then changed through that descriptor: owner (`fchownat`
    /// `AT_EMPTY_PATH`), access and default ACL (the exact attribute bytes, or removed when there was none), and last
    /// the mode (`& 0o7777`; after the ACL because the mode's group bits are the ACL mask, and after the chown because
    /// chown clears setuid/setgid). Entries already in their recorded state are not written (a fix killed before it
    /// changed them). A journal that was undone already is left alone.
    public static func undo(journal: String) throws -> UndoOutcome {
        let start = monotonicMs()
        let fd = open(journal, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw FixError.journal("cannot open \(journal)", errno) }
        defer { close(fd) }
        guard let headerLine = readFirstLine(fd: fd), let header = FlatJSON.parse(headerLine[...]),
              header["version"]?.int == FixJournal.version else {
            throw FixError.badJournal("\(journal) has no fix journal header")
        }
        let root: String
        if let r = header["root"]?.string {
            root = r
        } else if let hex = header["rootHex"]?.string, let bytes = FlatJSON.unhex(hex) {
            root = String(decoding: bytes, as: UTF8.self)
        } else {
            throw FixError.badJournal("\(journal): no root in the header")
        }
        let createdRoot = header["createdRoot"]?.bool ?? false
        var rootDev = header["rootDev"]?.uint64
        var rootIno = header["rootIno"]?.uint64
        var outcome = UndoOutcome(restored: 0, skipped: [], removedCreatedRoot: false)

        // The lines, last first: markers at the end, the records, then (for a created root) the creation line.
        let reader = ReverseLineReader(fd: fd)
        var sawRecord = false
        var firstRecord: [UInt8]?
        while !sawRecord, let line = reader.previous() {
            guard let object = FlatJSON.parse(line[...]) else { continue }  // a line cut short by a kill
            if object["undone"]?.bool == true {
                outcome.alreadyUndone = true
                outcome.durationMs = monotonicMs() - start
                return outcome
            }
            if object["path"] != nil || object["pathHex"] != nil {
                sawRecord = true
                firstRecord = line
            }
        }
        if createdRoot && rootDev == nil {
            // The creation line is right after the header.
            var offset = headerLine.count + 1
            if let second = readLine(fd: fd, offset: &offset), let object = FlatJSON.parse(second[...]),
               object["created"]?.bool == true {
                rootDev = object["rootDev"]?.uint64
                rootIno = object["rootIno"]?.uint64
            }
        }
        guard let rootDev, let rootIno else {
            // Killed between writing the header and creating the root: nothing was done.
            try appendUndone(fd: fd, outcome: outcome)
            outcome.durationMs = monotonicMs() - start
            return outcome
        }

        let rootFD = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else {
            if errno == ENOENT { throw FixError.rootMissing(root) }
            throw FixError.cannotOpenRoot(root, errno)
        }
        defer { close(rootFD) }
        var rst = stat()
        guard fstat(rootFD, &rst) == 0, UInt64(rst.st_dev) == rootDev, UInt64(rst.st_ino) == rootIno else {
            throw FixError.rootChanged(root)
        }

        let restorer = Restorer(rootFD: rootFD, rootDev: rootDev)
        defer { restorer.closeAll() }
        var line = firstRecord
        while let current = line {
            if let object = FlatJSON.parse(current[...]), object["path"] != nil || object["pathHex"] != nil {
                switch restorer.restore(object) {
                case .restored: outcome.restored += 1
                case .alreadyOriginal: outcome.alreadyOriginal += 1
                case .skipped(let why): outcome.skipped.append(why)
                }
            }
            line = reader.previous()
        }
        restorer.closeAll()

        if createdRoot {
            // Remove the root it created, if it is still that directory and empty.
            var st = stat()
            if lstat(root, &st) == 0, UInt64(st.st_dev) == rootDev, UInt64(st.st_ino) == rootIno {
                if rmdir(root) == 0 {
                    outcome.removedCreatedRoot = true
                } else {
                    outcome.skipped.append(".: the fix created it; not removed: " + String(cString: strerror(errno)))
                }
            }
        }
        try appendUndone(fd: fd, outcome: outcome)
        outcome.durationMs = monotonicMs() - start
        return outcome
    }

    private static func appendUndone(fd: Int32, outcome: UndoOutcome) throws {
        var line = JSONLine()
        // A kill can leave the last record cut short, without its newline: start a line of our own.
        var st = stat()
        var last: UInt8 = 0x0A
        if fstat(fd, &st) == 0 && st.st_size > 0 { _ = pread(fd, &last, 1, st.st_size - 1) }
        if last != 0x0A { line.newline() }
        line.raw("{\"undone\":true,\"restored\":")
        line.number(outcome.restored)
        line.raw(",\"alreadyOriginal\":")
        line.number(outcome.alreadyOriginal)
        line.raw(",\"skipped\":")
        line.number(outcome.skipped.count)
        line.raw(",\"at\":")
        line.string(FixJournal.timestamp())
        line.raw("}")
        line.newline()
        let ok = line.bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) == $0.count }
        if !ok || fsync(fd) != 0 { throw FixError.journal("cannot mark the journal undone", errno) }
    }

    private static func readLine(fd: Int32, offset: inout Int) -> [UInt8]? {
        var out: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 4096)
        while out.count < 1 << 20 {
            let r = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 4096, off_t(offset)) }
            if r <= 0 { break }
            if let i = block[0..<r].firstIndex(of: 0x0A) {
                out.append(contentsOf: block[0..<i])
                offset += i + 1
                return out
            }
            out.append(contentsOf: block[0..<r])
            offset += r
        }
        return out.isEmpty ? nil : out
    }
}

/// Reaches journaled entries below the root without following symlinks; keeps the directories of the last path open.
final class Restorer {
    enum Result {
        case restored
        case alreadyOriginal
        case skipped(String)
    }

    private let rootFD: Int32
    private let rootDev: UInt64
    /// Open O_PATH descriptors of the components of the last parent path.
    private var stack: [(name: [UInt8], fd: Int32)] = []

    init(rootFD: Int32, rootDev: UInt64) {
        self.rootFD = rootFD
        self.rootDev = rootDev
    }

    func closeAll() {
        for s in stack { close(s.fd) }
        stack.removeAll()
    }

    /// The directory `components` below the root, opened O_PATH | O_DIRECTORY | O_NOFOLLOW step by step.
    private func directory(_ components: ArraySlice<[UInt8]>) -> (fd: Int32, errno: Int32) {
        var k = 0
        while k < stack.count && k < components.count && stack[k].name == components[components.startIndex + k] { k += 1 }
        while stack.count > k { close(stack.removeLast().fd) }
        for c in components.dropFirst(k) {
            let parent = stack.last?.fd ?? rootFD
            var name = c
            name.append(0)
            let fd = name.withUnsafeBufferPointer {
                openat(parent, UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self),
                       O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            if fd < 0 { return (-1, errno) }
            stack.append((c, fd))
        }
        return (stack.last?.fd ?? rootFD, 0)
    }

    func restore(_ record: [String: JournalValue]) -> Result {
        let pathBytes: [UInt8]
        if let p = record["path"]?.string {
            pathBytes = Array(p.utf8)
        } else if let h = record["pathHex"]?.string, let b = FlatJSON.unhex(h) {
            pathBytes = b
        } else {
            return .skipped("?: record without a path")
        }
        let display = String(decoding: pathBytes, as: UTF8.self)
        guard let dev = record["dev"]?.uint64, let ino = record["ino"]?.uint64, let mode = record["mode"]?.uint32,
              let uid = record["uid"]?.uint32, let gid = record["gid"]?.uint32 else {
            return .skipped("\(display): incomplete record")
        }
        func bytes(_ key: String) -> [UInt8]?? {
            switch record[key] {
            case .none, .some(.null): return .some(nil)
            case .some(.string(let s)): return FlatJSON.unhex(s).map { .some($0) } ?? nil
            default: return nil
            }
        }
        guard let access = bytes("acl"), let defaultACL = bytes("defaultAcl") else {
            return .skipped("\(display): malformed ACL in the record")
        }

        // Reach the entry.
        let efd: Int32
        if pathBytes == [0x2E] {
            efd = fcntl(rootFD, F_DUPFD_CLOEXEC, 0)
        } else {
            let components = pathBytes.split(separator: 0x2F, omittingEmptySubsequences: true).map(Array.init)
            guard let name = components.last, !components.contains([0x2E, 0x2E]) else {
                return .skipped("\(display): bad path")
            }
            let (dirfd, e) = directory(components.dropLast())
            guard dirfd >= 0 else { return .skipped("\(display): cannot reach its directory: " + String(cString: strerror(e))) }
            var cname = name
            cname.append(0)
            efd = cname.withUnsafeBufferPointer {
                openat(dirfd, UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), O_PATH | O_NOFOLLOW | O_CLOEXEC)
            }
        }
        guard efd >= 0 else { return .skipped("\(display): " + String(cString: strerror(errno))) }
        defer { close(efd) }
        let h = EntryHandle(fd: efd, isPath: true)
        guard var st = h.stat() else { return .skipped("\(display): cannot stat: " + String(cString: strerror(errno))) }
        guard UInt64(st.st_dev) == dev, UInt64(st.st_ino) == ino, dev == rootDev else {
            return .skipped("\(display): replaced since the fix (device/inode differ); left alone")
        }
        let type = st.st_mode & S_IFMT
        guard type == S_IFDIR || type == S_IFREG else { return .skipped("\(display): not a directory or file; left alone") }
        let isDirectory = type == S_IFDIR

        func current() -> (access: XattrRead, defaultACL: XattrRead)? {
            let a = h.getXattr(Xattr.accessName)
            let d = isDirectory ? h.getXattr(Xattr.defaultName) : .absent
            return (a, d)
        }
        func matches(_ read: XattrRead, _ want: [UInt8]?) -> Bool {
            switch read {
            case .value(let b): return b == want
            case .absent, .unsupported: return want == nil
            case .failed: return false
            }
        }
        guard let before = current() else { return .skipped("\(display): cannot read its ACLs") }
        if case .failed(let e) = before.access { return .skipped("\(display): cannot read its ACL: " + String(cString: strerror(e))) }
        if st.st_uid == uid && st.st_gid == gid && (st.st_mode & 0o7777) == mode && matches(before.access, access)
            && matches(before.defaultACL, isDirectory ? defaultACL : nil) {
            return .alreadyOriginal
        }

        // Owner first (chown clears setuid/setgid: the mode comes last), then the ACLs, then the mode.
        if st.st_uid != uid || st.st_gid != gid {
            let e = h.chown(uid, gid)
            if e != 0 { return .skipped("\(display): chown: " + String(cString: strerror(e))) }
        }
        if !matches(before.access, access) {
            let e = access.map { a in a.withUnsafeBytes { h.setXattr(Xattr.accessName, $0) } } ?? h.removeXattr(Xattr.accessName)
            if e != 0 { return .skipped("\(display): restore the ACL: " + String(cString: strerror(e))) }
        }
        if isDirectory && !matches(before.defaultACL, defaultACL) {
            let e = defaultACL.map { d in d.withUnsafeBytes { h.setXattr(Xattr.defaultName, $0) } } ?? h.removeXattr(Xattr.defaultName)
            if e != 0 { return .skipped("\(display): restore the default ACL: " + String(cString: strerror(e))) }
        }
        guard let now = h.stat() else { return .skipped("\(display): cannot stat: " + String(cString: strerror(errno))) }
        st = now
        if (st.st_mode & 0o7777) != mode {
            let e = h.chmod(mode)
            if e != 0 { return .skipped("\(display): chmod: " + String(cString: strerror(e))) }
        }
        // Verify.
        guard let final = h.stat(), let after = current() else { return .skipped("\(display): cannot verify") }
        if final.st_uid != uid || final.st_gid != gid || (final.st_mode & 0o7777) != mode || !matches(after.access, access)
            || !matches(after.defaultACL, isDirectory ? defaultACL : nil) {
            return .skipped("\(display): could not restore exactly (now \(final.st_uid):\(final.st_gid) "
                + String(final.st_mode & 0o7777, radix: 8) + ")")
        }
        return .restored
    }
}
