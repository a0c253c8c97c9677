import Foundation
import Glibc
import Synchronization

/// The fix journal: JSON lines, version 2.
///
///     {"version":2,"kind":"acl","root":"/abs/root","rootDev":2049,"rootIno":1234,"rootBtime":…,"uid":1000,"gid":1000,"createdRoot":false,"need":"write-tree","startedAt":"…"}
///     {"created":true,"rootDev":2049,"rootIno":1234}                      (only when the fix created the root)
///     {"dir":7,"in":0,"name":"a","dev":2049,"ino":5677,"btime":…}        (a directory entered; 0 is the root)
///     {"in":7,"name":"b.csv","type":"f","dev":2049,"ino":5678,"btime":…,"handle":"1:2e16…","mode":416,"uid":0,"gid":0,"acl":null,"defaultAcl":null}
///     {"in":null,"name":".","type":"d",…}                                (the root's own record)
///     ...
///     {"complete":true,"records":200201,"changed":200201,"failed":0,"finishedAt":"…"}
///     {"undone":true,"restored":200201,"skipped":0,"at":"…"}             (appended by undo)
///
/// Each path is stored once: a record names its directory's record (`in`) and its own name (`nameHex` when the name
/// is not UTF-8), so the journal grows linearly with the entries whatever the depth. `btime` (nanoseconds) and `handle`
/// (the file handle, `name_to_handle_at`: type and bytes in hex, which hold the inode generation) identify the object
/// beyond its inode number where the filesystem has them (null where not; journals of earlier builds carry `gen`, the
/// inode generation, instead). `mode` is `st_mode & 0o7777`; `acl` / `defaultAcl` are the raw `system.posix_acl_access` / `_default`
/// bytes in hex, null when the entry had none. Records are written in batches, each fsync'ed before any of its
/// changes is made; a record whose change was never made restores nothing (the state already equals it).
///
/// Journals live in a state folder that only the invoking user can write, reached without following a symlink at
/// any component (`StateFolder`); `undo` refuses a journal that someone else could have written.
enum FixJournal {
    static let version = 2

    /// `fix-<UTC yyyyMMdd-HHmmss>-<pid>.jsonl`
    static func fileName(date: Date, pid: Int32, attempt: Int) -> String {
        var t = time_t(date.timeIntervalSince1970)
        var tm = tm()
        gmtime_r(&t, &tm)
        let stamp = String(format: "%04d%02d%02d-%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                           tm.tm_hour, tm.tm_min, tm.tm_sec)
        return "fix-\(stamp)-\(pid)" + (attempt > 0 ? "-\(attempt + 1)" : "") + ".jsonl"
    }

    /// ISO 8601 UTC with milliseconds.
    static func timestamp(_ date: Date = Date()) -> String {
        let seconds = date.timeIntervalSince1970
        var t = time_t(seconds.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        let ms = Int((seconds - seconds.rounded(.down)) * 1000)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                      tm.tm_hour, tm.tm_min, tm.tm_sec, ms)
    }

}

/// A folder reached from `/` one component at a time with `O_NOFOLLOW | O_DIRECTORY`, so no symlink anywhere in its
/// path is followed. The folder itself must be owned by the invoking user (or root) and writable by nobody else.
enum StateFolder {
    struct Refusal: Error, CustomStringConvertible {
        var path: String
        var why: String
        var description: String { "\(path): \(why)" }
    }

    /// Opens `path` (absolute); with `create`, missing components are made with mode 0700. The descriptor is O_RDONLY.
    static func open(_ path: String, create: Bool) throws -> Int32 {
        guard path.hasPrefix("/") else { throw Refusal(path: path, why: "not an absolute path") }
        let components = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var fd = Glibc.open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Refusal(path: "/", why: String(cString: strerror(errno))) }
        var walked = ""
        for (k, c) in components.enumerated() {
            walked += "/" + c
            if c == "." || c == ".." { Glibc.close(fd); throw Refusal(path: walked, why: "a . or .. component") }
            var next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && create {
                if mkdirat(fd, c, 0o700) != 0 && errno != EEXIST {
                    let e = errno
                    Glibc.close(fd)
                    throw Refusal(path: walked, why: "cannot create: " + String(cString: strerror(e)))
                }
                next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            let e = errno
            Glibc.close(fd)
            guard next >= 0 else {
                if e == ELOOP || e == ENOTDIR {
                    var st = stat()
                    if lstat(walked, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK {
                        throw Refusal(path: walked, why: "is a symlink; ezmsi does not follow symlinks to its state folder")
                    }
                }
                throw Refusal(path: walked, why: String(cString: strerror(e)))
            }
            fd = next
            if k == components.count - 1 {
                do { try checkPrivate(fd, path: walked, what: "folder") } catch { Glibc.close(fd); throw error }
            }
        }
        return fd
    }

    /// Owned by the invoking user or root, not writable by group or others.
    static func checkPrivate(_ fd: Int32, path: String, what: String) throws {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw Refusal(path: path, why: String(cString: strerror(errno))) }
        let euid = geteuid()
        guard st.st_uid == euid || st.st_uid == 0 else {
            throw Refusal(path: path, why: "the \(what) belongs to uid \(st.st_uid), not to you (uid \(euid)) or root; "
                + "someone else could have written it")
        }
        guard st.st_mode & 0o022 == 0 else {
            throw Refusal(path: path, why: "the \(what) is writable by group or others (mode "
                + String(st.st_mode & 0o7777, radix: 8) + "); someone else could have written it (chmod go-w)")
        }
    }

    /// Opens a journal for undo: its folder as `open` checks it, the file itself not a symlink, a regular file with one
    /// link, owned by the invoking user or root and writable by nobody else.
    static func openJournal(_ path: String) throws -> Int32 {
        let slash = path.lastIndex(of: "/") ?? path.startIndex
        let directory = slash == path.startIndex ? "/" : String(path[..<slash])
        let name = String(path[path.index(after: slash)...])
        let dirfd = try open(directory, create: false)
        defer { Glibc.close(dirfd) }
        let fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let e = errno
            if e == ELOOP { throw Refusal(path: path, why: "the journal is a symlink") }
            throw Refusal(path: path, why: String(cString: strerror(e)))
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink == 1 else {
            Glibc.close(fd)
            throw Refusal(path: path, why: "not a regular file with one link")
        }
        do { try checkPrivate(fd, path: path, what: "journal") } catch { Glibc.close(fd); throw error }
        return fd
    }
}

// MARK: - Writing

/// Appends lines to one journal file. Thread-safe; the file is created on the first write (a fix that changes nothing
/// leaves no journal).
final class JournalWriter: @unchecked Sendable {
    let directory: String
    private let header: [UInt8]
    private var pending: [UInt8] = []
    private let lock = NSLock()
    private var fd: Int32 = -1
    private(set) var path: String?
    private let devValue = Atomic<UInt64>(0)
    private let inoValue = Atomic<UInt64>(0)
    /// Group commit (`write` + `waitDurable`): fsyncs run on their own queue while the workers go on judging, and
    /// one fsync covers every write made before it started.
    private let syncQueue = DispatchQueue(label: "ezmsi.journal.sync")
    private let syncState = NSCondition()
    /// Writes made through `write` (under `lock`), and how many of them are durable (under `syncState`).
    private var written: UInt64 = 0
    private var synced: UInt64 = 0
    private var syncError: Error?
    /// The journal file's device and inode (0 until created): the walk skips it when it lies inside the tree.
    var dev: UInt64 { devValue.load(ordering: .relaxed) }
    var ino: UInt64 { inoValue.load(ordering: .relaxed) }

    init(directory: String, header: [UInt8]) {
        self.directory = directory
        self.header = header
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    var isOpen: Bool {
        lock.lock()
        defer { lock.unlock() }
        return fd >= 0
    }

    private func openLocked() throws {
        guard fd < 0 else { return }
        let dfd: Int32
        do { dfd = try StateFolder.open(directory, create: true) } catch let r as StateFolder.Refusal {
            throw FixError.untrustedState(r.description)
        }
        defer { Glibc.close(dfd) }
        let now = Date()
        var attempt = 0
        while true {
            let name = FixJournal.fileName(date: now, pid: getpid(), attempt: attempt)
            let candidate = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            let f = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
            if f >= 0 {
                fd = f
                path = candidate
                break
            }
            if errno != EEXIST || attempt > 1000 { throw FixError.journal("cannot create \(candidate)", errno) }
            attempt += 1
        }
        var st = stat()
        if fstat(fd, &st) == 0 {
            devValue.store(UInt64(st.st_dev), ordering: .relaxed)
            inoValue.store(UInt64(st.st_ino), ordering: .relaxed)
        }
        try writeLocked(header)
        if fsync(fd) != 0 { throw FixError.journal("cannot sync \(path!)", errno) }
        // The new name must survive a crash too.
        _ = fsync(dfd)
    }

    private func writeLocked(_ bytes: [UInt8]) throws {
        var done = 0
        try bytes.withUnsafeBytes { buf in
            while done < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FixError.journal("cannot write \(path ?? directory)", errno)
                }
                done += n
            }
        }
    }

    /// Creates the journal (header) if needed and returns its path.
    @discardableResult
    func open() throws -> String {
        lock.lock()
        defer { lock.unlock() }
        try openLocked()
        return path!
    }

    /// Appends `bytes` (whole lines) and makes them durable before returning.
    /// The fsync runs outside the lock: another worker writes its batch meanwhile instead of waiting (each worker's
    /// fsync follows its own write, so each batch is durable before its changes).
    func append(_ bytes: [UInt8], sync: Bool = true) throws {
        lock.lock()
        let target: Int32
        let shown: String
        do {
            try openLocked()
            try writeLocked(pending + bytes)
            pending.removeAll()
            target = fd
            shown = path ?? ""
        } catch {
            lock.unlock()
            throw error
        }
        lock.unlock()
        if sync && fsync(target) != 0 { throw FixError.journal("cannot sync \(shown)", errno) }
    }

    /// Appends `bytes` (whole lines) and starts making them durable without waiting: the ticket returned is for
    /// `waitDurable`, which every change that these lines journal must wait for.
    func write(_ bytes: [UInt8]) throws -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        try openLocked()
        try writeLocked(pending + bytes)
        pending.removeAll()
        written += 1
        let ticket = written, target = fd, shown = path ?? ""
        syncQueue.async { [self] in
            syncState.lock()
            let done = synced >= ticket || syncError != nil
            syncState.unlock()
            if done { return }
            lock.lock()
            let covered = written  // every write so far precedes this fsync
            lock.unlock()
            let failed = fsync(target) != 0
            let e = errno
            syncState.lock()
            if failed {
                if syncError == nil { syncError = FixError.journal("cannot sync \(shown)", e) }
            } else {
                synced = max(synced, covered)
            }
            syncState.broadcast()
            syncState.unlock()
        }
        return ticket
    }

    /// Returns once the write of `ticket` is durable; throws if its fsync failed.
    func waitDurable(_ ticket: UInt64) throws {
        syncState.lock()
        defer { syncState.unlock() }
        while synced < ticket && syncError == nil { syncState.wait() }
        if let syncError { throw syncError }
    }

    /// Lines that must precede any later record but need no file of their own (directory records): kept in memory
    /// until the first record is appended, so a fix that changes nothing leaves no journal; written out when they
    /// pass 1 MiB (a huge tree with nothing to change then leaves a journal without records, which `finish` removes).
    func appendBeforeRecords(_ bytes: [UInt8]) throws {
        lock.lock()
        defer { lock.unlock() }
        if fd < 0 && pending.count + bytes.count < 1 << 20 {
            pending.append(contentsOf: bytes)
            return
        }
        try openLocked()
        try writeLocked(pending + bytes)
        pending.removeAll()
    }

    /// Removes the journal file (a fix that failed before changing anything), through the verified folder.
    func discard() {
        syncQueue.sync {}
        lock.lock()
        defer { lock.unlock() }
        if fd >= 0 { Glibc.close(fd); fd = -1 }
        if let path, let dfd = try? StateFolder.open(directory, create: false) {
            _ = unlinkat(dfd, String(path.split(separator: "/").last ?? ""), 0)
            Glibc.close(dfd)
        }
        path = nil
    }

    func close() {
        syncQueue.sync {}  // no queued fsync may outlive the descriptor
        lock.lock()
        defer { lock.unlock() }
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }
}

/// Fast JSON line building into a byte array.
struct JSONLine {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    @inline(__always) mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    @inline(__always) mutating func number<T: BinaryInteger>(_ value: T) {
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            number(UInt64(-Int64(value)))
            return
        }
        var v = UInt64(value)
        if v < 10 { bytes.append(UInt8(48 + v)); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            while v > 0 {
                d[19 - n] = UInt8(48 + v % 10)
                v /= 10
                n += 1
            }
            bytes.append(contentsOf: d[(20 - n)...])
        }
    }

    mutating func bool(_ b: Bool) { if b { raw("true") } else { raw("false") } }

    /// A JSON string from UTF-8 bytes (must be valid UTF-8).
    mutating func string(utf8 s: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "\""))
        for c in s {
            switch c {
            case UInt8(ascii: "\""): bytes.append(0x5C); bytes.append(c)
            case UInt8(ascii: "\\"): bytes.append(0x5C); bytes.append(c)
            case 0..<0x20:
                raw("\\u00")
                bytes.append(JSONLine.hexDigits[Int(c >> 4)])
                bytes.append(JSONLine.hexDigits[Int(c & 15)])
            default: bytes.append(c)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { string(utf8: UnsafeRawBufferPointer($0)) }
    }

    mutating func hex(_ b: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "\""))
        for c in b {
            bytes.append(JSONLine.hexDigits[Int(c >> 4)])
            bytes.append(JSONLine.hexDigits[Int(c & 15)])
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A file handle: `"TYPE:HEX"`.
    mutating func handle(type: Int32, bytes b: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "\""))
        number(type)
        bytes.append(UInt8(ascii: ":"))
        for c in b {
            bytes.append(JSONLine.hexDigits[Int(c >> 4)])
            bytes.append(JSONLine.hexDigits[Int(c & 15)])
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func hexOrNull(_ b: UnsafeRawBufferPointer?) {
        if let b { hex(b) } else { raw("null") }
    }

    /// A path field: `"path":"…"` when UTF-8, else `"pathHex":"…"` (file names are bytes).
    mutating func pathField(_ p: UnsafeRawBufferPointer, key: StaticString = "\"path\":",
                            hexKey: StaticString = "\"pathHex\":") {
        var ascii = true
        for c in p where c >= 0x80 { ascii = false; break }
        if ascii || String(validating: UnsafeBufferPointer(start: p.baseAddress?.assumingMemoryBound(to: UInt8.self), count: p.count), as: UTF8.self) != nil {
            raw(key)
            string(utf8: p)
        } else {
            raw(hexKey)
            hex(p)
        }
    }

    mutating func newline() { bytes.append(0x0A) }
}

extension FixJournal {
    static func headerLine(kind: FixPlanKind, root: String, rootDev: UInt64?, rootIno: UInt64?, rootBtime: Int64? = nil,
                           identity: ContainerIdentity, need: FolderNeed, createdRoot: Bool) -> [UInt8] {
        var j = JSONLine()
        j.raw("{\"version\":")
        j.number(version)
        j.raw(",\"kind\":")
        j.string(kind.rawValue)
        Array(root.utf8).withUnsafeBytes { j.pathField($0, key: ",\"root\":", hexKey: ",\"rootHex\":") }
        j.raw(",\"rootDev\":")
        if let rootDev { j.number(rootDev) } else { j.raw("null") }
        j.raw(",\"rootIno\":")
        if let rootIno { j.number(rootIno) } else { j.raw("null") }
        j.raw(",\"rootBtime\":")
        if let rootBtime { j.number(rootBtime) } else { j.raw("null") }
        j.raw(",\"uid\":")
        j.number(identity.uid)
        j.raw(",\"gid\":")
        j.number(identity.gid)
        j.raw(",\"createdRoot\":")
        j.bool(createdRoot)
        j.raw(",\"need\":")
        j.string(need.rawValue)
        j.raw(",\"startedAt\":")
        j.string(timestamp())
        j.raw("}")
        j.newline()
        return j.bytes
    }
}

// MARK: - Reading

/// A value of a flat JSON object (the journal has no nesting).
enum JournalValue: Equatable {
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    var string: String? { if case .string(let s) = self { return s }; return nil }
    var uint64: UInt64? { if case .number(let n) = self { return UInt64(n) }; return nil }
    var uint32: UInt32? { if case .number(let n) = self { return UInt32(n) }; return nil }
    var int: Int? { if case .number(let n) = self { return Int(n) }; return nil }
    var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    var isNull: Bool { self == .null }
}

/// One flat JSON object's fields in their order. A journal line has at most a dozen, so a linear lookup beats hashing
/// (undo reads every line twice: this is most of its time on a million entries).
struct FlatObject: Equatable {
    fileprivate(set) var fields: [(key: String, value: JournalValue)] = []

    subscript(key: String) -> JournalValue? {
        for f in fields where f.key == key { return f.value }
        return nil
    }

    var count: Int { fields.count }

    static func == (a: FlatObject, b: FlatObject) -> Bool {
        a.fields.count == b.fields.count && zip(a.fields, b.fields).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

enum FlatJSON {
    /// Parses one flat JSON object (string, number, true/false/null values). nil when malformed (e.g. a line cut
    /// short by a kill).
    static func parse(_ line: ArraySlice<UInt8>) -> FlatObject? {
        line.withUnsafeBufferPointer { parse($0) }
    }

    static func parse(_ b: UnsafeBufferPointer<UInt8>) -> FlatObject? {
        var i = 0
        let n = b.count
        func skipSpace() { while i < n && (b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0D || b[i] == 0x0A) { i += 1 } }
        func parseString() -> String? {
            guard i < n, b[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            // Most strings have no escape: one String straight from the bytes.
            var end = i
            while end < n && b[end] != UInt8(ascii: "\"") && b[end] != UInt8(ascii: "\\") { end += 1 }
            if end < n && b[end] == UInt8(ascii: "\"") {
                defer { i = end + 1 }
                return String(decoding: UnsafeBufferPointer(rebasing: b[i..<end]), as: UTF8.self)
            }
            var out: [UInt8] = Array(b[i..<end])
            i = end
            while i < n {
                let c = b[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    return String(decoding: out, as: UTF8.self)
                }
                if c == UInt8(ascii: "\\") {
                    i += 1
                    guard i < n else { return nil }
                    let e = b[i]
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(8)
                    case UInt8(ascii: "f"): out.append(12)
                    case UInt8(ascii: "n"): out.append(10)
                    case UInt8(ascii: "r"): out.append(13)
                    case UInt8(ascii: "t"): out.append(9)
                    case UInt8(ascii: "u"):
                        guard let u = hex4() else { return nil }
                        var scalarValue = UInt32(u)
                        if (0xD800..<0xDC00).contains(u) {
                            guard i + 1 < n, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else { return nil }
                            i += 2
                            guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            scalarValue = 0x10000 + ((UInt32(u) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(scalarValue) else { return nil }
                        out.append(contentsOf: Array(String(Character(scalar)).utf8))
                    default: return nil
                    }
                    continue
                }
                out.append(c)
                i += 1
            }
            return nil
        }
        func hex4() -> UInt16? {
            guard i + 4 <= n else { return nil }
            var v: UInt16 = 0
            for _ in 0..<4 {
                let c = b[i]
                i += 1
                v <<= 4
                switch c {
                case 48...57: v |= UInt16(c - 48)
                case 97...102: v |= UInt16(c - 87)
                case 65...70: v |= UInt16(c - 55)
                default: return nil
                }
            }
            return v
        }
        func literal(_ s: StaticString) -> Bool {
            let count = s.utf8CodeUnitCount
            guard i + count <= n else { return false }
            let ok = s.withUTF8Buffer { lit in (0..<count).allSatisfy { b[i + $0] == lit[$0] } }
            if ok { i += count }
            return ok
        }
        var result = FlatObject()
        result.fields.reserveCapacity(16)
        skipSpace()
        guard i < n, b[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        skipSpace()
        if i < n && b[i] == UInt8(ascii: "}") { i += 1; return result }
        while true {
            skipSpace()
            guard let key = parseString(), result[key] == nil else { return nil }  // a key twice is damage
            skipSpace()
            guard i < n, b[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            skipSpace()
            guard i < n else { return nil }
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                guard let s = parseString() else { return nil }
                result.fields.append((key, .string(s)))
            } else if c == UInt8(ascii: "-") || (48...57).contains(c) {
                let start = i
                i += 1
                while i < n, (48...57).contains(b[i]) || b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: "e")
                    || b[i] == UInt8(ascii: "E") || b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                result.fields.append((key, .number(String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self))))
            } else if literal("true") {
                result.fields.append((key, .bool(true)))
            } else if literal("false") {
                result.fields.append((key, .bool(false)))
            } else if literal("null") {
                result.fields.append((key, .null))
            } else {
                return nil
            }
            skipSpace()
            guard i < n else { return nil }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; break }
            return nil
        }
        skipSpace()
        return i == n ? result : nil
    }

    static func unhex(_ s: String) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(u.count / 2)
        func v(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var k = 0
        while k < u.count {
            guard let hi = v(u[k]), let lo = v(u[k + 1]) else { return nil }
            out.append(hi << 4 | lo)
            k += 2
        }
        return out
    }
}

/// Reads a file's lines from the last to the first, a chunk at a time (memory: one chunk plus one line).
final class ReverseLineReader {
    private let fd: Int32
    private var offset: Int
    private var buffer: [UInt8] = []
    private let chunk: Int

    init(fd: Int32, chunk: Int = 1 << 20) {
        self.fd = fd
        self.chunk = chunk
        var st = stat()
        offset = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
    }

    /// The previous non-empty line (without its newline), or nil at the start of the file.
    func previous() -> [UInt8]? {
        while true {
            while let last = buffer.last, last == 0x0A { buffer.removeLast() }
            if let i = buffer.lastIndex(of: 0x0A) {
                let line = Array(buffer[(i + 1)...])
                buffer.removeSubrange(i...)
                return line
            }
            if offset == 0 {
                if buffer.isEmpty { return nil }
                let line = buffer
                buffer = []
                return line
            }
            let n = min(chunk, offset)
            offset -= n
            var block = [UInt8](repeating: 0, count: n)
            var got = 0
            while got < n {
                let r = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, n - got, off_t(offset + got)) }
                if r < 0 && errno == EINTR { continue }
                if r <= 0 { break }
                got += r
            }
            if got < n { block.removeSubrange(got...) }
            block.append(contentsOf: buffer)
            buffer = block
        }
    }
}

/// The first line of a file (the header).
func readFirstLine(fd: Int32, limit: Int = 1 << 20) -> [UInt8]? {
    var out: [UInt8] = []
    var block = [UInt8](repeating: 0, count: 4096)
    var offset = 0
    while out.count < limit {
        let r = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 4096, off_t(offset)) }
        if r < 0 && errno == EINTR { continue }
        if r <= 0 { break }
        if let i = block[0..<r].firstIndex(of: 0x0A) {
            out.append(contentsOf: block[0..<i])
            return out
        }
        out.append(contentsOf: block[0..<r])
        offset += r
    }
    return out.isEmpty ? nil : out
}
