import Foundation
import Glibc

extension FolderFixer {
    /// Restores exactly what the journal recorded, last record first.
    ///
    /// 1. The journal is opened only if nobody else could have written it (`StateFolder.openJournal`).
    /// 2. The whole journal is read and verified before anything changes (`JournalContents.read`): a damaged or
    ///    truncated line, an unknown field or value, a record naming a directory not recorded before it, a set-uid or
    ///    set-gid mode on a file — and the journal is refused with its file and line.
    /// 3. Each entry is reached from the root through the recorded directories, one name at a time, each directory
    ///    verified (device, inode, birth time, mount) and held with a bounded number of descriptors at any depth
    ///    (`DirectoryReacher`); the entry is verified the same way (plus its generation) and changed only through its
    ///    descriptor: owner, access ACL, default ACL, then the mode (the mode's group bits are the ACL mask; chown
    ///    clears set-uid/set-gid).
    /// 4. The journal is marked undone only when every record was restored, already original, or skipped because it
    ///    is not the journaled object any more; otherwise the command fails, lists what is left, and a retry resumes.
    /// `acceptCut`: the journal of a fix known to have been killed while it wrote a batch may end in a cut line; only
    /// then is that accepted (the cut batch was never acted on and is ignored). Otherwise a cut is damage: refused.
    public static func undo(journal: String, dryRun: Bool = false, acceptCut: Bool = false) throws -> UndoOutcome {
        let start = monotonicMs()
        let fd: Int32
        do { fd = try StateFolder.openJournal(journal) } catch let r as StateFolder.Refusal {
            throw FixError.untrustedState(r.description)
        }
        defer { close(fd) }
        let contents = try JournalContents.read(fd: fd, path: journal, acceptCut: acceptCut)
        var outcome = UndoOutcome(restored: 0, skipped: [], removedCreatedRoot: false)
        outcome.journal = journal
        outcome.root = contents.rootDisplay
        outcome.dryRun = dryRun
        outcome.interrupted = !contents.complete
        if contents.undone {
            outcome.alreadyUndone = true
            outcome.durationMs = monotonicMs() - start
            return outcome
        }
        guard let rootDev = contents.rootDev, let rootIno = contents.rootIno else {
            // Killed between writing the header and creating the root: nothing was done.
            if !dryRun { try appendUndone(fd: fd, outcome: outcome) }
            outcome.durationMs = monotonicMs() - start
            return outcome
        }
        let rootFD = contents.root.withUnsafeBufferPointer { open($0.baseAddress!, O_PATH | O_DIRECTORY | O_CLOEXEC) }
        guard rootFD >= 0 else {
            if errno == ENOENT { throw FixError.rootMissing(contents.rootDisplay) }
            throw FixError.cannotOpenRoot(contents.rootDisplay, errno)
        }
        defer { close(rootFD) }
        guard let rootIdentity = ObjectAccess.identity(of: rootFD), rootIdentity.dev == rootDev, rootIdentity.ino == rootIno,
              contents.rootBtime == nil || rootIdentity.btime == contents.rootBtime, let rootMountID = rootIdentity.mountID else {
            throw FixError.rootChanged(contents.rootDisplay)
        }
        if contents.sawBtime && rootIdentity.btime == nil { outcome.untestable.append("birth time (not recorded by this filesystem)") }
        if !contents.sawGeneration { outcome.untestable.append("file handle / inode generation (not offered by this filesystem)") }

        // Files first, by several workers: each object is journaled once and a file holds nothing another record
        // needs, so their order does not matter. Then the directories, one at a time, last journaled first: a
        // directory's restored mode can shut a non-root invoker out of what lies below it, so that goes first.
        let files = UndoFiles(threads: TreeAuditOptions.defaultThreads)
        runOnThreads(files.threads) { k in
            let reacher = DirectoryReacher(rootFD: rootFD, rootMountID: rootMountID, directories: contents.directories)
            defer { reacher.closeAll() }
            func restoreChunk(_ chunk: UndoFiles.Chunk) {
                var done = UndoFiles.Done()
                for state in chunk.records {
                    done.add(restore(state, reacher: reacher, rootFD: rootFD, rootMountID: rootMountID, dryRun: dryRun),
                             of: state, reacher: reacher)
                }
                files.finished(chunk.index, done)
            }
            if k == 0 {
                // This worker reads the journal; it restores a chunk itself whenever the others have enough queued.
                files.directoryLinesMarked = forEachActedOn(fd: fd, directories: false) { state in
                    if let chunk = files.add(state), !files.offer(chunk) { restoreChunk(chunk) }
                }
                if let chunk = files.flush(), !files.offer(chunk) { restoreChunk(chunk) }
                files.close()
            }
            while let chunk = files.take() { restoreChunk(chunk) }
        }
        for done in files.results() { done.merge(into: &outcome) }
        let reacher = DirectoryReacher(rootFD: rootFD, rootMountID: rootMountID, directories: contents.directories)
        var done = UndoFiles.Done()
        forEachActedOn(fd: fd, directories: true, prefilter: files.directoryLinesMarked) { state in
            done.add(restore(state, reacher: reacher, rootFD: rootFD, rootMountID: rootMountID, dryRun: dryRun),
                     of: state, reacher: reacher)
        }
        done.merge(into: &outcome)
        reacher.closeAll()

        if contents.createdRoot && outcome.left.isEmpty && !dryRun {
            // Remove the root it created, if it is still that directory and empty.
            let parent = parentOf(contents.rootDisplay)
            let name = (contents.rootDisplay as NSString).lastPathComponent
            let pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC)
            if pfd >= 0 {
                let cfd = ObjectAccess.openEntry(pfd, name, directory: true)
                if cfd >= 0, let id = ObjectAccess.identity(of: cfd), id.dev == rootDev, id.ino == rootIno {
                    if unlinkat(pfd, name, AT_REMOVEDIR) == 0 {
                        outcome.removedCreatedRoot = true
                    } else {
                        outcome.skipped.append(".: the fix created it; not removed: " + String(cString: strerror(errno)))
                    }
                }
                if cfd >= 0 { close(cfd) }
                close(pfd)
            }
        }
        if outcome.left.isEmpty && !dryRun { try appendUndone(fd: fd, outcome: outcome) }
        outcome.durationMs = monotonicMs() - start
        return outcome
    }

    /// Calls `body` with each state record of a directory (`directories`) or of a file, last first, that the fix
    /// acted on (records after the last batch marker never were); a line that does not parse is the cut the reader
    /// accepted. `prefilter`: skip, unparsed, lines without `"type":"d"` (a name's quotes are escaped, so only the
    /// key can hold those bytes); returns whether every directory record seen held them.
    @discardableResult
    static func forEachActedOn(fd: Int32, directories: Bool, prefilter: Bool = false,
                               _ body: (JournalRecord.State) -> Void) -> Bool {
        let reader = ReverseLineReader(fd: fd)
        var insideBatch = false
        var marked = true
        let directoryType = Array(#""type":"d""#.utf8)
        func hasDirectoryType(_ line: [UInt8]) -> Bool {
            line.withUnsafeBufferPointer { l in
                guard l.count >= directoryType.count else { return false }
                for i in 0...(l.count - directoryType.count) where l[i] == 0x22 && l[i + 1] == 0x74 {  // "t
                    if directoryType.indices.allSatisfy({ l[i + $0] == directoryType[$0] }) { return true }
                }
                return false
            }
        }
        while let line = reader.previous() {
            if insideBatch && prefilter && !line.starts(with: #"{"batch""#.utf8) && !hasDirectoryType(line) { continue }
            guard let object = FlatJSON.parse(line[...]), let record = JournalRecord(object) else { continue }
            if case .batch = record { insideBatch = true }
            guard case .state(let state) = record, insideBatch else { continue }
            if state.isDirectory && !hasDirectoryType(line) { marked = false }
            if state.isDirectory == directories { body(state) }
        }
        return marked
    }

    enum RestoreResult {
        case restored
        case alreadyOriginal
        /// Not the journaled object any more: left alone on purpose (does not keep the journal open).
        case skipped(String)
        /// Could not be restored now (a failed write, out of descriptors): the journal stays open for a retry.
        case left(String)
    }

    static func restore(_ r: JournalRecord.State, reacher: DirectoryReacher, rootFD: Int32, rootMountID: UInt64,
                        dryRun: Bool) -> RestoreResult {
        let pathFD: Int32
        if let parent = r.parent {
            let dirfd: Int32
            switch reacher.open(parent) {
            case .success(let fd): dirfd = fd
            case .failure(.replaced(let why)): return .skipped(why)
            case .failure(.failed(let why)): return .left(why)
            }
            pathFD = r.name.withUnsafeBufferPointer { ObjectAccess.openEntry(dirfd, $0.baseAddress!) }
            if pathFD < 0 {
                let e = errno
                if e == ENOENT { return .skipped("gone since the fix") }
                if e == EXDEV { return .skipped("a mount is there now; left alone") }
                if e == ELOOP { return .skipped("a symlink is there now; left alone") }
                return .left("cannot open: " + String(cString: strerror(e)))
            }
        } else {
            pathFD = fcntl(rootFD, F_DUPFD_CLOEXEC, 0)
            if pathFD < 0 { return .left("cannot open: " + String(cString: strerror(errno))) }
        }
        let object: VerifiedObject
        switch VerifiedObject.verify(pathFD: pathFD, judged: nil, mountID: rootMountID, reopen: true) {
        case .success(let o): object = o
        case .failure(.gone(let e)): return e == EMFILE || e == ENFILE ? .left(String(cString: strerror(e))) : .skipped("gone since the fix")
        case .failure(.otherMount): return .skipped("on another mount now; left alone")
        case .failure(.notFileOrDirectory), .failure(.replaced): return .skipped("replaced since the fix; left alone")
        }
        defer { object.close() }
        let id = object.identity
        guard id.dev == r.dev, id.ino == r.ino, id.isDirectory == r.isDirectory else {
            return .skipped("replaced since the fix (device/inode differ); left alone")
        }
        if let b = r.btime, id.btime != b {
            return .skipped("replaced since the fix (same inode number, another birth time); left alone")
        }
        if let h = r.fileHandle, let now = object.fileHandle, now != h {
            return .skipped("replaced since the fix (same inode number, another file handle); left alone")
        }
        if let g = r.generation, let now = object.generation, now != g {
            return .skipped("replaced since the fix (same inode number, another generation); left alone")
        }
        if id.isRegular && id.nlink > 1 {
            return .skipped("has \(id.nlink) hard links now; another may be outside the folder, so it is left alone")
        }

        let wantDefault = r.isDirectory ? r.defaultACL : nil
        let access = object.getXattr(Xattr.accessName)
        let defaultNow = r.isDirectory ? object.getXattr(Xattr.defaultName) : .absent
        if case .failed(let e) = access { return .left("cannot read its ACL: " + String(cString: strerror(e))) }
        if id.uid == r.uid && id.gid == r.gid && (id.mode & 0o7777) == r.mode && access.holds(r.access)
            && defaultNow.holds(wantDefault) {
            return .alreadyOriginal
        }
        if dryRun { return .restored }

        if id.uid != r.uid || id.gid != r.gid {
            let e = object.chown(r.uid, r.gid)
            if e != 0 { return .left("chown: " + String(cString: strerror(e))) }
        }
        if !access.holds(r.access) {
            let e = r.access.map { a in a.withUnsafeBytes { object.setXattr(Xattr.accessName, $0) } } ?? object.removeXattr(Xattr.accessName)
            if e != 0 { return .left("restore the ACL: " + String(cString: strerror(e))) }
        }
        if r.isDirectory && !defaultNow.holds(wantDefault) {
            let e = wantDefault.map { d in d.withUnsafeBytes { object.setXattr(Xattr.defaultName, $0) } } ?? object.removeXattr(Xattr.defaultName)
            if e != 0 { return .left("restore the default ACL: " + String(cString: strerror(e))) }
        }
        // The mode last: writing the access ACL set the group bits to its mask, chown cleared set-uid/set-gid.
        let e = object.chmod(r.mode)
        if e != 0 { return .left("chmod: " + String(cString: strerror(e))) }
        return .restored
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
        guard lseek(fd, 0, SEEK_END) >= 0 else { throw FixError.journal("cannot mark the journal undone", errno) }
        let ok = line.bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) == $0.count }
        if !ok || fsync(fd) != 0 { throw FixError.journal("cannot mark the journal undone", errno) }
    }
}

// MARK: - Reading a journal

/// One line of a journal, checked field by field.
enum JournalRecord {
    struct Directory {
        var id: UInt64
        var parent: UInt64
        var name: [UInt8]
        var dev: UInt64
        var ino: UInt64
        var btime: Int64?
    }

    struct State {
        /// nil: the root itself.
        var parent: UInt64?
        /// NUL-terminated.
        var name: [CChar]
        var isDirectory: Bool
        var dev: UInt64
        var ino: UInt64
        var btime: Int64?
        /// Journals of earlier builds: the inode generation (FS_IOC_GETVERSION).
        var generation: UInt32?
        /// "TYPE:HEX" (`name_to_handle_at`).
        var fileHandle: String?
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        var access: [UInt8]?
        var defaultACL: [UInt8]?
    }

    case directory(Directory)
    case state(State)
    case created(dev: UInt64, ino: UInt64)
    case complete(records: Int)
    /// The end of one batch: its records, all journaled before any of their changes.
    case batch(id: UInt64, records: Int)
    case undone

    /// nil when the line is not exactly one of the shapes the fixer writes.
    init?(_ o: FlatObject) {
        func name() -> [UInt8]? {
            if let n = o["name"]?.string { return Array(n.utf8) }
            if let h = o["nameHex"]?.string { return FlatJSON.unhex(h) }
            return nil
        }
        func optionalInt64(_ key: String) -> Int64?? {
            switch o[key] {
            case .some(.null): return .some(nil)
            case .some(.number(let n)): return Int64(n).map { .some($0) }
            default: return nil
            }
        }
        func bytes(_ key: String) -> [UInt8]?? {
            switch o[key] {
            case .some(.null): return .some(nil)
            case .some(.string(let s)): return FlatJSON.unhex(s).map { .some($0) }
            default: return nil
            }
        }
        func validName(_ n: [UInt8]) -> Bool { !n.isEmpty && !n.contains(0) && !n.contains(0x2F) && n != [0x2E] && n != [0x2E, 0x2E] }
        if o["undone"]?.bool == true { self = .undone; return }
        if o["complete"]?.bool == true {
            guard let n = o["records"]?.int, n >= 0 else { return nil }
            self = .complete(records: n)
            return
        }
        if let id = o["batch"]?.uint64 {
            guard let n = o["records"]?.int, n > 0, o.count == 2 else { return nil }
            self = .batch(id: id, records: n)
            return
        }
        if o["created"]?.bool == true {
            guard let d = o["rootDev"]?.uint64, let i = o["rootIno"]?.uint64 else { return nil }
            self = .created(dev: d, ino: i)
            return
        }
        if let id = o["dir"]?.uint64 {
            guard id > 0, let parent = o["in"]?.uint64, let n = name(), validName(n), let dev = o["dev"]?.uint64,
                  let ino = o["ino"]?.uint64, let btime = optionalInt64("btime"), o.count == 6 else { return nil }
            self = .directory(Directory(id: id, parent: parent, name: n, dev: dev, ino: ino, btime: btime))
            return
        }
        guard o["in"] != nil, let type = o["type"]?.string, type == "d" || type == "f", let dev = o["dev"]?.uint64,
              let ino = o["ino"]?.uint64, let btime = optionalInt64("btime"),
              let mode = o["mode"]?.uint32, mode <= 0o7777, let uid = o["uid"]?.uint32, let gid = o["gid"]?.uint32,
              let access = bytes("acl"), let defaultACL = bytes("defaultAcl"), o.count == 12 else { return nil }
        let parent: UInt64?
        var n: [UInt8]
        if o["in"] == .null {
            guard o["name"]?.string == ".", type == "d" else { return nil }
            parent = nil
            n = [0x2E]
        } else {
            guard let p = o["in"]?.uint64, let got = name(), validName(got) else { return nil }
            parent = p
            n = got
        }
        // The fixer never journals (so never restores) a set-uid/set-gid file.
        if type == "f" && mode & UInt32(S_ISUID | S_ISGID) != 0 { return nil }
        if let a = access, (try? FileACL(xattr: a)) == nil { return nil }
        if let d = defaultACL, (try? FileACL(xattr: d)) == nil { return nil }
        if type == "f" && defaultACL != nil { return nil }
        // The object beyond its inode number: `handle` (or, in journals of earlier builds, `gen`).
        var gen: Int64?
        var handle: String?
        switch (o["handle"], o["gen"]) {
        case (.some(.null), nil): break
        case (.some(.string(let h)), nil):
            guard Self.validHandle(h) else { return nil }
            handle = h
        case (nil, .some):
            guard let g = optionalInt64("gen") else { return nil }
            gen = g
        default: return nil
        }
        if let g = gen, g < 0 || g > Int64(UInt32.max) { return nil }
        n.append(0)
        self = .state(State(parent: parent, name: n.map { CChar(bitPattern: $0) }, isDirectory: type == "d", dev: dev,
                            ino: ino, btime: btime, generation: gen.map { UInt32($0) }, fileHandle: handle, mode: mode, uid: uid, gid: gid,
                            access: access, defaultACL: defaultACL))
    }

    /// "TYPE:HEX" as `ObjectAccess.fileHandle` writes it: a decimal type, then 1 to 128 bytes in lowercase hex.
    static func validHandle(_ h: String) -> Bool {
        let parts = h.utf8.split(separator: UInt8(ascii: ":"), maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, (1...11).contains(parts[0].count), Int32(String(decoding: parts[0], as: UTF8.self)) != nil,
              parts[1].count >= 2, parts[1].count <= 256, parts[1].count % 2 == 0 else { return false }
        return parts[1].allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// A verified journal: its header and its directory records (the only part kept in memory; state records are read
/// again, last first, when restoring).
struct JournalContents {
    var root: [CChar]
    var rootDisplay: String
    var rootDev: UInt64?
    var rootIno: UInt64?
    var rootBtime: Int64?
    var createdRoot: Bool
    var directories: [UInt64: JournalRecord.Directory] = [:]
    var records = 0
    var complete = false
    var undone = false
    var sawBtime = false
    var sawGeneration = false
    var kind = ""
    var startedAt = ""

    /// Longest line accepted (a record with two ACLs of 32 entries and a 255-byte hex name is under 2 KiB).
    static let lineLimit = 1 << 16

    /// Reads and checks every line. Throws `FixError.damagedJournal(path, line, why)` on the first that is wrong.
    static func read(fd: Int32, path: String, acceptCut: Bool = false) throws -> JournalContents {
        func damaged(_ line: Int, _ why: String) -> FixError { .damagedJournal(path, line, why) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FixError.journal("cannot stat \(path)", errno) }
        let size = Int(st.st_size)
        var contents: JournalContents?
        var lineNumber = 0
        var offset = 0
        var pending: [UInt8] = []
        var block = [UInt8](repeating: 0, count: min(max(size, 1), 1 << 20))
        func take(_ line: [UInt8], _ number: Int) throws {
            guard let object = FlatJSON.parse(line[...]) else { throw damaged(number, "not a JSON object") }
            guard contents != nil else {
                guard object["version"]?.int == FixJournal.version else {
                    throw damaged(number, object["version"] == nil ? "no fix journal header" : "journal version \(object["version"].map { "\($0)" } ?? "?") is not \(FixJournal.version)")
                }
                var rootBytes: [UInt8]
                if let r = object["root"]?.string { rootBytes = Array(r.utf8) } else if let h = object["rootHex"]?.string, let b = FlatJSON.unhex(h) { rootBytes = b } else {
                    throw damaged(number, "no root in the header")
                }
                guard rootBytes.first == 0x2F, !rootBytes.contains(0) else { throw damaged(number, "the root is not an absolute path") }
                let display = String(decoding: rootBytes, as: UTF8.self)
                rootBytes.append(0)
                guard let created = object["createdRoot"]?.bool, let kind = object["kind"]?.string, FixPlanKind(rawValue: kind) != nil else {
                    throw damaged(number, "an incomplete header")
                }
                var h = JournalContents(root: rootBytes.map { CChar(bitPattern: $0) }, rootDisplay: display, createdRoot: created)
                h.rootDev = object["rootDev"]?.uint64
                h.rootIno = object["rootIno"]?.uint64
                h.rootBtime = object["rootBtime"].flatMap { $0.isNull ? nil : Int64($0.numberText ?? "") }
                h.kind = kind
                h.startedAt = object["startedAt"]?.string ?? ""
                if !created && (h.rootDev == nil || h.rootIno == nil) { throw damaged(number, "the header has no root device/inode") }
                contents = h
                return
            }
            guard let record = JournalRecord(object) else { throw damaged(number, "not a record ezmsi writes (a field is missing, unknown or out of range)") }
            // In place: a copy of the directory table per line would make a deep journal quadratic.
            try step(record, number, &contents!)
        }
        func step(_ record: JournalRecord, _ number: Int, _ c: inout JournalContents) throws {
            if c.undone { throw damaged(number, "a line after the undone mark") }
            switch record {
            case .undone:
                c.undone = true
            case .batch(_, let n):
                if c.complete { throw damaged(number, "a batch marker after the completion line") }
                guard n == c.recordsSinceBatch else {
                    throw damaged(number, "the batch marker counts \(n) records, the batch has \(c.recordsSinceBatch): records are missing or added")
                }
                c.batchedRecords += n
                c.recordsSinceBatch = 0
            case .complete(let n):
                if c.complete { throw damaged(number, "a second completion line") }
                if c.recordsSinceBatch > 0 { throw damaged(number, "records without their batch marker before the completion line") }
                c.complete = true
                c.records = n
            case .created(let dev, let ino):
                guard c.createdRoot, c.rootDev == nil, number == 2 else { throw damaged(number, "a creation line where none belongs") }
                c.rootDev = dev
                c.rootIno = ino
            case .directory(let d):
                if c.complete { throw damaged(number, "a record after the completion line") }
                guard d.parent == 0 || c.directories[d.parent] != nil else { throw damaged(number, "names directory \(d.parent), which no earlier line records") }
                guard c.directories[d.id] == nil else { throw damaged(number, "directory \(d.id) recorded twice") }
                if d.btime != nil { c.sawBtime = true }
                c.directories[d.id] = d
            case .state(let s):
                if c.complete { throw damaged(number, "a record after the completion line") }
                if c.rootDev == nil { throw damaged(number, "a record before the root was recorded") }
                if let p = s.parent, p != 0, c.directories[p] == nil { throw damaged(number, "names directory \(p), which no earlier line records") }
                if s.btime != nil { c.sawBtime = true }
                if s.generation != nil || s.fileHandle != nil { c.sawGeneration = true }
                c.recordsSinceBatch += 1
            }
        }
        while offset < size || !pending.isEmpty {
            var n = 0
            if offset < size {
                n = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, min($0.count, size - offset), off_t(offset)) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { throw FixError.journal("cannot read \(path)", errno) }
                offset += n
            }
            var start = 0
            var k = 0
            while k < n {
                if block[k] == 0x0A {
                    pending.append(contentsOf: block[start..<k])
                    lineNumber += 1
                    try take(pending, lineNumber)
                    pending.removeAll(keepingCapacity: true)
                    start = k + 1
                }
                k += 1
            }
            pending.append(contentsOf: block[start..<n])
            if pending.count > lineLimit { throw damaged(lineNumber + 1, "a line longer than \(lineLimit) bytes") }
            if offset >= size {
                if !pending.isEmpty {
                    // A last line without its newline: the cut a kill leaves, acceptable only in a fix that did not
                    // finish (no completion line).
                    lineNumber += 1
                    if contents?.complete == true || contents == nil || !acceptCut {
                        throw damaged(lineNumber, "the journal is cut here (a line without its end): damaged, or the fix was "
                            + "killed while writing it; if you know the fix was killed, run: ezmsi undo --accept-cut \(ShellWords.quote(path))")
                    }
                }
                break
            }
        }
        guard let result = contents else { throw damaged(1, "empty: no fix journal header") }
        if result.recordsSinceBatch > 0 && !acceptCut {
            throw damaged(lineNumber, "\(result.recordsSinceBatch) records at the end lack their batch marker: the journal is cut, "
                + "or the fix was killed while writing it; if you know the fix was killed, run: ezmsi undo --accept-cut \(ShellWords.quote(path))")
        }
        if result.complete && result.records != result.countedRecords {
            throw damaged(lineNumber, "the completion line counts \(result.records) records, the journal has \(result.countedRecords): records are missing")
        }
        return result
    }

    /// State records covered by a batch marker, and those after the last marker.
    var batchedRecords = 0
    var recordsSinceBatch = 0
    var countedRecords: Int { batchedRecords + recordsSinceBatch }

    init(root: [CChar], rootDisplay: String, createdRoot: Bool) {
        self.root = root
        self.rootDisplay = rootDisplay
        self.createdRoot = createdRoot
    }
}

extension JournalValue {
    var numberText: String? { if case .number(let n) = self { return n }; return nil }
}

/// Reaches recorded directories from the root, one verified name at a time, keeping at most `maxOpen` descriptors:
/// the path of the last directory reached is kept as a stack; going up uses `..` of a held descriptor and checks that
/// it is the recorded parent (else the directory is reached again from the nearest held ancestor, by name).
final class DirectoryReacher {
    enum Failure: Error {
        /// A directory on the way is not the recorded one: its entries are left alone.
        case replaced(String)
        /// A system call failed (e.g. out of descriptors): retryable.
        case failed(String)
    }

    private let rootFD: Int32
    private let rootMountID: UInt64
    private let directories: [UInt64: JournalRecord.Directory]
    private let maxOpen: Int
    /// From the root's child down: record id and descriptor (-1 when closed to stay within `maxOpen`).
    private var stack: [(id: UInt64, fd: Int32)] = []
    private var index: [UInt64: Int] = [:]
    private var openCount = 0
    /// The held descriptors are always the levels `lowestOpen..<stack.count` (closing goes from the shallowest,
    /// opening happens at the top), so trimming is O(1) at any depth.
    private var lowestOpen = 0

    init(rootFD: Int32, rootMountID: UInt64, directories: [UInt64: JournalRecord.Directory], maxOpen: Int = 48) {
        self.rootFD = rootFD
        self.rootMountID = rootMountID
        self.directories = directories
        self.maxOpen = max(4, maxOpen)
    }

    func closeAll() {
        for s in stack where s.fd >= 0 { close(s.fd) }
        stack.removeAll()
        index.removeAll()
        openCount = 0
        lowestOpen = 0
    }

    /// The record's path relative to the root, for messages (control characters shown visibly).
    func display(_ r: JournalRecord.State) -> String {
        guard let parent = r.parent else { return "." }
        var parts: [String] = [String(decoding: r.name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)]
        var id = parent
        var guardSteps = 0
        while id != 0, let d = directories[id], guardSteps < 100_000 {
            parts.append(String(decoding: d.name, as: UTF8.self))
            id = d.parent
            guardSteps += 1
        }
        return VisibleText.escape(parts.reversed().joined(separator: "/"))
    }

    private func verify(_ fd: Int32, _ d: JournalRecord.Directory) -> Bool {
        guard let id = ObjectAccess.identity(of: fd) else { return false }
        return id.isDirectory && id.dev == d.dev && id.ino == d.ino && id.mountID == rootMountID
            && (d.btime == nil || id.btime == d.btime)
    }

    private func pop() {
        let top = stack.removeLast()
        index[top.id] = nil
        if top.fd >= 0 {
            // Keep the way back up open: the parent through `..`, if it is the recorded one.
            if let below = stack.last, below.fd < 0, let d = directories[below.id] {
                let up = openat(top.fd, "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if up >= 0 {
                    if verify(up, d) { stack[stack.count - 1].fd = up; openCount += 1 } else { close(up) }
                }
            }
            close(top.fd)
            openCount -= 1
        }
        if let last = stack.last, last.fd >= 0 { lowestOpen = min(lowestOpen, stack.count - 1) } else { lowestOpen = stack.count }
    }

    /// Closes the shallowest held descriptor (not the top) when over the cap.
    private func trim() {
        guard openCount > maxOpen, lowestOpen < stack.count - 1 else { return }
        close(stack[lowestOpen].fd)
        stack[lowestOpen].fd = -1
        openCount -= 1
        lowestOpen += 1
    }

    /// The descriptor of recorded directory `id` (0 = the root); valid until the next call.
    func open(_ id: UInt64) -> Result<Int32, Failure> {
        if id == 0 {
            while !stack.isEmpty { pop() }
            return .success(rootFD)
        }
        // The way from the nearest directory on the stack (or the root) down to `id`.
        var way: [UInt64] = []
        var cursor = id
        while cursor != 0 && index[cursor] == nil {
            way.append(cursor)
            guard let d = directories[cursor] else { return .failure(.replaced("its directory is not recorded")) }
            cursor = d.parent
            if way.count > directories.count { return .failure(.replaced("the recorded directories form a loop")) }
        }
        // Pop to `cursor`.
        let keep = cursor == 0 ? 0 : index[cursor]! + 1
        while stack.count > keep { pop() }
        // The base descriptor: the top, reopened if it was closed.
        var base: Int32
        if let top = stack.last {
            if top.fd < 0 {
                switch reopen(stack.count - 1) {
                case .success(let fd): base = fd
                case .failure(let f): return .failure(f)
                }
            } else {
                base = top.fd
            }
        } else {
            base = rootFD
        }
        for next in way.reversed() {
            let d = directories[next]!
            var name = d.name
            name.append(0)
            let fd = name.withUnsafeBufferPointer {
                ObjectAccess.openEntry(base, UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), directory: true)
            }
            if fd < 0 {
                let e = errno
                if e == EMFILE || e == ENFILE || e == ENOMEM { return .failure(.failed("cannot open its directory: " + String(cString: strerror(e)))) }
                return .failure(.replaced("its directory is gone or replaced since the fix (" + String(cString: strerror(e)) + "); left alone"))
            }
            guard verify(fd, d) else {
                close(fd)
                return .failure(.replaced("its directory was replaced since the fix; left alone"))
            }
            stack.append((next, fd))
            index[next] = stack.count - 1
            openCount += 1
            if openCount == 1 { lowestOpen = stack.count - 1 }
            trim()
            base = fd
        }
        return .success(base)
    }

    /// Opens stack level `k` again from the nearest held ancestor (or the root), by name, verifying each level.
    private func reopen(_ k: Int) -> Result<Int32, Failure> {
        var anchor = k - 1
        while anchor >= 0 && stack[anchor].fd < 0 { anchor -= 1 }
        var base = anchor >= 0 ? stack[anchor].fd : rootFD
        var owned = false
        for level in (anchor + 1)...k {
            let d = directories[stack[level].id]!
            var name = d.name
            name.append(0)
            let fd = name.withUnsafeBufferPointer {
                ObjectAccess.openEntry(base, UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), directory: true)
            }
            if owned { close(base) }
            guard fd >= 0 else { return .failure(.failed("cannot reach its directory again: " + String(cString: strerror(errno)))) }
            guard verify(fd, d) else { close(fd); return .failure(.replaced("its directory was replaced since the fix; left alone")) }
            base = fd
            owned = true
        }
        stack[k].fd = base
        openCount += 1
        lowestOpen = k
        trim()
        return .success(base)
    }
}


/// The file records of an undo, in chunks handed between workers; results are merged in journal order.
final class UndoFiles: @unchecked Sendable {
    struct Chunk {
        var index: Int
        var records: [JournalRecord.State]
    }

    /// What restoring some records came to.
    struct Done {
        var restored = 0, alreadyOriginal = 0
        var skipped: [String] = [], left: [String] = []

        mutating func add(_ result: FolderFixer.RestoreResult, of state: JournalRecord.State, reacher: DirectoryReacher) {
            switch result {
            case .restored: restored += 1
            case .alreadyOriginal: alreadyOriginal += 1
            // The path is rebuilt (from the directory records) only for what is reported: O(depth) each.
            case .skipped(let why): skipped.append(reacher.display(state) + ": " + why)
            case .left(let why): left.append(reacher.display(state) + ": " + why)
            }
        }

        func merge(into outcome: inout UndoOutcome) {
            outcome.restored += restored
            outcome.alreadyOriginal += alreadyOriginal
            outcome.skipped += skipped
            outcome.left += left
        }
    }

    let threads: Int
    /// Every directory record read held `"type":"d"` (set by the reader, read once all workers are done).
    var directoryLinesMarked = false
    private static let chunkSize = 1024
    private let condition = NSCondition()
    private var queue: [Chunk] = []
    private var closed = false
    private var done: [Int: Done] = [:]
    private var filling = Chunk(index: 0, records: [])

    init(threads: Int) { self.threads = max(1, threads) }

    /// Adds a record to the chunk being filled (reader only); a full chunk is returned.
    func add(_ state: JournalRecord.State) -> Chunk? {
        filling.records.append(state)
        return filling.records.count >= Self.chunkSize ? flush() : nil
    }

    /// The chunk being filled, if it holds anything (reader only).
    func flush() -> Chunk? {
        guard !filling.records.isEmpty else { return nil }
        let chunk = filling
        filling = Chunk(index: chunk.index + 1, records: [])
        filling.records.reserveCapacity(Self.chunkSize)
        return chunk
    }

    /// Queues a chunk for the other workers; false when enough are queued (the reader restores it itself).
    func offer(_ chunk: Chunk) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard threads > 1, queue.count < 2 * threads else { return false }
        queue.append(chunk)
        condition.signal()
        return true
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// The next queued chunk, or nil once the reader is done and the queue is empty.
    func take() -> Chunk? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !closed { condition.wait() }
        return queue.isEmpty ? nil : queue.removeFirst()
    }

    func finished(_ index: Int, _ result: Done) {
        condition.lock()
        done[index] = result
        condition.unlock()
    }

    /// Every chunk's result, in journal order (last record first).
    func results() -> [Done] { done.sorted { $0.key < $1.key }.map(\.value) }
}
