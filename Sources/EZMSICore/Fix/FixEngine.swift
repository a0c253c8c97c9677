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
    /// Entries ezmsi refuses to change (set-uid/set-gid files, hard-linked files, devices, FIFOs, sockets): `path: why`.
    var refused = Sample()
    /// Entries that were not the judged object any more when the change was due (renamed, exchanged, replaced,
    /// changed, or on another mount): skipped.
    var replaced = Sample()
    /// State records journaled.
    var journaled = 0
    var batches = 0
    /// The audit of the folder after the fix, predicted by this walk (`FixContext.predictAfter`).
    var after: TreeAudit?

    mutating func merge(_ o: FixStats) {
        if let a = o.after {
            if after == nil { after = a } else { after!.merge(a) }
        }
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
        refused.merge(o.refused)
        replaced.merge(o.replaced)
        journaled += o.journaled
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
    /// The root's mount id: no entry on another mount (bind mounts of the same file system included) is changed.
    let rootMountID: UInt64
    /// "You" for the privilege count (SUDO_UID under sudo, else the effective uid).
    let you: UInt32
    /// The invoking process when it is not root: a directory it cannot list gets its change before the walker
    /// enters it (the walker runs with these credentials).
    let invoker: ContainerIdentity?
    let batchLimit: Int
    let maxDirectoriesPerBatch: Int
    /// Whether an unchanged change time proves the ACLs judged are still there (`ObjectAccess.changeTimeProvesUnchanged`);
    /// otherwise they are read again through each verified descriptor.
    let changeTimeProves: Bool
    /// Also audit the folder as the fix leaves it, in the same walk (the audit options the doctor uses), so the
    /// report after a fix needs no second walk. Used only when every change landed (`FolderFixer.apply`).
    var predictAfter: (root: String, identity: ContainerIdentity, options: TreeAuditOptions)?
    let aborted = Atomic<Bool>(false)
    private let lock = NSLock()
    private(set) var error: Error?
    private var batchCount = 0
    /// Journal ids of directories (0 is the root).
    private let directoryIDs = Atomic<UInt64>(0)

    init(kind: FixPlanKind, identity: ContainerIdentity, rules: RequirementRules, journal: JournalWriter?, rootFD: Int32,
         rootDev: UInt64, rootIno: UInt64, rootMountID: UInt64, batchLimit: Int) {
        self.rootMountID = rootMountID
        self.kind = kind
        decider = FixDecider(kind: kind, identity: identity)
        self.rules = rules
        self.journal = journal
        self.rootFD = rootFD
        self.rootDev = rootDev
        self.rootIno = rootIno
        self.batchLimit = max(1, batchLimit)
        maxDirectoriesPerBatch = 64
        changeTimeProves = ObjectAccess.changeTimeProvesUnchanged(rootFD) && !ObjectAccess.changeTimeRoute.off
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

    func nextDirectoryID() -> UInt64 { directoryIDs.add(1, ordering: .relaxed).newValue }

    private let batchIDs = Atomic<UInt64>(0)
    func nextBatchID() -> UInt64 { batchIDs.add(1, ordering: .relaxed).newValue }
}

/// The pending changes of one batch. Each batch is journaled (one fsync) before any of its changes is made, and each
/// change is made through a descriptor of the object that was judged (see `ObjectAccess`).
/// Holds duplicated descriptors of the directories the entries are in (at most `maxDirectoriesPerBatch`).
final class FixBatch {
    struct Op {
        /// Index in `directories`; -1 = the root itself.
        var slot: Int32
        /// The relative path (NUL-terminated) in `paths`; the name is its last component.
        var pathStart: Int32
        var nameOffset: Int32
        /// Journal id of the directory that contains the entry (nil for the root).
        var parent: UInt64?
        /// What the walk judged: identity and security attributes.
        var judged: ObjectAccess.Identity
        /// The access and default ACL bytes judged (ranges in `bytes`; nil: none).
        var access: Range<Int>?
        var defaultACL: Range<Int>?
        var change: EntryChange
    }

    var ops: [Op] = []
    var paths: [CChar] = []
    var bytes: [UInt8] = []
    var directories: [Int32] = []
    /// The journal id of the directory of the last slot.
    var lastParentToken: UInt64?

    deinit { reset() }

    func reset() {
        closeDirectories()
        ops.removeAll(keepingCapacity: true)
        paths.removeAll(keepingCapacity: true)
        bytes.removeAll(keepingCapacity: true)
        lastParentToken = nil
    }

    /// The directories are needed only to open the entries.
    func closeDirectories() {
        for fd in directories { close(fd) }
        directories.removeAll(keepingCapacity: true)
    }

    func range(_ raw: UnsafeRawBufferPointer?) -> Range<Int>? {
        guard let raw else { return nil }
        let start = bytes.count
        bytes.append(contentsOf: raw)
        return start..<bytes.count
    }

    func matches(_ read: XattrRead, _ judged: Range<Int>?) -> Bool { read.holds(judged.map { bytes[$0] }) }
}

/// The walk of plan and apply, one per worker. A class: the walker calls it through generics, and copies of a struct
/// this size retained each of its references once per entry.
final class FixVisitor: TreeVisitor {
    let ctx: FixContext
    var stats = FixStats()
    /// The batch being filled by the walk.
    private var batch = FixBatch()
    /// The batch journaled last, whose changes wait for its fsync (which runs while the walk fills the next one),
    /// with its verified objects and its journal ticket; and a batch to fill next.
    private var inFlight: (batch: FixBatch, objects: [VerifiedObject?], ticket: UInt64)?
    private var spare = FixBatch()
    private var accessCache = ACLDecodeCache()
    private var defaultCache = ACLDecodeCache()
    /// The journal id given to the directory visited last (handed to the walker by `token(forDirectory:)`).
    private var lastDirectoryID: UInt64 = 0
    /// The audit after the fix, judged in this walk (`FixContext.predictAfter`).
    private var after: TreeAuditor?
    /// The state the entry being visited is left in, when it changes.
    private var leftAs: TreeAuditor.State?
    private var lastFileDecision: (input: DecisionInput, change: EntryChange?)?
    private var lastDirectoryDecision: (input: DecisionInput, change: EntryChange?)?
    private var lastAccessBytes: (acl: FileACL, bytes: [UInt8])?
    private var lastDefaultBytes: (acl: FileACL, bytes: [UInt8])?

    init(ctx: FixContext) {
        self.ctx = ctx
        if let p = ctx.predictAfter {
            after = TreeAuditor(identity: p.identity, requirements: ctx.rules.requirements, options: p.options, root: p.root)
        }
    }

    func skipped(path: String, reason: TreeSkipReason) {
        after?.skipped(path: path, reason: reason)
        switch reason {
        case .otherFilesystem: stats.otherFilesystems.add(path)
        default: stats.unscannable.add("\(path): \(reason)")
        }
    }

    /// A directory the walk enters: its journal record (identity, parent, name) is written now, before any of its
    /// entries is changed; the batch fsync that precedes those changes makes it durable with them.
    func token(forDirectory entry: TreeEntry) -> UInt64 {
        if entry.depth == 0 { return 0 }
        guard let journal = ctx.journal else { return 0 }
        let id = lastDirectoryID
        var line = JSONLine()
        line.raw("{\"dir\":")
        line.number(id)
        line.raw(",\"in\":")
        line.number(entry.parentToken)
        Self.nameField(&line, entry.name)
        line.raw(",\"dev\":")
        line.number(entry.identity.dev)
        line.raw(",\"ino\":")
        line.number(entry.identity.ino)
        line.raw(",\"btime\":")
        if let b = entry.identity.btime { line.number(b) } else { line.raw("null") }
        line.raw("}")
        line.newline()
        do { try journal.appendBeforeRecords(line.bytes) } catch { ctx.fail(error) }
        return id
    }

    static func nameField(_ line: inout JSONLine, _ name: UnsafePointer<CChar>) {
        line.pathField(UnsafeRawBufferPointer(start: name, count: strlen(name)), key: ",\"name\":", hexKey: ",\"nameHex\":")
    }

    private func decode(_ raw: UnsafeRawBufferPointer, isDefault: Bool) -> FileACL? {
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

    func visit(_ entry: TreeEntry) -> TreeVisitAction {
        leftAs = nil
        let action = judgeAndQueue(entry)
        guard after != nil else { return action }
        // The audit's context adds one bit to the subtree (below a denied directory).
        let judged = after!.visit(entry, as: leftAs)
        if case .descend(let c) = action, case .descend(let a) = judged {
            return .descend(context: c | (a & TreeAuditor.belowDenied))
        }
        return action
    }

    private func judgeAndQueue(_ entry: TreeEntry) -> TreeVisitAction {
        if ctx.aborted.load(ordering: .relaxed) { return .stop }
        let kind = entry.kind
        switch kind {
        case .symlink:
            stats.symlinks += 1
            return .skipChildren
        case .other:
            stats.others += 1
            stats.refused.add("\(entry.relativePath): a device, FIFO or socket; ezmsi never changes one")
            return .skipChildren
        case .directory:
            stats.directories += 1
            if entry.depth > 0 { lastDirectoryID = ctx.nextDirectoryID() }
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
        let selection = ctx.rules.select(kind: kind, depth: entry.depth, name: entry.name,
                                         context: entry.context & ~TreeAuditor.belowDenied)
        let isDirectory = kind == .directory
        if !isDirectory && selection.ops.isEmpty { return .descend(context: selection.childContext) }

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

        guard var change = decide(DecisionInput(isDirectory: isDirectory, uid: st.st_uid, gid: st.st_gid,
                                                mode: st.st_mode, access: access, defaultACL: defaultACL,
                                                ops: selection.ops, defaultBits: selection.defaultBits)) else {
            return .descend(context: selection.childContext)
        }
        // Create no privilege: a set-uid/set-gid file is never changed (a chmod could keep the bit on a file someone
        // else now controls, a chown could hand it over), nor a file with more than one name (another name can be
        // outside the folder; protected_hardlinks does not stop links to one's own files or to files one may write).
        if !isDirectory {
            // The hints name the file as a shell word ($'…' for control characters): they run as printed.
            if st.st_mode & UInt32(S_ISUID | S_ISGID) != 0 {
                let file = ShellWords.quote(entry.absolutePath)
                stats.refused.add("\(entry.relativePath): set-uid/set-gid file; ezmsi never changes one (if the container "
                    + "must read it, clear the bits first: chmod u-s,g-s -- \(file))")
                return .descend(context: selection.childContext)
            }
            if st.st_nlink > 1 {
                let file = ShellWords.quote(entry.absolutePath), copy = ShellWords.quote(entry.absolutePath + ".new")
                stats.refused.add("\(entry.relativePath): \(st.st_nlink) hard links; another link may be outside the "
                    + "folder, so ezmsi does not change it (find them: find \"$(stat -c %m -- \(file))\" -xdev -samefile \(file); "
                    + "if all are yours, give it its own inode: cp -p -- \(file) \(copy) && mv -- \(copy) \(file))")
                return .descend(context: selection.childContext)
            }
            if let m = change.mode { change.mode = m & ~UInt32(S_ISUID | S_ISGID) }
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

        if after != nil {
            // The acl plan read the directory's default ACL above; otherwise it is unknown yet (read for the root).
            leftAs = Self.stateAfter(change, entry: entry, access: access,
                                     knownDefault: ctx.decider.wantsDefaults ? .some(defaultACL) : nil)
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
        if let accessBytes {
            accessBytes.withUnsafeBytes { enqueue(entry, change, access: $0, defaultRead: defaultRead) }
        } else {
            enqueue(entry, change, access: entry.rawAccessACL, defaultRead: defaultRead)
        }
        if urgent {
            flush(waitForChanges: true)
        } else if batch.ops.count >= ctx.batchLimit {
            flush()
        }
        return ctx.aborted.load(ordering: .relaxed) ? .stop : .descend(context: selection.childContext)
    }

    /// What the decider is asked about one entry.
    struct DecisionInput: Equatable {
        var isDirectory: Bool
        var uid: UInt32, gid: UInt32, mode: UInt32
        var access: FileACL?, defaultACL: FileACL?
        var ops: [AccessOperation]
        var defaultBits: Perm
    }

    /// The decider's answer, remembered for the last input of each kind: the entries of a tree mostly share owner,
    /// mode and ACL, so the change (and the ACL it builds) is worked out once per run of equal inputs.
    private func decide(_ input: DecisionInput) -> EntryChange? {
        if let last = input.isDirectory ? lastDirectoryDecision : lastFileDecision, last.input == input {
            return last.change
        }
        let change = ctx.decider.decide(isDirectory: input.isDirectory, uid: input.uid, gid: input.gid, mode: input.mode,
                                        access: input.access, defaultACL: input.defaultACL, ops: input.ops,
                                        defaultBits: input.defaultBits)
        if input.isDirectory { lastDirectoryDecision = (input, change) } else { lastFileDecision = (input, change) }
        return change
    }

    /// The extended attribute bytes of `acl`, remembered for the last ACL written of each kind (see `decide`); nil
    /// when libacl's `acl_valid` refuses it (then nothing is written).
    private func encoded(_ acl: FileACL, isDefault: Bool) -> [UInt8]? {
        if let last = isDefault ? lastDefaultBytes : lastAccessBytes, last.acl == acl { return last.bytes }
        guard let bytes = Self.validatedXattr(acl) else { return nil }
        if isDefault { lastDefaultBytes = (acl, bytes) } else { lastAccessBytes = (acl, bytes) }
        return bytes
    }

    /// `acl` as the xattr bytes to write, once libacl's `acl_valid` accepts it (the kernel's rules, checked by the
    /// library the users' own tools use); nil otherwise. The raw codec stays on the hot path: this runs once per
    /// distinct ACL (`encoded` remembers the last one).
    static func validatedXattr(_ acl: FileACL) -> [UInt8]? {
        acl.libaclValid ? acl.xattr : nil
    }

    /// What the entry's attributes will be once `change` is made, as the kernel makes it: chown keeps the mode of a
    /// directory (set-uid/set-gid files are never changed), writing the access ACL sets the mode's permission bits
    /// from it, and chmod of an entry with an ACL rewrites its owner, mask (or group) and other entries.
    static func stateAfter(_ change: EntryChange, entry: TreeEntry, access: FileACL?,
                           knownDefault: FileACL??) -> TreeAuditor.State {
        var uid = entry.stat.st_uid, gid = entry.stat.st_gid, mode = entry.stat.st_mode
        var acl = access
        if let o = change.owner { uid = o.uid; gid = o.gid }
        if let a = change.access {
            acl = a
            mode = a.mode(keeping: mode)
        }
        if let m = change.mode {
            mode = (mode & UInt32(S_IFMT)) | m
            if var a = acl {
                a.set(.userObj, Perm(mode: mode, shift: 6))
                a.set(a.mask == nil ? .groupObj : .mask, Perm(mode: mode, shift: 3))
                a.set(.other, Perm(mode: mode, shift: 0))
                acl = a
            }
        }
        var rootDefault: FileACL?
        if entry.depth == 0 {
            if let d = change.defaultACL {
                rootDefault = d
            } else if let known = knownDefault {
                rootDefault = known
            } else if let d = try? entry.defaultACL() {
                rootDefault = d
            }
        }
        return TreeAuditor.State(inode: InodeSecurity(uid: uid, gid: gid, mode: mode, acl: acl), defaultACL: rootDefault)
    }

    private func count(_ change: EntryChange, isDirectory: Bool) {
        if isDirectory { stats.changedDirectories += 1 } else { stats.changedFiles += 1 }
        if change.owner != nil { stats.chowns += 1 }
        if change.mode != nil && ctx.kind == .acl { stats.ownerModeChanges += 1 }
        if change.mode != nil && ctx.kind == .chown && change.owner == nil { stats.ownerModeChanges += 1 }
        if change.access != nil { stats.aclGrants += 1 }
        if change.defaultACL != nil { stats.defaultACLs += 1 }
    }

    /// Queues the change with what was judged (identity, ACL bytes).
    private func enqueue(_ entry: TreeEntry, _ change: EntryChange, access: UnsafeRawBufferPointer?,
                                  defaultRead: XattrRead) {
        // The directory slot.
        var slot: Int32 = -1
        if entry.depth > 0 {
            if batch.lastParentToken != entry.parentToken || batch.directories.isEmpty {
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
                batch.lastParentToken = entry.parentToken
            }
            slot = Int32(batch.directories.count - 1)
        }
        // The relative path for messages, NUL-terminated, and where its name starts. Deep paths keep their last 240
        // bytes after "…/" (a batch of a 30,000-level tree must not hold gigabytes of paths).
        let pathStart = Int32(batch.paths.count)
        let relStart = entry.rootLength + 1
        let relLength = entry.depth == 0 ? 0 : entry.pathLength - relStart
        let nameLength = entry.depth == 0 ? 0 : strlen(entry.name)
        if entry.depth == 0 {
            batch.paths.append(0x2E)  // "."
        } else if relLength > 256 {
            let keep = max(nameLength, 240)
            batch.paths.append(contentsOf: "…/".utf8CString.dropLast())
            batch.paths.append(contentsOf: UnsafeBufferPointer(start: entry.path + entry.pathLength - keep, count: keep))
        } else {
            batch.paths.append(contentsOf: UnsafeBufferPointer(start: entry.path + relStart, count: relLength))
        }
        batch.paths.append(0)
        let nameOffset = entry.depth == 0 ? 0 : Int32(batch.paths.count - 1 - Int(pathStart) - nameLength)
        var defaultRange: Range<Int>?
        if case .value(let b) = defaultRead { defaultRange = b.withUnsafeBytes { batch.range($0) } }
        var judged = entry.identity
        judged.mountID = ctx.rootMountID
        batch.ops.append(FixBatch.Op(slot: slot, pathStart: pathStart, nameOffset: nameOffset,
                                     parent: entry.depth == 0 ? nil : entry.parentToken, judged: judged,
                                     access: batch.range(access), defaultACL: defaultRange, change: change))
    }

    /// Journals the batch being filled and makes the changes of the batch journaled before it, whose fsync ran
    /// meanwhile; `waitForChanges`: also this batch's changes, now (a directory the walker must enter, the end).
    func flush(waitForChanges: Bool = false) {
        let previous = inFlight
        inFlight = nil
        if !batch.ops.isEmpty, ctx.journal != nil { stage() }
        apply(previous)
        if waitForChanges { applyInFlight() }
    }

    /// Opens and verifies every entry of the batch and journals each one's identity and state (one write), then starts
    /// its fsync and leaves it in flight. Its changes wait for that fsync (`applyInFlight`).
    private func stage() {
        guard let journal = ctx.journal else { return }
        FolderFixer.testHookBeforeVerify?()
        var objects = [VerifiedObject?](repeating: nil, count: batch.ops.count)
        var line = JSONLine(capacity: 1 << 16)
        batch.paths.withUnsafeBufferPointer { paths in
            for (k, op) in batch.ops.enumerated() {
                let path = paths.baseAddress! + Int(op.pathStart)
                let name = path + Int(op.nameOffset)
                let opened: Result<VerifiedObject, VerifiedObject.Refusal>
                if op.slot < 0 {
                    let dup = fcntl(ctx.rootFD, F_DUPFD_CLOEXEC, 0)
                    opened = dup < 0 ? .failure(.gone(errno)) : VerifiedObject.verify(pathFD: dup, judged: op.judged, mountID: ctx.rootMountID)
                } else {
                    opened = VerifiedObject.open(batch.directories[Int(op.slot)], name, judged: op.judged, mountID: ctx.rootMountID)
                }
                let object: VerifiedObject
                switch opened {
                case .success(let o): object = o
                case .failure(let why):
                    stats.replaced.add(String(cString: path) + ": " + Self.describe(why))
                    continue
                }
                // The ACLs judged are still the ones there. An unchanged change time proves it where timestamps are
                // multigrain (any setxattr, chmod, chown, link or rename moves it to a later one; nobody but root can
                // set it back), so the ACLs are read again only when it moved (e.g. the instrument wrote into the
                // file meanwhile), and always elsewhere.
                let unchanged = ctx.changeTimeProves && object.identity.ctimeSec == op.judged.ctimeSec
                    && object.identity.ctimeNsec == op.judged.ctimeNsec
                if !unchanged && (!batch.matches(object.getXattr(Xattr.accessName), op.access)
                    || (op.judged.isDirectory && !batch.matches(object.getXattr(Xattr.defaultName), op.defaultACL))) {
                    object.close()
                    stats.replaced.add(String(cString: path) + ": " + Self.describe(.replaced))
                    continue
                }
                objects[k] = object
                stats.journaled += 1
                ObjectAccess.withFileHandle(object.pathFD) { record(&line, op, name: op.slot < 0 ? nil : name, handle: $0) }
            }
        }
        batch.closeDirectories()
        var ticket: UInt64 = 0
        if !line.bytes.isEmpty {
            // The batch's records end with a marker in the same write: a record without its marker after it was
            // never acted on (a kill during the write), and `undo` can tell a cut from a kill.
            line.raw("{\"batch\":")
            line.number(ctx.nextBatchID())
            line.raw(",\"records\":")
            line.number(objects.reduce(0) { $0 + ($1 == nil ? 0 : 1) })
            line.raw("}")
            line.newline()
            do {
                ticket = try journal.write(line.bytes)
            } catch {
                ctx.fail(error)
                for o in objects { o?.close() }
                batch.reset()
                return
            }
        }
        inFlight = (batch, objects, ticket)
        swap(&batch, &spare)
    }

    private func applyInFlight() {
        let batch = inFlight
        inFlight = nil
        apply(batch)
    }

    /// Makes the changes of a journaled batch once its records are durable, each through its verified descriptor.
    private func apply(_ journaled: (batch: FixBatch, objects: [VerifiedObject?], ticket: UInt64)?) {
        guard let (done, objects, ticket) = journaled else { return }
        defer {
            for o in objects { o?.close() }
            done.reset()
        }
        if ctx.aborted.load(ordering: .relaxed) { return }
        if ticket > 0 {
            do { try ctx.journal?.waitDurable(ticket) } catch {
                ctx.fail(error)
                return
            }
        }
        done.paths.withUnsafeBufferPointer { paths in
            for (k, op) in done.ops.enumerated() {
                guard let object = objects[k] else { continue }
                if ctx.aborted.load(ordering: .relaxed) { break }
                if let hook = FolderFixer.testHookBeforeChange {
                    do { try hook(ctx.nextChange()) } catch {
                        ctx.fail(error)
                        break
                    }
                }
                // No second check here: the descriptor is the object verified above, and what could change its state
                // since (its owner's chmod or setfacl) is the owner's to make.
                if let failure = apply(op.change, to: object) {
                    stats.failures.add(String(cString: paths.baseAddress! + Int(op.pathStart)) + ": " + failure)
                } else {
                    count(op.change, isDirectory: op.judged.isDirectory)
                }
            }
        }
        stats.batches += 1
        if ctx.aborted.load(ordering: .relaxed) { return }
        let n = ctx.nextBatch()
        if let hook = FolderFixer.testHookAfterBatch {
            do { try hook(n) } catch { ctx.fail(error) }
        }
    }

    static func describe(_ why: VerifiedObject.Refusal) -> String {
        switch why {
        case .gone(let e): return "gone during the fix (" + String(cString: strerror(e)) + "); not changed"
        case .otherMount: return "on another mount; not changed"
        case .replaced: return "replaced or changed during the fix; not changed (run ezmsi fix again)"
        case .notFileOrDirectory: return "not a directory or regular file any more; not changed"
        }
    }

    /// One journal record: where the object is (parent directory record + name), what identifies it, and its state
    /// before the change.
    private func record(_ j: inout JSONLine, _ op: FixBatch.Op, name: UnsafePointer<CChar>?,
                        handle: (type: Int32, bytes: UnsafeRawBufferPointer)?) {
        let id = op.judged
        j.raw("{\"in\":")
        if let parent = op.parent { j.number(parent) } else { j.raw("null") }
        if let name { Self.nameField(&j, name) } else { j.raw(",\"name\":\".\"") }
        j.raw(id.isDirectory ? ",\"type\":\"d\",\"dev\":" : ",\"type\":\"f\",\"dev\":")
        j.number(id.dev)
        j.raw(",\"ino\":")
        j.number(id.ino)
        j.raw(",\"btime\":")
        if let b = id.btime { j.number(b) } else { j.raw("null") }
        j.raw(",\"handle\":")
        if let h = handle { j.handle(type: h.type, bytes: h.bytes) } else { j.raw("null") }
        j.raw(",\"mode\":")
        j.number(id.mode & 0o7777)
        j.raw(",\"uid\":")
        j.number(id.uid)
        j.raw(",\"gid\":")
        j.number(id.gid)
        j.raw(",\"acl\":")
        if let r = op.access { batch.bytes[r].withUnsafeBytes { j.hex($0) } } else { j.raw("null") }
        j.raw(",\"defaultAcl\":")
        if let r = op.defaultACL { batch.bytes[r].withUnsafeBytes { j.hex($0) } } else { j.raw("null") }
        j.raw("}")
        j.newline()
    }

    /// One entry's changes, through its verified descriptor: owner, access ACL, mode, default ACL. nil, or what failed.
    private func apply(_ c: EntryChange, to h: VerifiedObject) -> String? {
        if let o = c.owner {
            let e = h.chown(o.uid, o.gid)
            if e != 0 { return "chown: " + String(cString: strerror(e)) }
        }
        if let a = c.access {
            guard let bytes = encoded(a, isDefault: false) else { return "set ACL: acl_valid refuses \(a.text)" }
            let e = bytes.withUnsafeBytes { h.setXattr(Xattr.accessName, $0) }
            if e != 0 { return "set ACL: " + String(cString: strerror(e)) }
        }
        if let m = c.mode {
            let e = h.chmod(m)
            if e != 0 { return "chmod: " + String(cString: strerror(e)) }
        }
        if let d = c.defaultACL {
            guard let bytes = encoded(d, isDefault: true) else { return "set default ACL: acl_valid refuses \(d.text)" }
            let e = bytes.withUnsafeBytes { h.setXattr(Xattr.defaultName, $0) }
            if e != 0 { return "set default ACL: " + String(cString: strerror(e)) }
        }
        return nil
    }

    /// The end of a worker: the last batch.
    func finish() {
        if !ctx.aborted.load(ordering: .relaxed) {
            flush(waitForChanges: true)
        } else {
            batch.reset()
            applyInFlight()  // aborted: closes its descriptors, changes nothing
        }
        stats.after = after?.audit
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
