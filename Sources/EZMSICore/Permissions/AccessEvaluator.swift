import Glibc

/// What the kernel looks at when it checks an inode: owner, group, mode and the stored access ACL.
public struct InodeSecurity: Hashable, Sendable {
    public var uid: UInt32
    public var gid: UInt32
    /// `st_mode`, file type included.
    public var mode: UInt32
    /// The stored access ACL (`system.posix_acl_access`); nil when there is none (mode bits only).
    public var acl: FileACL?

    public init(uid: UInt32, gid: UInt32, mode: UInt32, acl: FileACL? = nil) {
        self.uid = uid
        self.gid = gid
        self.mode = mode
        self.acl = acl
    }

    public init(_ st: stat, acl: FileACL?) {
        self.init(uid: st.st_uid, gid: st.st_gid, mode: st.st_mode, acl: acl)
    }

    public init(_ acls: PathACLs) {
        self.init(uid: acls.uid, gid: acls.gid, mode: acls.mode, acl: acls.origin == .stored ? acls.access : nil)
    }

    public var isDirectory: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFDIR) }
}

/// Which rule of the kernel decided one permission check.
public enum AccessReason: Hashable, Sendable {
    /// The process owns the inode: the owner bits decide (ACL mask not applied).
    case owner(Perm)
    /// A named-user ACL entry matched the uid: `entry.perms & mask` decides.
    case namedUser(ACLEntry, mask: Perm?)
    /// A group-class entry matched and holds all wanted bits: `entry.perms & mask` decides. For mode bits (no ACL)
    /// the entry is `g::<group bits>` and the mask nil. `gid` is the group that matched.
    case group(gid: UInt32, entry: ACLEntry, mask: Perm?)
    /// Groups matched (`matched`: the owning group and/or named group entries) but none holds all wanted bits:
    /// denied, OTHER is not consulted.
    case groupClassLacks(matched: [UInt32])
    /// Neither owner, named user nor a group: the other bits decide.
    case other(Perm)
    /// uid 0 with CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH overrides the denial.
    case rootBypass
    /// uid 0 cannot execute a regular file that has no x bit at all.
    case rootNeedsExecuteBit
}

/// The kernel's verdict on one operation.
public struct AccessDecision: Hashable, Sendable, CustomStringConvertible {
    public var operation: AccessOperation
    public var allowed: Bool
    /// For a denial: the rule that denied the failing check. For an allowance: the rule of the last check.
    public var reason: AccessReason
    /// The kernel check that failed (for `listDirectory`, `r` or `x`), nil when allowed.
    public var failedCheck: Perm?
    /// The inode has an access ACL but its mode has no group bits (mask `---`): the kernel skips the ACL entirely and
    /// decides by owner/group/other bits (`acl_permission_check`).
    public var aclIgnored: Bool

    public var description: String {
        let verdict = allowed ? "allowed" : "denied"
        var text = "\(operation.verb): \(verdict) by \(reason.text)"
        if let failedCheck, operation.checks.count > 1 { text += " (check \(failedCheck))" }
        if aclIgnored { text += " (ACL ignored: mask ---)" }
        return text
    }
}

extension AccessReason {
    /// For messages: `owner bits rw-`, `user:1000:rwx masked by r-x`, `group 27 (g:27:r--)`.
    public var text: String {
        switch self {
        case .owner(let p): return "owner bits \(p)"
        case let .namedUser(e, mask):
            return "ACL entry \(e)" + (mask.map { $0.isSuperset(of: e.perms) ? "" : " limited by mask \($0)" } ?? "")
        case let .group(gid, e, mask):
            let what = e.tag == .groupObj && mask == nil ? "group \(gid) bits \(e.perms)" : "ACL entry \(e) (group \(gid))"
            return what + (mask.map { $0.isSuperset(of: e.perms) ? "" : " limited by mask \($0)" } ?? "")
        case .groupClassLacks(let matched):
            return "groups " + matched.map(String.init).joined(separator: ",") + " (no single matching group entry holds the bits)"
        case .other(let p): return "other bits \(p)"
        case .rootBypass: return "root's capabilities (CAP_DAC_OVERRIDE)"
        case .rootNeedsExecuteBit: return "no execute bit for root"
        }
    }
}

/// Kernel-exact permission evaluation: fs/namei.c `acl_permission_check` + fs/posix_acl.c `posix_acl_permission`,
/// then `generic_permission`'s capability override. Read-only mounts, immutable files and LSMs are out of scope.
public enum AccessEvaluator {
    /// Evaluates one operation as the separate kernel checks it consists of.
    public static func evaluate(_ operation: AccessOperation, identity: ContainerIdentity, inode: InodeSecurity) -> AccessDecision {
        var last: (allowed: Bool, reason: AccessReason, aclIgnored: Bool) = (true, .rootBypass, false)
        for want in operation.checks {
            last = check(want, identity: identity, inode: inode)
            if !last.allowed {
                return AccessDecision(operation: operation, allowed: false, reason: last.reason, failedCheck: want,
                                      aclIgnored: last.aclIgnored)
            }
        }
        return AccessDecision(operation: operation, allowed: true, reason: last.reason, failedCheck: nil,
                              aclIgnored: last.aclIgnored)
    }

    /// Evaluates a file system object for several operations; convenience for probes.
    public static func evaluate(_ operations: [AccessOperation], identity: ContainerIdentity, inode: InodeSecurity) -> [AccessDecision] {
        operations.map { evaluate($0, identity: identity, inode: inode) }
    }

    /// One `inode_permission(want)` call.
    public static func check(_ want: Perm, identity id: ContainerIdentity, inode: InodeSecurity)
        -> (allowed: Bool, reason: AccessReason, aclIgnored: Bool) {
        let dac = dacCheck(want, identity: id, inode: inode)
        if dac.allowed || !id.bypassesDAC { return dac }
        // generic_permission: capabilities only for inodes whose owner and group are mapped into the caller's userns.
        if let scope = id.bypassScope, !scope.covers(uid: inode.uid, gid: inode.gid) { return dac }
        if inode.isDirectory { return (true, .rootBypass, dac.aclIgnored) }
        if want.contains(.x) && inode.mode & 0o111 == 0 { return (false, .rootNeedsExecuteBit, dac.aclIgnored) }
        return (true, .rootBypass, dac.aclIgnored)
    }

    /// `acl_permission_check` (+ `check_acl` → `posix_acl_permission`): DAC only, no capabilities.
    static func dacCheck(_ want: Perm, identity id: ContainerIdentity, inode: InodeSecurity)
        -> (allowed: Bool, reason: AccessReason, aclIgnored: Bool) {
        let mode = inode.mode
        // Are we the owner? Then the owner bits decide, ACL or not.
        if id.uid == inode.uid {
            let bits = Perm(mode: mode, shift: 6)
            return (bits.isSuperset(of: want), .owner(bits), false)
        }
        var aclIgnored = false
        if let acl = inode.acl, !acl.isEmpty {
            // IS_POSIXACL(inode) && (mode & S_IRWXG): with no group bits the ACL is not consulted at all.
            if mode & 0o070 != 0 {
                return aclCheck(want, identity: id, inode: inode, acl: acl)
            }
            aclIgnored = true
        }
        let groupBits = Perm(mode: mode, shift: 3)
        if id.inGroup(inode.gid) {
            return (groupBits.isSuperset(of: want), .group(gid: inode.gid, entry: ACLEntry(.groupObj, groupBits), mask: nil),
                    aclIgnored)
        }
        let otherBits = Perm(mode: mode, shift: 0)
        return (otherBits.isSuperset(of: want), .other(otherBits), aclIgnored)
    }

    /// `posix_acl_permission` for a non-owner.
    static func aclCheck(_ want: Perm, identity id: ContainerIdentity, inode: InodeSecurity, acl: FileACL)
        -> (allowed: Bool, reason: AccessReason, aclIgnored: Bool) {
        let entries = acl.entries
        var matched: [UInt32] = []
        func masked(after index: Int) -> Perm? {
            var j = index + 1
            while j < entries.count {
                if entries[j].tag == .mask { return entries[j].perms }
                j += 1
            }
            return nil
        }
        for (i, entry) in entries.enumerated() {
            switch entry.tag {
            case .userObj:
                // Owner handled before (uid != owner here).
                continue
            case .user(let u):
                guard u == id.uid else { continue }
                let mask = masked(after: i)
                let effective = entry.perms.intersection(mask ?? .rwx)
                return (effective.isSuperset(of: want), .namedUser(entry, mask: mask), false)
            case .groupObj, .group:
                let g = entry.tag.id ?? inode.gid
                guard id.inGroup(g) else { continue }
                matched.append(g)
                guard entry.perms.isSuperset(of: want) else { continue }
                let mask = masked(after: i)
                let effective = entry.perms.intersection(mask ?? .rwx)
                return (effective.isSuperset(of: want), .group(gid: g, entry: entry, mask: mask), false)
            case .mask:
                continue
            case .other:
                if !matched.isEmpty { return (false, .groupClassLacks(matched: matched), false) }
                return (entry.perms.isSuperset(of: want), .other(entry.perms), false)
            }
        }
        // No OTHER entry: the kernel answers EIO; treat as denied.
        return (false, matched.isEmpty ? .other([]) : .groupClassLacks(matched: matched), false)
    }
}

extension AccessEvaluator {
    /// Evaluates a single path (not following a final symlink) for `operations`: for `folder.access` and the
    /// read-file-write-parent need (`[.readFile]` on the file, `[.createInDirectory]` on its directory).
    public static func evaluate(path: String, operations: [AccessOperation], identity: ContainerIdentity) throws
        -> (acls: PathACLs, decisions: [AccessDecision]) {
        let acls = try FileACL.read(path: path)
        return (acls, evaluate(operations, identity: identity, inode: InodeSecurity(acls)))
    }
}
