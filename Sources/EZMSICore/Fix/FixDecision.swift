import Glibc

/// Which operations `TreeRequirements` asks of each entry. The audit (`TreeAuditor`) and the fixer both select
/// through it, so the fixer grants exactly what the audit finds denied. The walk context carries the subtree (1…)
/// of depth-1 directories such as `LOGS`; 0 is the default rule.
struct RequirementRules {
    let requirements: TreeRequirements
    private let subtreeNames: [[CChar]]
    private let subtreeRules: [TreeRequirements.Rule]
    private let rootFileNames: [[CChar]]
    private let rootFileOps: [[AccessOperation]]
    /// The default rule or a subtree rule reads files: the walker must read every file's ACL.
    let walkerReadsFileACLs: Bool

    init(_ requirements: TreeRequirements) {
        self.requirements = requirements
        let sortedSubtrees = requirements.subtrees.sorted { $0.key < $1.key }
        subtreeNames = sortedSubtrees.map { Array($0.key.utf8CString) }
        subtreeRules = sortedSubtrees.map(\.value)
        let sortedFiles = requirements.rootFiles.sorted { $0.key < $1.key }
        rootFileNames = sortedFiles.map { Array($0.key.utf8CString) }
        rootFileOps = sortedFiles.map(\.value)
        walkerReadsFileACLs = !requirements.rule.file.isEmpty || requirements.subtrees.values.contains { !$0.file.isEmpty }
    }

    private func index(of name: UnsafePointer<CChar>, in names: [[CChar]]) -> Int? {
        for (i, candidate) in names.enumerated() where candidate.withUnsafeBufferPointer({ strcmp($0.baseAddress!, name) == 0 }) {
            return i
        }
        return nil
    }

    struct Selection {
        var ops: [AccessOperation]
        /// The context the entry's children get (directories).
        var childContext: UInt8
        /// Directories: what the named default entry grants (what new subdirectories of this one need).
        var defaultBits: Perm
    }

    /// The operations for an entry of `kind` named `name` at `depth` under `context`.
    func select(kind: TreeEntryKind, depth: Int, name: UnsafePointer<CChar>, context: UInt8) -> Selection {
        switch kind {
        case .directory:
            if depth == 0 {
                return Selection(ops: requirements.root, childContext: 0, defaultBits: Self.bits(requirements.rule.directory))
            }
            var context = context
            if depth == 1, let i = index(of: name, in: subtreeNames) { context = UInt8(i + 1) }
            let rule = context == 0 ? requirements.rule : subtreeRules[Int(context) - 1]
            return Selection(ops: rule.directory, childContext: context, defaultBits: Self.bits(rule.directory))
        case .file:
            let ops: [AccessOperation]
            if depth == 1, let i = index(of: name, in: rootFileNames) {
                ops = rootFileOps[i]
            } else if depth == 1, let i = index(of: name, in: subtreeNames) {
                ops = subtreeRules[i].file
            } else if context == 0 {
                ops = requirements.rule.file
            } else if depth == 2, !subtreeRules[Int(context) - 1].namedFiles.isEmpty,
                      let named = subtreeRules[Int(context) - 1].namedFiles[String(cString: name)] {
                ops = named
            } else {
                ops = subtreeRules[Int(context) - 1].file
            }
            return Selection(ops: ops, childContext: context, defaultBits: [])
        case .symlink, .other:
            return Selection(ops: [], childContext: context, defaultBits: [])
        }
    }

    static func bits(_ ops: [AccessOperation]) -> Perm { ops.reduce(Perm()) { $0.union($1.want) } }
}

/// What the fixer does to one entry.
struct EntryChange: Equatable {
    /// chown to these ids (chown plan).
    var owner: (uid: UInt32, gid: UInt32)?
    /// chmod to these permission and special bits (`& 0o7777`).
    var mode: UInt32?
    /// Write this access ACL (acl plan, named entry added or extended, mask raised).
    var access: FileACL?
    /// Write this default ACL (acl plan, directories).
    var defaultACL: FileACL?
    /// After the change the identity still lacks something (should not happen; reported).
    var stillDenied = false
    /// The entry was denied before (false: only the default ACL is added).
    var wasDenied = false

    var isEmpty: Bool { owner == nil && mode == nil && access == nil && defaultACL == nil }

    static func == (a: EntryChange, b: EntryChange) -> Bool {
        a.owner?.uid == b.owner?.uid && a.owner?.gid == b.owner?.gid && a.mode == b.mode && a.access == b.access
            && a.defaultACL == b.defaultACL && a.stillDenied == b.stillDenied && a.wasDenied == b.wasDenied
    }
}

/// The per-entry decision, a pure function of the entry's security attributes (tested on its own).
struct FixDecider {
    let kind: FixPlanKind
    let identity: ContainerIdentity
    /// acl plan, for an identity that does not bypass permission checks everywhere: directories carry a default entry.
    let wantsDefaults: Bool

    init(kind: FixPlanKind, identity: ContainerIdentity) {
        self.kind = kind
        self.identity = identity
        wantsDefaults = kind == .acl && !(identity.bypassesDAC && identity.bypassScope == nil)
    }

    /// Whether an operation in `ops` is denied.
    @inline(__always)
    func denied(_ ops: [AccessOperation], _ inode: InodeSecurity) -> Bool {
        for op in ops where !AccessEvaluator.evaluate(op, identity: identity, inode: inode).allowed { return true }
        return false
    }

    /// `mode` is the full `st_mode`; `access` the stored access ACL (nil: mode bits only); `defaultACL` the stored
    /// default ACL of a directory (only looked at when `wantsDefaults`). nil when nothing changes.
    func decide(isDirectory: Bool, uid: UInt32, gid: UInt32, mode: UInt32, access: FileACL?, defaultACL: FileACL?,
                ops: [AccessOperation], defaultBits: Perm) -> EntryChange? {
        let inode = InodeSecurity(uid: uid, gid: gid, mode: mode, acl: access)
        var change = EntryChange()
        var newUID = uid, newGID = gid
        var newMode = mode
        var newAccess = access
        if !ops.isEmpty && denied(ops, inode) {
            change.wasDenied = true
            let bits = RequirementRules.bits(ops)
            switch kind {
            case .acl:
                if identity.uid == uid {
                    // The owner bits decide for the owner; a named entry for the owner is never consulted.
                    newMode = mode | UInt32(bits.rawValue) << 6
                    change.mode = newMode & 0o7777
                } else {
                    var acl = access ?? FileACL(mode: mode)
                    let named = acl.perms(.user(identity.uid)) ?? []
                    acl.set(.user(identity.uid), named.union(bits))
                    // Raise the mask by the granted bits only: other group-class entries gain nothing else. (The
                    // mode's group bits are the mask; with mask --- the kernel ignored the ACL, now it consults it.)
                    acl.set(.mask, (acl.mask ?? acl.groupObj).union(bits))
                    newAccess = acl
                    newMode = acl.mode(keeping: mode)
                    change.access = acl
                }
            case .chown:
                var m = mode
                if uid != identity.uid || gid != identity.gid {
                    change.owner = (identity.uid, identity.gid)
                    newUID = identity.uid
                    newGID = identity.gid
                    // What the kernel's chown does to a regular file: setuid cleared, setgid cleared if group-exec.
                    if (mode & UInt32(S_IFMT)) == UInt32(S_IFREG) {
                        m &= ~UInt32(S_ISUID)
                        if m & UInt32(S_IXGRP) != 0 { m &= ~UInt32(S_ISGID) }
                    }
                }
                if !Perm(mode: m, shift: 6).isSuperset(of: bits) {
                    m |= UInt32(bits.rawValue) << 6
                    change.mode = m & 0o7777
                }
                newMode = m
            }
            let after = InodeSecurity(uid: newUID, gid: newGID, mode: newMode, acl: newAccess)
            change.stillDenied = denied(ops, after)
        }
        if isDirectory && wantsDefaults {
            change.defaultACL = defaultNeeded(defaultACL, bits: defaultBits, mode: newMode, access: newAccess)
        }
        return change.isEmpty ? nil : change
    }

    /// The default ACL the directory should get, or nil when it already grants `bits` to the identity (named entry
    /// and mask both hold them). A directory without a default ACL gets one seeded from its access ACL (as setfacl
    /// does): `u::`, `g::`, `o::` of the access ACL, the named entry and a mask.
    func defaultNeeded(_ existing: FileACL?, bits: Perm, mode: UInt32, access: FileACL?) -> FileACL? {
        guard !bits.isEmpty else { return nil }
        if var d = existing, !d.isEmpty {
            let named = d.perms(.user(identity.uid))
            let mask = d.mask
            if let named, named.isSuperset(of: bits), mask?.isSuperset(of: bits) ?? true { return nil }
            d.set(.user(identity.uid), (named ?? []).union(bits))
            d.set(.mask, (mask ?? d.groupObj).union(bits))
            return d
        }
        let groupObj = access?.groupObj ?? Perm(mode: mode, shift: 3)
        return FileACL(entries: [
            ACLEntry(.userObj, Perm(mode: mode, shift: 6)),
            ACLEntry(.user(identity.uid), bits),
            ACLEntry(.groupObj, groupObj),
            ACLEntry(.mask, groupObj.union(bits)),
            ACLEntry(.other, Perm(mode: mode, shift: 0)),
        ])
    }
}
