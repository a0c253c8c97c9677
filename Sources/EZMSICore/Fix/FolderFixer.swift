import Foundation
import Glibc

/// The two plans the fixer can apply (the third, running as the host user, changes nothing on disk).
public enum FixPlanKind: String, CaseIterable, Sendable, Codable {
    /// Grant the container's uid by ACL: a named entry where it is denied, a default entry on every directory so new
    /// files inherit it; ownership unchanged.
    case acl
    /// chown the denied entries to the container's uid:gid (and raise the owner bits where needed).
    case chown
}

/// What `apply` would do, counted exactly by a dry-run walk.
public struct FixPlan: Sendable, Codable {
    public var kind: FixPlanKind
    /// The host folder.
    public var root: String
    /// The container's HOST ids to grant.
    public var uid: UInt32
    public var gid: UInt32
    /// The folder is missing and will be created (mkdir 0755 as the invoking user).
    public var willCreateRoot: Bool
    /// Exact count from a dry-run walk.
    public var entriesToChange: Int
    public var directoriesToChange: Int
    public var filesToChange: Int
    /// e.g. "none: you own every entry to change" / "root (sudo): 12 entries belong to others".
    public var privilege: String
    /// Equivalent shell commands (setfacl/chown/chmod/mkdir), copy-pasteable. They are coarser than the native fix,
    /// which touches only the entries counted here and only ever adds rights.
    public var commands: [String]
    /// One sentence.
    public var tradeOff: String

    // Details of the count.
    /// Directories and regular files looked at (symlinks, FIFOs, devices are never changed).
    public var entriesScanned: Int = 0
    /// Entries whose owner bits are raised (the container's uid owns them: a named entry would not be consulted).
    public var ownerModeChanges: Int = 0
    /// Entries that get (or extend) the named entry `u:UID:…` with the mask raised by the granted bits.
    public var aclGrants: Int = 0
    /// Directories that get the default entry `d:u:UID:…` (new files and directories inherit it).
    public var defaultACLs: Int = 0
    /// Entries chowned (chown plan).
    public var chowns: Int = 0
    /// Entries to change that belong to someone else than you (they need root).
    public var notOwnedByYou: Int = 0
    /// Entries ezmsi could not read (not counted, not changed): `path: why`, the first few; and the total.
    public var unscannable: [String] = []
    public var unscannableCount: Int = 0
    /// Mount points inside the tree (never entered).
    public var otherFilesystems: [String] = []
    /// Entries ezmsi will not change (set-uid/set-gid files, hard-linked files, devices, FIFOs, sockets): `path: why`.
    public var refused: [String] = []
    public var refusedCount: Int = 0
}

public struct FixOutcome: Sendable, Codable {
    /// Entries changed.
    public var changed: Int
    /// The journal for `undo`; empty when nothing had to change (no journal is written then).
    public var journal: String
    public var durationMs: Double

    public var directoriesChanged: Int = 0
    public var filesChanged: Int = 0
    /// The fix created the (missing) root.
    public var createdRoot: Bool = false
    /// Entries whose change failed (`path: what: why`, the first few) and their number; they are journaled, so undo
    /// handles them like the others.
    public var failures: [String] = []
    public var failedCount: Int = 0
    /// Entries ezmsi could not read (not changed).
    public var unscannable: [String] = []
    public var unscannableCount: Int = 0
    /// Journal batches written (each fsync'ed before its changes).
    public var batches: Int = 0
    /// Entries ezmsi will not change (set-uid/set-gid files, hard-linked files, devices, FIFOs, sockets).
    public var refused: [String] = []
    public var refusedCount: Int = 0
    /// Entries that were not the judged object any more when their change was due: skipped, not changed.
    public var replaced: [String] = []
    public var replacedCount: Int = 0
}

public struct UndoOutcome: Sendable, Codable {
    /// Entries written back to their journaled state.
    public var restored: Int
    /// `path: why` for entries not restored because they are not the journaled object any more (replaced, gone,
    /// hard-linked since): left alone on purpose.
    public var skipped: [String]
    /// The fix had created the root and undo removed it again (only when empty).
    public var removedCreatedRoot: Bool

    /// Journaled entries that already were in their recorded state (e.g. a fix killed before changing them).
    public var alreadyOriginal: Int = 0
    /// The journal had been undone before: nothing was done.
    public var alreadyUndone: Bool = false
    public var durationMs: Double = 0
    /// `path: why` for entries that could not be restored (a write failed, out of descriptors…): the journal stays
    /// open and a retry restores them.
    public var left: [String] = []
    /// Dry run: nothing was written; `restored` counts what would be.
    public var dryRun: Bool = false
    /// The journal has no completion line: the fix was killed or stopped (or the journal was cut at a batch's end,
    /// which looks the same); what it recorded is restored.
    public var interrupted: Bool = false
    /// Identity tests the journal could not make (e.g. no birth time on this filesystem).
    public var untestable: [String] = []
    public var journal: String = ""
    public var root: String = ""
}

public enum FixError: Error, Equatable, Sendable, CustomStringConvertible {
    case notATree(FolderNeed)
    case parentMissing(String)
    case notADirectory(String)
    case cannotOpenRoot(String, Int32)
    case cannotCreateRoot(String, Int32)
    /// The root is not the directory the walk (or the journal) started from.
    case rootChanged(String)
    case rootMissing(String)
    case aclsUnsupported(String)
    case journal(String, Int32)
    case badJournal(String)
    /// The journal's file and line, and why it is refused (nothing was changed).
    case damagedJournal(String, Int, String)
    /// The state folder or journal could have been written by someone else.
    case untrustedState(String)
    /// `fix` never works on a system folder (the path, after resolving symlinks and `..`).
    case systemFolder(String, String)

    public var description: String {
        func err(_ e: Int32) -> String { String(cString: strerror(e)) }
        switch self {
        case .notATree(let n): return "folder need \(n.rawValue) is not a tree: nothing to fix recursively"
        case .parentMissing(let p): return "\(p) does not exist (the folder's parent must exist)"
        case .notADirectory(let p): return "\(p) is not a directory"
        case let .cannotOpenRoot(p, e): return "cannot open \(p): " + err(e)
        case let .cannotCreateRoot(p, e): return "cannot create \(p): " + err(e)
        case .rootChanged(let p): return "\(p) is not the directory the fix started from (replaced?)"
        case .rootMissing(let p): return "\(p) does not exist any more"
        case .aclsUnsupported(let p): return "the file system of \(p) does not support ACLs (use the chown plan)"
        case let .journal(what, e): return "journal: \(what)" + (e != 0 ? ": " + err(e) : "")
        case .badJournal(let why): return "not a usable fix journal: \(why)"
        case let .damagedJournal(path, line, why):
            return "\(path):\(line): \(why); the journal is refused and nothing was changed"
        case .untrustedState(let why): return "refused: \(why)"
        case let .systemFolder(path, why): return "refusing to change \(path): \(why)"
        }
    }
}

extension FixError {
    /// The fix or undo was refused before anything changed (exit 3): a system folder, an untrusted or damaged journal.
    public var isRefusal: Bool {
        switch self {
        case .systemFolder, .untrustedState, .damagedJournal, .badJournal: return true
        default: return false
        }
    }
}

/// A fix that stopped after its journal was created: undo it with that journal.
public struct FixStopped: Error, CustomStringConvertible {
    public var reason: String
    public var journal: String?
    public var description: String { reason }
}

/// One journal as `ezmsi undo --list` shows it.
public struct JournalSummary: Sendable, Codable {
    public enum State: String, Sendable, Codable {
        /// Complete, not undone.
        case open
        /// The fix did not finish (killed or stopped): undo restores what it recorded.
        case interrupted
        case undone
        /// Someone else could have written it, or it is damaged: undo refuses it.
        case refused
    }
    public var journal: String
    public var root: String
    public var startedAt: String
    public var records: Int
    public var state: State
    public var problem: String?
}

/// Tuning, mostly for tests and the benchmark.
public struct FixOptions: Sendable {
    /// Walkers working in parallel (as the audit).
    public var threads: Int
    /// Journal records per batch (each batch is fsync'ed before its changes are made).
    public var batchLimit: Int
    /// Audit the folder as the fix leaves it in the fix's own walk, with these options (`applyAndAudit`).
    public var auditAfter: TreeAuditOptions?

    /// 8192 records per batch: a 200,000-entry fix syncs its journal 25 times; the descriptor budget lowers it
    /// under a small `ulimit -n`.
    public init(threads: Int = TreeAuditOptions.defaultThreads, batchLimit: Int = 8192) {
        self.threads = max(1, threads)
        self.batchLimit = max(1, batchLimit)
    }
}

public enum FolderFixer {
    /// Test hook: called after each applied batch with the number of batches applied so far (all workers); throwing
    /// aborts the fix there, as a kill would (the journal is left without its completion line).
    nonisolated(unsafe) public static var testHookAfterBatch: ((Int) throws -> Void)?
    /// Test hook: called before each single change (its ordinal, from 1, over all workers) once its batch is
    /// journaled; throwing aborts right there, in the middle of a batch.
    nonisolated(unsafe) public static var testHookBeforeChange: ((Int) throws -> Void)?
    /// Test hook: called when a batch is due, after its entries were judged and before they are opened and verified
    /// (where an attacker's rename would make a by-name change land on another object).
    nonisolated(unsafe) public static var testHookBeforeVerify: (() -> Void)?

    // MARK: Plan

    /// Dry run: walks the tree, counts exactly what apply would change. No writes.
    public static func plan(kind: FixPlanKind, root: String, identity: ContainerIdentity, need: FolderNeed) throws -> FixPlan {
        try plan(kind: kind, root: root, identity: identity, need: need, options: FixOptions())
    }

    public static func plan(kind: FixPlanKind, root: String, identity: ContainerIdentity, need: FolderNeed,
                            options: FixOptions) throws -> FixPlan {
        guard let requirements = TreeRequirements.forNeed(need) else { throw FixError.notATree(need) }
        let rules = RequirementRules(requirements)
        let absRoot = absolute(root)
        if let r = SystemFolders.refusal(for: absRoot) { throw FixError.systemFolder(absRoot, r.why) }
        var st = stat()
        var stats = FixStats()
        var willCreate = false
        var parentWritable = true
        if stat(absRoot, &st) != 0 {
            guard errno == ENOENT else { throw FixError.cannotOpenRoot(absRoot, errno) }
            let parent = parentOf(absRoot)
            var pst = stat()
            guard stat(parent, &pst) == 0, (pst.st_mode & S_IFMT) == S_IFDIR else { throw FixError.parentMissing(parent) }
            willCreate = true
            parentWritable = faccessat(AT_FDCWD, parent, W_OK | X_OK, AT_EACCESS) == 0
            stats = simulateCreatedRoot(parent: parent, parentStat: pst, kind: kind, identity: identity, rules: rules)
        } else {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw FixError.notADirectory(absRoot) }
            let rootFD = open(absRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard rootFD >= 0 else { throw FixError.cannotOpenRoot(absRoot, errno) }
            defer { close(rootFD) }
            guard fstat(rootFD, &st) == 0 else { throw FixError.cannotOpenRoot(absRoot, errno) }
            let ctx = FixContext(kind: kind, identity: identity, rules: rules, journal: nil, rootFD: rootFD,
                                 rootDev: UInt64(st.st_dev), rootIno: UInt64(st.st_ino),
                                 rootMountID: ObjectAccess.identity(of: rootFD)?.mountID ?? 0, batchLimit: options.batchLimit)
            stats = try walk(ctx, root: absRoot, threads: options.threads)
        }
        var plan = FixPlan(kind: kind, root: absRoot, uid: identity.uid, gid: identity.gid, willCreateRoot: willCreate,
                           entriesToChange: stats.changed, directoriesToChange: stats.changedDirectories,
                           filesToChange: stats.changedFiles, privilege: "", commands: [], tradeOff: "")
        plan.entriesScanned = stats.directories + stats.files
        plan.ownerModeChanges = stats.ownerModeChanges
        plan.aclGrants = stats.aclGrants
        plan.defaultACLs = stats.defaultACLs
        plan.chowns = stats.chowns
        plan.notOwnedByYou = stats.notOwned
        plan.unscannable = stats.unscannable.examples
        plan.unscannableCount = stats.unscannable.count
        plan.otherFilesystems = stats.otherFilesystems.examples
        plan.refused = stats.refused.examples
        plan.refusedCount = stats.refused.count
        plan.privilege = privilege(kind: kind, stats: stats, willCreate: willCreate, parentWritable: parentWritable,
                                   root: absRoot)
        plan.commands = commands(kind: kind, root: absRoot, identity: identity, requirements: requirements,
                                 willCreate: willCreate, ownerModeChanges: stats.ownerModeChanges)
        plan.tradeOff = tradeOff(kind: kind, identity: identity, count: stats.changed)
        return plan
    }

    // MARK: Apply

    /// Applies natively (descriptor-based, never shelling out), journaling every entry's previous owner, mode, access
    /// ACL and default ACL BEFORE changing it.
    public static func apply(kind: FixPlanKind, root: String, identity: ContainerIdentity, need: FolderNeed,
                             journalDirectory: String) throws -> FixOutcome {
        try apply(kind: kind, root: root, identity: identity, need: need, journalDirectory: journalDirectory,
                  options: FixOptions())
    }

    public static func apply(kind: FixPlanKind, root: String, identity: ContainerIdentity, need: FolderNeed,
                             journalDirectory: String, options: FixOptions) throws -> FixOutcome {
        try applyAndAudit(kind: kind, root: root, identity: identity, need: need, journalDirectory: journalDirectory,
                          options: options).outcome
    }

    /// `apply`, and with `options.auditAfter` the audit of the folder as the fix left it, judged in the fix's own walk
    /// from each entry's state and the change made to it (what a second walk would read, without the walk). nil
    /// unless every change landed: when anything was replaced, failed, could not be read or stays denied, or when
    /// the walk does not read every file's ACL (the download plan), only a real audit can tell.
    public static func applyAndAudit(kind: FixPlanKind, root: String, identity: ContainerIdentity, need: FolderNeed,
                                     journalDirectory: String, options: FixOptions) throws -> (outcome: FixOutcome, after: TreeAudit?) {
        let start = monotonicMs()
        guard let requirements = TreeRequirements.forNeed(need) else { throw FixError.notATree(need) }
        let rules = RequirementRules(requirements)
        let absRoot = absolute(root)
        if let r = SystemFolders.refusal(for: absRoot) { throw FixError.systemFolder(absRoot, r.why) }
        let journalDirectory = absolute(journalDirectory)
        var st = stat()
        var journal: JournalWriter
        var created = false
        if stat(absRoot, &st) != 0 {
            guard errno == ENOENT else { throw FixError.cannotOpenRoot(absRoot, errno) }
            let parent = parentOf(absRoot)
            var pst = stat()
            guard stat(parent, &pst) == 0, (pst.st_mode & S_IFMT) == S_IFDIR else { throw FixError.parentMissing(parent) }
            // Journal first (the creation is recorded before it happens), then mkdir, then its device and inode.
            journal = JournalWriter(directory: journalDirectory, header: FixJournal.headerLine(
                kind: kind, root: absRoot, rootDev: nil, rootIno: nil, identity: identity, need: need, createdRoot: true))
            try journal.open()
            if mkdir(absRoot, 0o755) != 0 {
                let e = errno
                journal.discard()
                throw FixError.cannotCreateRoot(absRoot, e)
            }
            created = true
        } else {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw FixError.notADirectory(absRoot) }
            journal = JournalWriter(directory: journalDirectory, header: [])  // replaced below, once the root is open
        }
        let rootFD = open(absRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else {
            let e = errno
            journal.close()
            throw FixError.cannotOpenRoot(absRoot, e)
        }
        defer { close(rootFD) }
        guard fstat(rootFD, &st) == 0 else { throw FixError.cannotOpenRoot(absRoot, errno) }
        guard let rootIdentity = ObjectAccess.identity(of: rootFD), let rootMountID = rootIdentity.mountID else {
            journal.close()
            throw FixError.cannotOpenRoot(absRoot, ENOTSUP)
        }
        if created {
            var line = JSONLine()
            line.raw("{\"created\":true,\"rootDev\":")
            line.number(UInt64(st.st_dev))
            line.raw(",\"rootIno\":")
            line.number(UInt64(st.st_ino))
            line.raw("}")
            line.newline()
            try journal.append(line.bytes)
        } else {
            journal = JournalWriter(directory: journalDirectory, header: FixJournal.headerLine(
                kind: kind, root: absRoot, rootDev: UInt64(st.st_dev), rootIno: UInt64(st.st_ino),
                rootBtime: rootIdentity.btime, identity: identity, need: need, createdRoot: false))
        }
        let threads = options.threads
        let ctx = FixContext(kind: kind, identity: identity, rules: rules, journal: journal, rootFD: rootFD,
                             rootDev: UInt64(st.st_dev), rootIno: UInt64(st.st_ino), rootMountID: rootMountID,
                             batchLimit: min(options.batchLimit, descriptorBudget(threads: threads)))
        if let o = options.auditAfter, rules.walkerReadsFileACLs { ctx.predictAfter = (absRoot, identity, o) }
        let stats: FixStats
        do {
            stats = try walk(ctx, root: absRoot, threads: threads)
        } catch {
            journal.close()
            throw FixStopped(reason: "\(error)", journal: journal.path)
        }
        if stats.journaled == 0 && !created && journal.isOpen { journal.discard() }  // only directory records
        var outcome = FixOutcome(changed: stats.changed, journal: journal.path ?? "", durationMs: 0)
        if journal.isOpen {
            var line = JSONLine()
            line.raw("{\"complete\":true,\"records\":")
            line.number(stats.journaled)
            line.raw(",\"changed\":")
            line.number(stats.changed)
            line.raw(",\"failed\":")
            line.number(stats.failures.count)
            line.raw(",\"finishedAt\":")
            line.string(FixJournal.timestamp())
            line.raw("}")
            line.newline()
            try journal.append(line.bytes)
            journal.close()
        }
        outcome.directoriesChanged = stats.changedDirectories
        outcome.filesChanged = stats.changedFiles
        outcome.createdRoot = created
        outcome.failures = stats.failures.examples + stats.stillDenied.examples.map { "\($0): still denied after the change" }
        outcome.failedCount = stats.failures.count + stats.stillDenied.count
        outcome.unscannable = stats.unscannable.examples
        outcome.unscannableCount = stats.unscannable.count
        outcome.batches = stats.batches
        outcome.refused = stats.refused.examples
        outcome.refusedCount = stats.refused.count
        outcome.replaced = stats.replaced.examples
        outcome.replacedCount = stats.replaced.count
        outcome.durationMs = monotonicMs() - start
        var after: TreeAudit?
        if var a = stats.after, stats.replaced.count == 0, stats.failures.count == 0, stats.unscannable.count == 0,
           stats.stillDenied.count == 0 {
            a.durationMs = outcome.durationMs
            a.root = root
            after = a
        }
        return (outcome, after)
    }

    /// Runs the walk; the context's first error (root replaced, journal write, test hook) wins.
    private static func walk(_ ctx: FixContext, root: String, threads: Int) throws -> FixStats {
        let stats: FixStats
        do {
            stats = try ctx.run(root: root, threads: threads)
        } catch let e as TreeWalkError {
            if case let .cannotOpenRoot(p, errno) = e { throw FixError.cannotOpenRoot(p, errno) }
            throw e
        }
        if let e = ctx.error { throw e }
        return stats
    }

    // MARK: Journals

    /// `$XDG_STATE_HOME/ezmsi/journals` or `~/.local/state/ezmsi/journals`.
    public static func defaultJournalDirectory(environment: [String: String]) -> String {
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") {
            return (state.hasSuffix("/") ? String(state.dropLast()) : state) + "/ezmsi/journals"
        }
        var home = environment["HOME"] ?? ""
        if home.isEmpty, let pw = getpwuid(geteuid()), let dir = pw.pointee.pw_dir { home = String(cString: dir) }
        if home.isEmpty { home = "/" }
        return (home.hasSuffix("/") ? String(home.dropLast()) : home) + "/.local/state/ezmsi/journals"
    }

    /// The newest journal in a directory (for `ezmsi undo` without argument): by the UTC time in its name, then by the
    /// millisecond start time in its header.
    public static func latestJournal(in directory: String) -> String? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return nil }
        var best: (stamp: String, started: String, name: String)?
        for name in names where name.hasPrefix("fix-") && name.hasSuffix(".jsonl") {
            let parts = name.dropFirst(4).dropLast(6).split(separator: "-")
            guard parts.count >= 3, parts[0].count == 8, parts[1].count == 6 else { continue }
            let stamp = String(parts[0] + parts[1])
            let path = directory + "/" + name
            var started = ""
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            if fd >= 0 {
                if let line = readFirstLine(fd: fd, limit: 1 << 16), let header = FlatJSON.parse(line[...]),
                   let s = header["startedAt"]?.string {
                    started = s
                }
                close(fd)
            }
            let candidate = (stamp, started, name)
            if best == nil || candidate > best! { best = candidate }
        }
        return best.map { directory + "/" + $0.name }
    }

    /// Every journal in `directory`, oldest first: trusted or not (as undo checks), its header and its last lines
    /// (completion and undone marks). Cheap: the full verification is undo's, of the one journal it undoes.
    public static func listJournals(in directory: String) -> [JournalSummary] {
        guard let dfd = try? StateFolder.open(directory, create: false) else { return [] }
        close(dfd)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var out: [JournalSummary] = []
        for name in names where name.hasPrefix("fix-") && name.hasSuffix(".jsonl") {
            let path = directory + "/" + name
            var summary = JournalSummary(journal: path, root: "?", startedAt: "", records: 0, state: .refused)
            do {
                let fd = try StateFolder.openJournal(path)
                defer { close(fd) }
                guard let line = readFirstLine(fd: fd, limit: 1 << 16), let header = FlatJSON.parse(line[...]),
                      header["version"]?.int == FixJournal.version,
                      let root = header["root"]?.string ?? header["rootHex"]?.string.flatMap(FlatJSON.unhex).map({ String(decoding: $0, as: UTF8.self) })
                else {
                    throw FixError.badJournal("no fix journal header")
                }
                summary.root = root
                summary.startedAt = header["startedAt"]?.string ?? ""
                summary.state = .interrupted
                let reader = ReverseLineReader(fd: fd, chunk: 1 << 14)
                for _ in 0..<3 {
                    guard let last = reader.previous(), let object = FlatJSON.parse(last[...]) else { break }
                    if object["undone"]?.bool == true { summary.state = .undone }
                    if object["complete"]?.bool == true {
                        if summary.state != .undone { summary.state = .open }
                        summary.records = object["records"]?.int ?? 0
                        break
                    }
                }
            } catch {
                summary.problem = "\(error)"
            }
            out.append(summary)
        }
        return out.sorted { ($0.startedAt, $0.journal) < ($1.startedAt, $1.journal) }
    }

    // MARK: Helpers

    /// The folder as `fix` records it in its journal (absolute, no trailing slash).
    public static func absolutePath(_ path: String) -> String { absolute(path) }

    /// Entries per batch that the descriptor limit allows: a batch holds one descriptor per entry while it is
    /// verified, journaled and changed (two where the kernel lacks `setxattrat` and the object is reopened), beside
    /// each walker's directories. The soft limit is raised to the hard one. (Bigger batches: fewer fsyncs.)
    static func descriptorBudget(threads: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 64 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = min(limit.rlim_max, 1 << 16)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let available = Int(min(limit.rlim_cur, 1 << 20)) - 64 - threads * (64 + 64 + 8)
        // Two batches per worker hold descriptors (one filling, one waiting for its fsync); a margin of one.
        let perEntry = 2 * (ObjectAccess.reopenForChanges ? 2 : 1) + 1
        return max(8, available / (perEntry * max(1, threads)))
    }

    static func absolute(_ path: String) -> String {
        var p = path
        if !p.hasPrefix("/") {
            let cwd = FileManager.default.currentDirectoryPath
            p = cwd.hasSuffix("/") ? cwd + p : cwd + "/" + p
        }
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }

    static func parentOf(_ absPath: String) -> String {
        let parent = (absPath as NSString).deletingLastPathComponent
        return parent.isEmpty ? "/" : parent
    }

    static func monotonicMs() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) * 1000 + Double(t.tv_nsec) / 1e6
    }

    static func currentUmask() -> UInt32 {
        if let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") }),
           let value = UInt32(line.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) {
            return value
        }
        return 0o022
    }

    /// What a directory made by `mkdir(root, 0755)` would look like, and what the plan would change on it.
    static func simulateCreatedRoot(parent: String, parentStat: stat, kind: FixPlanKind, identity: ContainerIdentity,
                                    rules: RequirementRules) -> FixStats {
        var stats = FixStats()
        stats.directories = 1
        let setgid = parentStat.st_mode & UInt32(S_ISGID) != 0
        let gid = setgid ? parentStat.st_gid : getegid()
        var mode = UInt32(S_IFDIR) | (setgid ? UInt32(S_ISGID) : 0)
        var access: FileACL?
        var parentDefault: FileACL?
        if let bytes = Xattr.read({ Xattr.get(parent, Xattr.defaultName, $0, $1) }), bytes.count > 4 {
            parentDefault = try? FileACL(xattr: bytes)
        }
        if let d = parentDefault {
            // posix_acl_create: the default ACL, masked by the create mode (0755).
            var a = d
            a.set(.userObj, a.userObj.intersection(.rwx))
            if let m = a.mask { a.set(.mask, m.intersection([.r, .x])) } else { a.set(.groupObj, a.groupObj.intersection([.r, .x])) }
            a.set(.other, a.other.intersection([.r, .x]))
            mode = a.mode(keeping: mode)
            access = a.isMinimal ? nil : a
        } else {
            mode |= 0o755 & ~currentUmask()
        }
        let decider = FixDecider(kind: kind, identity: identity)
        let selection = rules.select(kind: .directory, depth: 0, name: "", context: 0)
        if let change = decider.decide(isDirectory: true, uid: geteuid(), gid: gid, mode: mode, access: access,
                                       defaultACL: parentDefault, ops: selection.ops, defaultBits: selection.defaultBits) {
            stats.changedDirectories = 1
            if change.owner != nil { stats.chowns = 1; stats.notOwned = 1 }
            if change.mode != nil && change.owner == nil { stats.ownerModeChanges = 1 }
            if change.access != nil { stats.aclGrants = 1 }
            if change.defaultACL != nil { stats.defaultACLs = 1 }
        }
        return stats
    }

    static func privilege(kind: FixPlanKind, stats: FixStats, willCreate: Bool, parentWritable: Bool, root: String) -> String {
        var needs: [String] = []
        if willCreate && !parentWritable { needs.append("you cannot create \(root) in its parent") }
        if kind == .chown && stats.chowns > 0 {
            needs.append("changing the owner of \(stats.chowns) \(stats.chowns == 1 ? "entry" : "entries") needs CAP_CHOWN")
        } else if stats.notOwned > 0 {
            needs.append("\(stats.notOwned) \(stats.notOwned == 1 ? "entry belongs" : "entries belong") to others")
        }
        if needs.isEmpty {
            return stats.changed == 0 && !willCreate ? "none: nothing to change" : "none: you own every entry to change"
        }
        return "root (sudo): " + needs.joined(separator: "; ")
    }

    static func tradeOff(kind: FixPlanKind, identity: ContainerIdentity, count: Int) -> String {
        switch kind {
        case .acl:
            return "Ownership and existing rights stay as they are and uid \(identity.uid) gets a named ACL entry (plus "
                + "default entries so new files inherit it), but copies made without ACL support (cp without -a, tar "
                + "without --acls, many network shares) silently drop it."
        case .chown:
            return "The container's user \(identity.uid):\(identity.gid) becomes the owner of \(count) "
                + "\(count == 1 ? "entry" : "entries"), which is simplest for the container but takes them away from "
                + "their current owners (you may need sudo to edit them yourself)."
        }
    }

    static func commands(kind: FixPlanKind, root: String, identity: ContainerIdentity, requirements: TreeRequirements,
                         willCreate: Bool, ownerModeChanges: Int) -> [String] {
        let q = ShellWords.quote(root)
        let uid = identity.uid
        var out: [String] = []
        out.append("# equivalent, coarser: ezmsi changes only the entries it counted, and only ever adds rights")
        if willCreate { out.append("mkdir -m 0755 -- \(q)") }
        func p(_ ops: [AccessOperation]) -> String { RequirementRules.bits(ops).description }
        let dirBits = p(requirements.rule.directory)
        let fileBits = p(requirements.rule.file)
        switch kind {
        case .acl:
            out.append("find \(q) -xdev -type d -exec setfacl -m u:\(uid):\(dirBits),d:u:\(uid):\(dirBits) -- {} +")
            if !requirements.rule.file.isEmpty {
                out.append("find \(q) -xdev -type f -exec setfacl -m u:\(uid):\(fileBits) -- {} +")
            }
            if RequirementRules.bits(requirements.root) != RequirementRules.bits(requirements.rule.directory) {
                out.append("setfacl -m u:\(uid):\(p(requirements.root)) -- \(q)")
            }
            for (name, rule) in requirements.subtrees.sorted(by: { $0.key < $1.key }) {
                let sub = ShellWords.quote(root + "/" + name)
                let d = p(rule.directory)
                out.append("[ ! -d \(sub) ] || find \(sub) -xdev -type d -exec setfacl -m u:\(uid):\(d),d:u:\(uid):\(d) -- {} +")
                if !rule.file.isEmpty && rule.file != requirements.rule.file {
                    out.append("[ ! -d \(sub) ] || find \(sub) -xdev -type f -exec setfacl -m u:\(uid):\(p(rule.file)) -- {} +")
                }
                for (file, ops) in rule.namedFiles.sorted(by: { $0.key < $1.key }) {
                    let f = ShellWords.quote(root + "/" + name + "/" + file)
                    out.append("[ ! -f \(f) ] || setfacl -m u:\(uid):\(p(ops)) -- \(f)")
                }
            }
            for (file, ops) in requirements.rootFiles.sorted(by: { $0.key < $1.key }) {
                let f = ShellWords.quote(root + "/" + file)
                out.append("[ ! -f \(f) ] || setfacl -m u:\(uid):\(p(ops)) -- \(f)")
            }
            if ownerModeChanges > 0 {
                out.append("# entries uid \(uid) owns: its owner bits decide, not the ACL")
                out.append("find \(q) -xdev -user \(uid) -type d -exec chmod u+\(dirBits.replacingOccurrences(of: "-", with: "")) -- {} +")
                if !requirements.rule.file.isEmpty {
                    out.append("find \(q) -xdev -user \(uid) -type f -exec chmod u+\(fileBits.replacingOccurrences(of: "-", with: "")) -- {} +")
                }
            }
        case .chown:
            out.append("find \(q) -xdev \\( -type d -o -type f \\) ! -user \(uid) -exec chown -h \(uid):\(identity.gid) -- {} +")
            out.append("find \(q) -xdev -type d -exec chmod u+\(dirBits.replacingOccurrences(of: "-", with: "")) -- {} +")
            if !requirements.rule.file.isEmpty {
                out.append("find \(q) -xdev -type f -exec chmod u+\(fileBits.replacingOccurrences(of: "-", with: "")) -- {} +")
            }
            if RequirementRules.bits(requirements.root) != RequirementRules.bits(requirements.rule.directory) {
                out.append("chmod u+\(p(requirements.root).replacingOccurrences(of: "-", with: "")) -- \(q)")
            }
            func plus(_ ops: [AccessOperation]) -> String { p(ops).replacingOccurrences(of: "-", with: "") }
            for (name, rule) in requirements.subtrees.sorted(by: { $0.key < $1.key }) {
                let sub = ShellWords.quote(root + "/" + name)
                out.append("[ ! -d \(sub) ] || find \(sub) -xdev -type d -exec chmod u+\(plus(rule.directory)) -- {} +")
                for (file, ops) in rule.namedFiles.sorted(by: { $0.key < $1.key }) {
                    let f = ShellWords.quote(root + "/" + name + "/" + file)
                    out.append("[ ! -f \(f) ] || chmod u+\(plus(ops)) -- \(f)")
                }
            }
            for (file, ops) in requirements.rootFiles.sorted(by: { $0.key < $1.key }) {
                let f = ShellWords.quote(root + "/" + file)
                out.append("[ ! -f \(f) ] || chmod u+\(plus(ops)) -- \(f)")
            }
        }
        return out
    }
}
