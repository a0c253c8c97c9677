import Foundation
import Glibc
import Synchronization

/// Counts of one walk (per worker, merged at the end).
struct FixStats {
    var directories = 0
    var files = 0
    var symlinks = 0
    var others = 0
    /// Entries that change (plan) / changed (apply).
    var changedDirectories = 0
    var changedFiles = 0
    var ownerModeChanges = 0
    var aclGrants = 0
    var defaultACLs = 0
    var chowns = 0
    /// Entries to change that the invoking user does not own (need privilege).
    var notOwned = 0
    /// Entries that would change but the decision could not make usable (reported; never expected).
    var stillDenied = Sample()
    var unscannable = Sample()
    var otherFilesystems = Sample()
    var failures = Sample()
    var batches = 0

    mutating func merge(_ o: FixStats) {
        directories += o.directories
        files += o.files
        symlinks += o.symlinks
        others += o.others
        changedDirectories += o.changedDirectories
        changedFiles += o.changedFiles
        ownerModeChanges += o.ownerModeChanges
        aclGrants += o.aclGrants
        defaultACLs += o.defaultACLs
        chowns += o.chowns
        notOwned += o.notOwned
        stillDenied.merge(o.stillDenied)
        unscannable.merge(o.unscannable)
        otherFilesystems.merge(o.otherFilesystems)
        failures.merge(o.failures)
        batches += o.batches
    }

    var changed: Int { changedDirectories + changedFiles }
}

/// What every worker of one plan/apply shares.
final class FixContext: @unchecked Sendable {
    let kind: FixPlanKind
    let decider: FixDecider
    let rules: RequirementRules
    /// nil: dry run (plan).
    let journal: JournalWriter?
    /// The root, opened by the fixer (O_RDONLY | O_DIRECTORY); the walker's root must be the same inode.
    let rootFD: Int32
    let rootDev: UInt64
    let rootIno: UInt64
    /// "You" for the privilege count (SUDO_UID under sudo, else the effective uid).
    let you: UInt32
    /// The invoking process when it is not root: a directory it cannot list gets its change before the walker
    /// enters it (the walker runs with these credentials).
    let invoker: ContainerIdentity?
    let batchLimit: Int
    let maxDirectoriesPerBatch: Int
    let aborted = Atomic<Bool>(false)
    private let lock = NSLock()
    private(set) var error: Error?
    private var batchCount = 0
    /// (dev, ino) of regular files with several links already decided on (a file reached twice changes once).
    private var hardlinks = Set<InodeKey>()

    struct InodeKey: Hashable {
        var dev: UInt64
        var ino: UInt64
        /// The bits wanted there (the same file linked where it needs more is decided again).
        var bits: UInt16
    }

    init(kind: FixPlanKind, identity: ContainerIdentity, rules: RequirementRules, journal: JournalWriter?, rootFD: Int32,
         rootDev: UInt64, rootIno: UInt64, batchLimit: Int) {
        self.kind = kind
        decider = FixDecider(kind: kind, identity: identity)
        self.rules = rules
        self.journal = journal
        self.rootFD = rootFD
        self.rootDev = rootDev
        self.rootIno = rootIno
        self.batchLimit = max(1, batchLimit)
        maxDirectoriesPerBatch = 64
        let euid = geteuid()
        if euid == 0, let sudo = ProcessInfo.processInfo.environment["SUDO_UID"], let u = UInt32(sudo) {
            you = u
        } else {
            you = euid
        }
        if euid != 0 {
            var groups = [gid_t](repeating: 0, count: 256)
            let n = getgroups(Int32(groups.count), &groups)
            invoker = ContainerIdentity(uid: euid, gid: getegid(), groups: n > 0 ? Array(groups[0..<Int(n)]) : [],
                                        bypassesDAC: false)
        } else {
            invoker = nil
        }
    }

    func fail(_ e: Error) {
        lock.lock()
        if error == nil { error = e }
        lock.unlock()
        aborted.store(true, ordering: .relaxed)
    }

    private var changeCount = 0

    func nextChange() -> Int {
        lock.lock()
        defer { lock.unlock() }
        changeCount += 1
        return changeCount
    }

    func nextBatch() -> Int {
        lock.lock()
        defer { lock.unlock() }
        batchCount += 1
        return batchCount
    }

    /// True the first time a multiply-linked file is seen (for these wanted bits).
    func firstVisit(dev: UInt64, ino: UInt64, bits: Perm) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return hardlinks.insert(InodeKey(dev: dev, ino: ino, bits: bits.rawValue)).inserted
    }
}

/// The pending changes of one batch: their journal lines (written and fsync'ed first), then the changes.
/// Holds duplicated descriptors of the directories the entries are in (at most `maxDirectoriesPerBatch`).
final class FixBatch {
    struct Op {
        /// Index in `directories`; -1 = the root itself (changed through the root descriptor).
        var slot: Int32
        /// The relative path (NUL-terminated) in `paths`; the name is its last component.
        var pathStart: Int32
        var nameOffset: Int32
        var ino: UInt64
        var isDirectory: Bool
        var change: EntryChange
    }

    var journal = JSONLine(capacity: 1 << 16)
    var ops: [Op] = []
    var paths: [CChar] = []
    var directories: [Int32] = []
    /// The parent directory (absolute path bytes) and descriptor of the last slot.
    var lastParentPath: [CChar] = []
    var lastParentFD: Int32 = -1

    deinit { reset() }

    func reset() {
        for fd in directories { close(fd) }
        directories.removeAll(keepingCapacity: true)
        ops.removeAll(keepingCapacity: true)
        paths.removeAll(keepingCapacity: true)
        journal.bytes.removeAll(keepingCapacity: true)
        lastParentPath.removeAll(keepingCapacity: true)
        lastParentFD = -1
    }
}

/// The walk of plan and apply. One per worker.
struct FixVisitor: TreeVisitor {
    let ctx: FixContext
    var stats = FixStats()
    let batch = FixBatch()
    private var accessCache = ACLDecodeCache()
    private var defaultCache = ACLDecodeCache()

    init(ctx: FixContext) { self.ctx = ctx }

    mutating func skipped(path: String, reason: TreeSkipReason) {
        switch reason {
        case .otherFilesystem: stats.otherFilesystems.add(path)
        default: stats.unscannable.add("\(path): \(reason)")
        }
    }

    private mutating func decode(_ raw: UnsafeRawBufferPointer, isDefault: Bool) -> FileACL? {
        isDefault ? defaultCache.decode(raw) : accessCache.decode(raw)
    }

    /// Reads an attribute of the entry (not following symlinks): the root through the fixer's descriptor.
    private func readAttribute(_ entry: TreeEntry, _ name: String) -> XattrRead {
        let bytes: [UInt8]?
        if entry.depth == 0 {
            return EntryHandle(fd: ctx.rootFD, isPath: false).getXattr(name)
        } else if entry.useGetxattrat {
            bytes = Xattr.read { Xattr.getAt(entry.parentFD, entry.name, name, $0, $1) }
        } else {
            bytes = Xattr.read { Xattr.lget(entry.path, name, $0, $1) }
        }
        return XattrRead(bytes, errno: errno)
    }

    mutating func visit(_ entry: TreeEntry) -> TreeVisitAction {
        if ctx.aborted.load(ordering: .relaxed) { return .stop }
        let kind = entry.kind
        switch kind {
        case .symlink:
            stats.symlinks += 1
            return .skipChildren
        case .other:
            stats.others += 1
            return .skipChildren
        case .directory:
            stats.directories += 1
        case .file:
            stats.files += 1
        }
        let st = entry.stat
        if entry.depth == 0 && (UInt64(st.st_dev) != ctx.rootDev || UInt64(st.st_ino) != ctx.rootIno) {
            ctx.fail(FixError.rootChanged(entry.absolutePath))
            return .stop
        }
        if let j = ctx.journal, UInt64(st.st_ino) == j.ino, UInt64(st.st_dev) == j.dev, j.ino != 0 {
            return .skipChildren  // the journal itself, when it is kept inside the tree
        }
        let selection = ctx.rules.select(kind: kind, depth: entry.depth, name: entry.name, context: entry.context)
        let isDirectory = kind == .directory
        if !isDirectory && selection.ops.isEmpty { return .descend(context: selection.childContext) }
        if !isDirectory && st.st_nlink > 1 && !ctx.firstVisit(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino),
                                                                          bits: RequirementRules.bits(selection.ops)) {
            return .descend(context: selection.childContext)
        }

        // The access ACL: the walker's read, or ours for the few files it did not read (download's log file).
        var accessBytes: [UInt8]? = nil
        var access: FileACL? = nil
        if let raw = entry.rawAccessACL {
            access = decode(raw, isDefault: false)
            if access == nil {
                stats.unscannable.add("\(entry.relativePath): undecodable access ACL")
                return .descend(context: selection.childContext)
            }
        } else if !isDirectory && !ctx.rules.walkerReadsFileACLs && entry.aclOrigin == .modeBits {
            switch readAttribute(entry, Xattr.accessName) {
            case .value(let b):
                accessBytes = b
                access = try? FileACL(xattr: b)
                if access == nil {
                    stats.unscannable.add("\(entry.relativePath): undecodable access ACL")
                    return .descend(context: selection.childContext)
                }
            case .absent, .unsupported:
                break
            case .failed(let e):
                stats.unscannable.add("\(entry.relativePath): cannot read the ACL: " + String(cString: strerror(e)))
                return .descend(context: selection.childContext)
            }
        }

        // The default ACL of a directory (acl plan: to decide; both plans: to journal).
        var defaultRead = XattrRead.absent
        var defaultACL: FileACL?
        if isDirectory && ctx.decider.wantsDefaults {
            defaultRead = readAttribute(entry, Xattr.defaultName)
            switch defaultRead {
            case .value(let b):
                defaultACL = b.withUnsafeBytes { decode($0, isDefault: true) }
                if defaultACL == nil {
                    stats.unscannable.add("\(entry.relativePath): undecodable default ACL")
                    return .descend(context: selection.childContext)
                }
            case .failed(let e):
                stats.unscannable.add("\(entry.relativePath): cannot read the default ACL: " + String(cString: strerror(e)))
                return .descend(context: selection.childContext)
            case .absent, .unsupported:
                break
            }
        }
        if ctx.kind == .acl && entry.depth == 0 && entry.aclOrigin == .unsupported {
            ctx.fail(FixError.aclsUnsupported(entry.absolutePath))
            return .stop
        }

        guard var change = ctx.decider.decide(isDirectory: isDirectory, uid: st.st_uid, gid: st.st_gid, mode: st.st_mode,
                                              access: access, defaultACL: defaultACL, ops: selection.ops,
                                              defaultBits: selection.defaultBits) else {
            return .descend(context: selection.childContext)
        }
        if change.stillDenied {
            stats.stillDenied.add(entry.relativePath)
        }
        if (change.access != nil || change.defaultACL != nil) && entry.aclOrigin == .unsupported {
            // No ACLs on this file system: only the owner-bit part can be done.
            change.access = nil
            change.defaultACL = nil
            if change.isEmpty {
                stats.failures.add("\(entry.relativePath): the file system does not support ACLs")
                return .descend(context: selection.childContext)
            }
        }

        // Count (plan) or queue (apply).
        if st.st_uid != ctx.you || change.owner != nil { stats.notOwned += 1 }
        guard ctx.journal != nil else {
            count(change, isDirectory: isDirectory)
            return .descend(context: selection.childContext)
        }
        if isDirectory && !ctx.decider.wantsDefaults {
            // The chown plan still journals the default ACL.
            defaultRead = readAttribute(entry, Xattr.defaultName)
            if case .failed(let e) = defaultRead {
                stats.unscannable.add("\(entry.relativePath): cannot read the default ACL: " + String(cString: strerror(e)))
                return .descend(context: selection.childContext)
            }
        }
        var urgent = false
        if let invoker = ctx.invoker, isDirectory {
            // The walker (running as `invoker`) will have to list this directory: change it first if that needs it.
            let before = InodeSecurity(uid: st.st_uid, gid: st.st_gid, mode: st.st_mode, acl: access)
            if !AccessEvaluator.evaluate(.listDirectory, identity: invoker, inode: before).allowed { urgent = true }
        }
        let accessRaw: UnsafeRawBufferPointer? = entry.rawAccessACL
        if let accessBytes {
            accessBytes.withUnsafeBytes { enqueue(entry, change, access: UnsafeRawBufferPointer($0), defaultRead: defaultRead) }
        } else {
            enqueue(entry, change, access: accessRaw, defaultRead: defaultRead)
        }
        if urgent || batch.ops.count >= ctx.batchLimit { flush() }
        return ctx.aborted.load(ordering: .relaxed) ? .stop : .descend(context: selection.childContext)
    }

    private mutating func count(_ change: EntryChange, isDirectory: Bool) {
        if isDirectory { stats.changedDirectories += 1 } else { stats.changedFiles += 1 }
        if change.owner != nil { stats.chowns += 1 }
        if change.mode != nil && ctx.kind == .acl { stats.ownerModeChanges += 1 }
        if change.mode != nil && ctx.kind == .chown && change.owner == nil { stats.ownerModeChanges += 1 }
        if change.access != nil { stats.aclGrants += 1 }
        if change.defaultACL != nil { stats.defaultACLs += 1 }
    }

    /// Journals the entry's current state into the batch and queues the change.
    private mutating func enqueue(_ entry: TreeEntry, _ change: EntryChange, access: UnsafeRawBufferPointer?,
                                  defaultRead: XattrRead) {
        let st = entry.stat
        let isDirectory = entry.kind == .directory
        // The directory slot.
        var slot: Int32 = -1
        if entry.depth > 0 {
            let nameLength = strlen(entry.name)
            let parentLength = entry.pathLength - nameLength - 1
            let sameParent = entry.parentFD == batch.lastParentFD && batch.lastParentPath.count == parentLength
                && batch.lastParentPath.withUnsafeBufferPointer { memcmp($0.baseAddress!, entry.path, parentLength) == 0 }
            if !sameParent || batch.directories.isEmpty {
                if batch.directories.count >= ctx.maxDirectoriesPerBatch {
                    flush()
                    if ctx.aborted.load(ordering: .relaxed) { return }
                }
                let dup = fcntl(entry.parentFD, F_DUPFD_CLOEXEC, 0)
                if dup < 0 {
                    stats.failures.add("\(entry.relativePath): cannot duplicate the directory descriptor: " + String(cString: strerror(errno)))
                    return
                }
                batch.directories.append(dup)
                batch.lastParentFD = entry.parentFD
                batch.lastParentPath = Array(UnsafeBufferPointer(start: entry.path, count: parentLength))
            }
            slot = Int32(batch.directories.count - 1)
        }
        // The relative path, NUL-terminated, and where its name starts.
        let pathStart = Int32(batch.paths.count)
        let relStart = entry.rootLength + 1
        let relLength = entry.depth == 0 ? 0 : entry.pathLength - relStart
        if entry.depth == 0 {
            batch.paths.append(0x2E)  // "."
        } else {
            batch.paths.append(contentsOf: UnsafeBufferPointer(start: entry.path + relStart, count: relLength))
        }
        batch.paths.append(0)
        let nameOffset = entry.depth == 0 ? 0 : Int32(relLength - strlen(entry.name))

        // The journal line.
        let j = batch
        j.journal.raw("{")
        if entry.depth == 0 {
            j.journal.raw("\"path\":\".\"")
        } else {
            j.journal.pathField(UnsafeRawBufferPointer(start: entry.path + relStart, count: relLength))
        }
        j.journal.raw(isDirectory ? ",\"type\":\"d\",\"dev\":" : ",\"type\":\"f\",\"dev\":")
        j.journal.number(UInt64(st.st_dev))
        j.journal.raw(",\"ino\":")
        j.journal.number(UInt64(st.st_ino))
        j.journal.raw(",\"mode\":")
        j.journal.number(st.st_mode & 0o7777)
        j.journal.raw(",\"uid\":")
        j.journal.number(st.st_uid)
        j.journal.raw(",\"gid\":")
        j.journal.number(st.st_gid)
        j.journal.raw(",\"acl\":")
        j.journal.hexOrNull(access)
        j.journal.raw(",\"defaultAcl\":")
        if case .value(let b) = defaultRead {
            b.withUnsafeBytes { j.journal.hex($0) }
        } else {
            j.journal.raw("null")
        }
        j.journal.raw("}")
        j.journal.newline()

        batch.ops.append(FixBatch.Op(slot: slot, pathStart: pathStart, nameOffset: nameOffset, ino: UInt64(st.st_ino),
                                     isDirectory: isDirectory, change: change))
    }

    /// Writes and syncs the batch's journal lines, then makes its changes.
    mutating func flush() {
        guard !batch.ops.isEmpty, let journal = ctx.journal else { return }
        do {
            try journal.append(batch.journal.bytes)
        } catch {
            ctx.fail(error)
            batch.reset()
            return
        }
        batch.paths.withUnsafeBufferPointer { paths in
            for op in batch.ops {
                if ctx.aborted.load(ordering: .relaxed) { break }
                if let hook = FolderFixer.testHookBeforeChange {
                    do { try hook(ctx.nextChange()) } catch {
                        ctx.fail(error)
                        break
                    }
                }
                let path = paths.baseAddress! + Int(op.pathStart)
                let name = path + Int(op.nameOffset)
                if let failure = apply(op, name: name) {
                    stats.failures.add(String(cString: path) + ": " + failure)
                } else {
                    count(op.change, isDirectory: op.isDirectory)
                }
            }
        }
        batch.reset()
        stats.batches += 1
        if ctx.aborted.load(ordering: .relaxed) { return }
        let n = ctx.nextBatch()
        if let hook = FolderFixer.testHookAfterBatch {
            do { try hook(n) } catch { ctx.fail(error) }
        }
    }

    /// One entry's changes: owner, access ACL, mode, default ACL. nil, or what failed.
    private func apply(_ op: FixBatch.Op, name: UnsafePointer<CChar>) -> String? {
        let c = op.change
        if op.slot < 0 {
            let h = EntryHandle(fd: ctx.rootFD, isPath: false)
            if let o = c.owner, h.chown(o.uid, o.gid) != 0 { return "chown: " + String(cString: strerror(errno)) }
            if let a = c.access {
                let e = a.xattr.withUnsafeBytes { h.setXattr(Xattr.accessName, $0) }
                if e != 0 { return "set ACL: " + String(cString: strerror(e)) }
            }
            if let m = c.mode {
                let e = h.chmod(m)
                if e != 0 { return "chmod: " + String(cString: strerror(e)) }
            }
            if let d = c.defaultACL {
                let e = d.xattr.withUnsafeBytes { h.setXattr(Xattr.defaultName, $0) }
                if e != 0 { return "set default ACL: " + String(cString: strerror(e)) }
            }
            return nil
        }
        let dirfd = batch.directories[Int(op.slot)]
        if let o = c.owner {
            let e = FixSys.chown(dirfd: dirfd, name: name, uid: o.uid, gid: o.gid)
            if e != 0 { return "chown: " + String(cString: strerror(e)) }
        }
        if let a = c.access {
            let e = a.xattr.withUnsafeBytes {
                FixSys.setXattr(dirfd: dirfd, name: name, attr: Xattr.accessName, value: $0, expectedIno: op.ino)
            }
            if e != 0 { return "set ACL: " + String(cString: strerror(e)) }
        }
        if let m = c.mode {
            let e = FixSys.chmod(dirfd: dirfd, name: name, mode: m, expectedIno: op.ino)
            if e != 0 { return "chmod: " + String(cString: strerror(e)) }
        }
        if let d = c.defaultACL {
            let e = d.xattr.withUnsafeBytes {
                FixSys.setXattr(dirfd: dirfd, name: name, attr: Xattr.defaultName, value: $0, expectedIno: op.ino)
            }
            if e != 0 { return "set default ACL: " + String(cString: strerror(e)) }
        }
        return nil
    }

    /// The end of a worker: the last batch.
    mutating func finish() {
        if !ctx.aborted.load(ordering: .relaxed) { flush() } else { batch.reset() }
    }
}

extension FixContext {
    /// Walks `root` with `threads` workers (the audit's work sharing) and returns the merged counts.
    func run(root: String, threads: Int) throws -> FixStats {
        let walkerOptions = TreeWalker.Options(oneFilesystem: true, maxOpenDirectories: 64,
                                               acls: rules.walkerReadsFileACLs ? .all : .directoriesOnly)
        if threads <= 1 {
            let walker = TreeWalker(root: root, options: walkerOptions)
            var visitor = FixVisitor(ctx: self)
            do {
                try walker.walk(&visitor)
            } catch {
                visitor.finish()
                throw error
            }
            visitor.finish()
            return visitor.stats
        }
        let perWorker = TreeWalker.Options(oneFilesystem: true, maxOpenDirectories: max(4, 64 / threads),
                                           acls: walkerOptions.acls)
        let pool = WorkPool(workers: threads)
        final class Results: @unchecked Sendable {
            private let lock = NSLock()
            private(set) var stats: [FixStats?]
            private(set) var error: Error?
            init(_ n: Int) { stats = Array(repeating: nil, count: n) }
            func set(_ k: Int, _ s: FixStats) { lock.lock(); stats[k] = s; lock.unlock() }
            func fail(_ e: Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }
        }
        let results = Results(threads)
        let work: @Sendable (Int) -> Void = { k in
            let walker = TreeWalker(root: root, options: perWorker)
            var visitor = FixVisitor(ctx: self)
            if k == 0 {
                do { try walker.walk(&visitor, pool: pool) } catch {
                    results.fail(error)
                    self.aborted.store(true, ordering: .relaxed)
                }
            }
            while let item = pool.take() {
                if self.aborted.load(ordering: .relaxed) {
                    close(item.parentFD)
                    continue
                }
                walker.walk(donated: item, &visitor, pool: pool)
            }
            visitor.finish()
            results.set(k, visitor.stats)
        }
        runOnThreads(threads, work)
        if let e = results.error { throw e }
        var total = FixStats()
        for s in results.stats { if let s { total.merge(s) } }
        return total
    }
}
