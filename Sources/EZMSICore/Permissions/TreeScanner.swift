import Foundation
import Glibc

/// What a program needs from every entry of a folder tree.
public struct TreeRequirements: Sendable, Equatable {
    public struct Rule: Sendable, Equatable {
        public var directory: [AccessOperation]
        public var file: [AccessOperation]
        /// Files directly in this subtree's top directory with needs of their own (e.g. the program's log file).
        public var namedFiles: [String: [AccessOperation]]

        public init(directory: [AccessOperation], file: [AccessOperation], namedFiles: [String: [AccessOperation]] = [:]) {
            self.directory = directory
            self.file = file
            self.namedFiles = namedFiles
        }
    }

    /// The folder itself.
    public var root: [AccessOperation]
    /// Every other directory and regular file.
    public var rule: Rule
    /// Children of the root whose whole subtree has its own rule (e.g. `LOGS`).
    public var subtrees: [String: Rule]
    /// Regular files directly in the root with their own needs (e.g. the program's log file).
    public var rootFiles: [String: [AccessOperation]]

    public init(root: [AccessOperation], rule: Rule, subtrees: [String: Rule] = [:], rootFiles: [String: [AccessOperation]] = [:]) {
        self.root = root
        self.rule = rule
        self.subtrees = subtrees
        self.rootFiles = rootFiles
    }

    /// The table's folder needs (reference/openmsistream.md §3). nil for needs that are not a tree.
    public static func forNeed(_ need: FolderNeed) -> TreeRequirements? {
        switch need {
        case .readTreeWriteRoot:
            // DataFileUploadDirectory: walks and reads everything, creates LOGS/ in the root, and in LOGS/ rewrites its
            // CSVs (mkstemp + rename: w+x on LOGS, r to re-read them) and appends to DataFileUploadDirectory.log.
            return TreeRequirements(
                root: [.listDirectory, .createInDirectory],
                rule: Rule(directory: [.listDirectory], file: [.readFile]),
                subtrees: [ProgramTable.uploadLogFolder: Rule(directory: [.listDirectory, .createInDirectory], file: [.readFile],
                                                              namedFiles: [ProgramTable.uploadLogName: [.readFile, .writeFile]])])
        case .writeTree:
            // DataFileDownloadDirectory: creates files and subdirectories anywhere below, appends to its log in the root.
            return TreeRequirements(
                root: [.listDirectory, .createInDirectory],
                rule: Rule(directory: [.listDirectory, .createInDirectory], file: []),
                rootFiles: [ProgramTable.downloadLogName: [.writeFile]])
        case .readFileWriteParent, .none:
            return nil
        }
    }

    var needsFileACLs: Bool {
        !rule.file.isEmpty || subtrees.values.contains { !$0.file.isEmpty } || !rootFiles.isEmpty
    }
}

/// Up to `limit` examples and a total count.
public struct Sample: Sendable, Equatable {
    public static let limit = 10
    public var count = 0
    public var examples: [String] = []

    public init() {}

    mutating func merge(_ other: Sample) {
        count += other.count
        for e in other.examples where examples.count < Sample.limit { examples.append(e) }
    }

    mutating func add(_ example: @autoclosure () -> String) {
        count += 1
        if examples.count < Sample.limit { examples.append(example()) }
    }
}

/// The result of auditing a folder tree for one container identity.
public struct TreeAudit: Sendable {
    /// Why the container cannot use an entry: the operation it needs, what the entry is, and which kernel rule denies.
    public struct Reason: Hashable, Sendable, Comparable, CustomStringConvertible {
        public var operation: AccessOperation
        public var kind: TreeEntryKind
        public var cause: Cause

        public init(operation: AccessOperation, kind: TreeEntryKind, cause: Cause) {
            self.operation = operation
            self.kind = kind
            self.cause = cause
        }

        public static func < (a: Reason, b: Reason) -> Bool {
            (a.operation, a.kind.rawValue, a.cause.rawValue) < (b.operation, b.kind.rawValue, b.cause.rawValue)
        }

        public var description: String { "\(kind.rawValue) \(operation.rawValue) denied: \(cause.rawValue)" }
    }

    public enum Cause: String, Sendable, Hashable, Codable {
        /// The container user owns it and the owner bits lack the permission.
        case ownerBits = "owner-bits"
        /// A named-user ACL entry holds the bits but the mask removes them.
        case namedUserMasked = "named-user-masked"
        /// A named-user ACL entry lacks the bits.
        case namedUserLacks = "named-user-lacks"
        /// A matching group ACL entry holds the bits but the mask removes them.
        case groupMasked = "group-masked"
        /// The owning group matches (mode bits) and its bits lack the permission.
        case groupBits = "group-bits"
        /// Group entries match but none alone holds all the bits (OTHER is then not consulted).
        case groupClassLacks = "group-class-lacks"
        /// Not owner, no named entry, no group: the other bits lack the permission.
        case otherBits = "other-bits"
        /// Root without an execute bit anywhere (only for executing files).
        case rootNeedsExecuteBit = "root-needs-execute-bit"

        init(_ decision: AccessDecision) {
            switch decision.reason {
            case .owner: self = .ownerBits
            case let .namedUser(entry, _):
                self = entry.perms.isSuperset(of: decision.failedCheck ?? decision.operation.want) ? .namedUserMasked : .namedUserLacks
            case let .group(_, entry, mask): self = mask == nil && entry.tag == .groupObj ? .groupBits : .groupMasked
            case .groupClassLacks: self = .groupClassLacks
            case .other: self = .otherBits
            case .rootNeedsExecuteBit: self = .rootNeedsExecuteBit
            case .rootBypass: self = .otherBits  // never a denial
            }
        }
    }

    /// What one example entry looked like and why it was denied.
    public struct Example: Sendable, Hashable {
        public var path: String
        public var uid: UInt32
        public var gid: UInt32
        /// Permission and special bits (`st_mode & 0o7777`).
        public var mode: UInt32
        /// `getfacl -n` short text of the stored access ACL, nil for mode bits only.
        public var acl: String?
        public var decision: AccessDecision
    }

    public var root: String
    public var identity: ContainerIdentity
    public var requirements: TreeRequirements
    public var directories = 0
    public var files = 0
    public var symlinks = 0
    /// FIFOs, sockets, devices.
    public var others = 0
    /// Entries with a stored access ACL.
    public var entriesWithACL = 0
    /// Entries whose ACL the kernel ignores because the mask is `---` (mode group bits 0).
    public var aclsIgnored = 0
    /// Denials per reason (one entry can count under several reasons).
    public var unusable: [Reason: Int] = [:]
    /// The first `Sample.limit` paths (relative to the root, `.` = the root) per reason.
    public var examples: [Reason: [String]] = [:]
    /// The facts and decision of the first example of each reason, and of every example path.
    public var details: [String: [Example]] = [:]
    /// Distinct entries with at least one denial.
    public var unusableEntries = 0
    /// Entries below a directory the container cannot list (they are out of its reach whatever their own bits).
    public var belowDeniedDirectories = 0
    /// Denied entries the caller's relevance filter dropped (e.g. files the program never uploads).
    public var ignored = 0
    /// Symlinks whose target (resolved lexically from the link's directory) leaves the root: they will not resolve
    /// to the same file inside the container. Examples are `path -> target`.
    public var symlinksOutside = Sample()
    /// Mount points and entries on other file systems: not scanned.
    public var otherFilesystems = Sample()
    /// What ezmsi itself could not read (examples are `path: why`): the audit is incomplete there.
    public var unscannable = Sample()
    /// The root's default ACL (what new files and directories inherit), nil if none.
    public var rootDefaultACL: FileACL?
    public var rootSecurity: InodeSecurity?
    public var durationMs: Double = 0

    public var totalDenials: Int { unusable.values.reduce(0, +) }
    /// Nothing denied and nothing left unscanned.
    public var isClean: Bool { unusable.isEmpty && unscannable.count == 0 }
    public var entries: Int { directories + files + symlinks + others }

    /// Adds another walker's audit of other parts of the same tree.
    public mutating func merge(_ o: TreeAudit) {
        directories += o.directories
        files += o.files
        symlinks += o.symlinks
        others += o.others
        entriesWithACL += o.entriesWithACL
        aclsIgnored += o.aclsIgnored
        unusableEntries += o.unusableEntries
        belowDeniedDirectories += o.belowDeniedDirectories
        ignored += o.ignored
        for (reason, count) in o.unusable { unusable[reason, default: 0] += count }
        for (reason, paths) in o.examples {
            for path in paths where examples[reason, default: []].count < Sample.limit {
                examples[reason, default: []].append(path)
                if let d = o.details[path]?.first(where: { TreeAudit.Reason(operation: $0.decision.operation, kind: reason.kind, cause: TreeAudit.Cause($0.decision)) == reason }) {
                    details[path, default: []].append(d)
                }
            }
        }
        symlinksOutside.merge(o.symlinksOutside)
        otherFilesystems.merge(o.otherFilesystems)
        unscannable.merge(o.unscannable)
        if rootDefaultACL == nil { rootDefaultACL = o.rootDefaultACL }
        if rootSecurity == nil { rootSecurity = o.rootSecurity }
    }

    /// Reasons sorted by count, largest first.
    public var reasonsByCount: [(reason: Reason, count: Int)] {
        unusable.map { ($0.key, $0.value) }.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
    }
}

public struct TreeAuditOptions: Sendable {
    public var walker = TreeWalker.Options()
    /// Walkers working in parallel (subtrees are handed to idle ones). 1 = a single, deterministic walk: the examples
    /// are then the first in walk order.
    public var threads: Int = TreeAuditOptions.defaultThreads
    public static var defaultThreads: Int { max(1, min(4, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))) }
    /// The container path the root is mounted at: absolute symlink targets below it resolve inside.
    public var containerPath: String?
    /// Called only for DENIED entries (path relative to the root): false drops the denial into `ignored`
    /// (e.g. hidden files or paths the upload regex excludes).
    public var isRelevant: (@Sendable (String, TreeEntryKind) -> Bool)?

    public init(walker: TreeWalker.Options = TreeWalker.Options(), threads: Int = TreeAuditOptions.defaultThreads,
                containerPath: String? = nil, isRelevant: (@Sendable (String, TreeEntryKind) -> Bool)? = nil) {
        self.walker = walker
        self.threads = max(1, threads)
        self.containerPath = containerPath
        self.isRelevant = isRelevant
    }
}

public enum TreeScanError: Error, Equatable, Sendable, CustomStringConvertible {
    case notATree(FolderNeed)
    case walk(TreeWalkError)

    public var description: String {
        switch self {
        case .notATree(let n): return "folder need \(n.rawValue) is not a tree"
        case .walk(let e): return e.description
        }
    }
}

public enum TreeScanner {
    /// Audits `root` for what `need` requires of the container process `identity` (host ids: map first).
    public static func audit(root: String, identity: ContainerIdentity, need: FolderNeed,
                             options: TreeAuditOptions = TreeAuditOptions()) throws -> TreeAudit {
        guard let requirements = TreeRequirements.forNeed(need) else { throw TreeScanError.notATree(need) }
        return try audit(root: root, identity: identity, requirements: requirements, options: options)
    }

    public static func audit(root: String, identity: ContainerIdentity, requirements: TreeRequirements,
                             options: TreeAuditOptions = TreeAuditOptions()) throws -> TreeAudit {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        var walkerOptions = options.walker
        if walkerOptions.acls == .all && !requirements.needsFileACLs { walkerOptions.acls = .directoriesOnly }
        var audit: TreeAudit
        if options.threads <= 1 {
            let walker = TreeWalker(root: root, options: walkerOptions)
            var auditor = TreeAuditor(identity: identity, requirements: requirements, options: options, root: root)
            do {
                try walker.walk(&auditor)
            } catch let e as TreeWalkError {
                throw TreeScanError.walk(e)
            }
            audit = auditor.audit
        } else {
            audit = try parallelAudit(root: root, identity: identity, requirements: requirements, options: options,
                                      walkerOptions: walkerOptions)
        }
        var end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &end)
        audit.durationMs = Double(end.tv_sec - start.tv_sec) * 1000 + Double(end.tv_nsec - start.tv_nsec) / 1e6
        return audit
    }

    /// Worker 0 walks from the root; the others wait for subtrees that busy walkers hand over when someone is idle.
    /// Each worker has its own walker (buffers, descriptor cap share) and auditor; the audits are merged at the end.
    static func parallelAudit(root: String, identity: ContainerIdentity, requirements: TreeRequirements,
                              options: TreeAuditOptions, walkerOptions: TreeWalker.Options) throws -> TreeAudit {
        let workers = options.threads
        let perWorker = TreeWalker.Options(oneFilesystem: walkerOptions.oneFilesystem,
                                           maxOpenDirectories: max(4, walkerOptions.maxOpenDirectories / workers),
                                           acls: walkerOptions.acls)
        let pool = WorkPool(workers: workers)
        final class Results: @unchecked Sendable {
            private let lock = NSLock()
            private(set) var audits: [TreeAudit?]
            private(set) var error: Error?
            init(_ n: Int) { audits = Array(repeating: nil, count: n) }
            func set(_ k: Int, _ audit: TreeAudit) { lock.lock(); audits[k] = audit; lock.unlock() }
            func fail(_ e: Error) { lock.lock(); error = e; lock.unlock() }
        }
        let results = Results(workers)
        let work: @Sendable (Int) -> Void = { k in
            let walker = TreeWalker(root: root, options: perWorker)
            var auditor = TreeAuditor(identity: identity, requirements: requirements, options: options, root: root)
            if k == 0 {
                do { try walker.walk(&auditor, pool: pool) } catch { results.fail(error) }
            }
            while let item = pool.take() {
                walker.walk(donated: item, &auditor, pool: pool)
            }
            results.set(k, auditor.audit)
        }
        runOnThreads(workers, work)
        if let e = results.error as? TreeWalkError { throw TreeScanError.walk(e) }
        if let e = results.error { throw e }
        var audit = results.audits[0]!
        for other in results.audits.dropFirst() { if let other { audit.merge(other) } }
        return audit
    }

    /// The streaming walk, for code that acts on every entry (a fixer).
    public static func walk<V: TreeVisitor>(root: String, options: TreeWalker.Options = TreeWalker.Options(),
                                            visitor: inout V) throws {
        try TreeWalker(root: root, options: options).walk(&visitor)
    }

    /// Where a symlink found at `linkPath` (relative to the root, e.g. `a/b/link`) with `target` points, lexically:
    /// the normalized path relative to the root, or nil when it leaves the root. Absolute targets are inside only when
    /// they lie below `containerPath` (where the root is mounted in the container).
    public static func resolveSymlink(linkPath: String, target: String, containerPath: String?) -> String? {
        var components: [Substring]
        var rest: Substring
        if target.hasPrefix("/") {
            guard let containerPath else { return nil }
            let normalizedTarget = normalize(target.split(separator: "/", omittingEmptySubsequences: true))
            let base = containerPath.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            guard let t = normalizedTarget, t.count >= base.count, Array(t.prefix(base.count)) == base else { return nil }
            return t.count == base.count ? "." : t.dropFirst(base.count).joined(separator: "/")
        }
        components = linkPath.split(separator: "/", omittingEmptySubsequences: true)
        if !components.isEmpty { components.removeLast() }  // the link's own name
        if components.first == "." { components.removeFirst() }
        rest = Substring(target)
        guard let resolved = normalize(components + rest.split(separator: "/", omittingEmptySubsequences: true)) else {
            return nil
        }
        return resolved.isEmpty ? "." : resolved.joined(separator: "/")
    }

    /// Lexical normalization: `.` dropped, `..` pops; nil when `..` climbs above the start.
    static func normalize(_ parts: [Substring]) -> [String]? {
        var out: [String] = []
        for p in parts {
            if p == "." { continue }
            if p == ".." {
                if out.isEmpty { return nil }
                out.removeLast()
                continue
            }
            out.append(String(p))
        }
        return out
    }
}

/// The audit as a tree visitor.
struct TreeAuditor: TreeVisitor {
    let identity: ContainerIdentity
    let requirements: TreeRequirements
    let options: TreeAuditOptions
    var audit: TreeAudit
    /// Which operations each entry needs (shared with the fixer). The walk context holds the subtree (1…, 0 = the
    /// default rule) in its low bits; bit 0x80 marks "below a denied directory".
    let rules: RequirementRules
    var aclCache = ACLDecodeCache()
    var linkBuffer = [CChar](repeating: 0, count: 4097)

    static let belowDenied: UInt8 = 0x80

    init(identity: ContainerIdentity, requirements: TreeRequirements, options: TreeAuditOptions, root: String) {
        self.identity = identity
        self.requirements = requirements
        self.options = options
        audit = TreeAudit(root: root, identity: identity, requirements: requirements)
        rules = RequirementRules(requirements)
    }

    mutating func skipped(path: String, reason: TreeSkipReason) {
        switch reason {
        case .otherFilesystem: audit.otherFilesystems.add(path)
        default: audit.unscannable.add("\(path): \(reason)")
        }
    }

    mutating func visit(_ entry: TreeEntry) -> TreeVisitAction { visit(entry, as: nil) }

    /// The state an entry is judged in, when it is not the one the walk read: the state a fix left it in.
    struct State {
        var inode: InodeSecurity
        /// The root's default ACL.
        var defaultACL: FileACL?
    }

    /// `state`: judge the entry as if it had these attributes (the fix's own walk predicts the audit after it).
    mutating func visit(_ entry: TreeEntry, as state: State?) -> TreeVisitAction {
        var context = entry.context
        let below = context & TreeAuditor.belowDenied != 0
        let ops: [AccessOperation]
        switch entry.kind {
        case .symlink:
            audit.symlinks += 1
            if below { audit.belowDeniedDirectories += 1 }
            checkSymlink(entry)
            return .skipChildren
        case .other:
            audit.others += 1
            if below { audit.belowDeniedDirectories += 1 }
            return .skipChildren
        case .directory, .file:
            if entry.kind == .directory { audit.directories += 1 } else { audit.files += 1 }
            let selection = rules.select(kind: entry.kind, depth: entry.depth, name: entry.name, context: context & 0x7F)
            ops = selection.ops
            context = selection.childContext | (context & TreeAuditor.belowDenied)
        }
        if below { audit.belowDeniedDirectories += 1 }

        var acl: FileACL?
        let inode: InodeSecurity
        if let state {
            acl = state.inode.acl
            if acl != nil { audit.entriesWithACL += 1 }
            inode = state.inode
        } else {
            if let raw = entry.rawAccessACL {
                audit.entriesWithACL += 1
                acl = aclCache.decode(raw)
            }
            inode = InodeSecurity(uid: entry.stat.st_uid, gid: entry.stat.st_gid, mode: entry.stat.st_mode, acl: acl)
        }
        if acl != nil && inode.mode & 0o070 == 0 { audit.aclsIgnored += 1 }
        if entry.depth == 0 {
            audit.rootSecurity = inode
            if let state {
                audit.rootDefaultACL = state.defaultACL
            } else {
                do { audit.rootDefaultACL = try entry.defaultACL() } catch {
                    audit.unscannable.add(".: \(error)")
                }
            }
        }

        var denied = false
        var relevant: Bool?
        for op in ops {
            let decision = AccessEvaluator.evaluate(op, identity: identity, inode: inode)
            guard !decision.allowed else { continue }
            if entry.kind == .directory && (op == .listDirectory || op == .traverse) { context |= TreeAuditor.belowDenied }
            if relevant == nil {
                relevant = options.isRelevant.map { $0(entry.relativePath, entry.kind) } ?? true
            }
            guard relevant == true else { continue }
            denied = true
            let reason = TreeAudit.Reason(operation: op, kind: entry.kind, cause: TreeAudit.Cause(decision))
            audit.unusable[reason, default: 0] += 1
            if audit.examples[reason, default: []].count < Sample.limit {
                let path = entry.relativePath
                audit.examples[reason, default: []].append(path)
                audit.details[path, default: []].append(TreeAudit.Example(
                    path: path, uid: inode.uid, gid: inode.gid, mode: inode.mode & 0o7777, acl: acl?.text, decision: decision))
            }
        }
        if denied { audit.unusableEntries += 1 } else if relevant == false { audit.ignored += 1 }
        return .descend(context: context)
    }

    private mutating func checkSymlink(_ entry: TreeEntry) {
        let n = linkBuffer.withUnsafeMutableBufferPointer { readlinkat(entry.parentFD, entry.name, $0.baseAddress!, 4096) }
        guard n >= 0 else {
            audit.unscannable.add("\(entry.relativePath): cannot read the link: " + String(cString: strerror(errno)))
            return
        }
        let target = linkBuffer.withUnsafeBufferPointer { buf in
            String(decoding: UnsafeRawBufferPointer(start: buf.baseAddress!, count: n), as: UTF8.self)
        }
        let path = entry.relativePath
        if TreeScanner.resolveSymlink(linkPath: path, target: target, containerPath: options.containerPath) == nil {
            audit.symlinksOutside.add("\(path) -> \(target)")
        }
    }
}
