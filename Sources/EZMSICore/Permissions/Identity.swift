/// The identity a container process has, and how it maps to host ids.
///
/// Resolution follows moby's `GetExecUser` (github.com/moby/sys/user): `--user` (or the image's `Config.User`) is
/// `user[:group]`; the user is looked up in the IMAGE's /etc/passwd (numeric → by uid, else by name; first match
/// wins); a numeric uid without an entry is used as is (gid 0, HOME /); a name without an entry is an error. The
/// supplementary groups are the /etc/group entries listing the matched user name, but only when no group is given
/// (`user:group` sets the gid and no supplementary groups). `--group-add` appends groups (names through /etc/group).

/// A contiguous id mapping: container ids `containerStart ..< containerStart+count` are host ids `hostStart ...`.
public struct IDRange: Hashable, Sendable, Codable {
    public var containerStart: UInt32
    public var hostStart: UInt32
    public var count: UInt32

    public init(containerStart: UInt32, hostStart: UInt32, count: UInt32) {
        self.containerStart = containerStart
        self.hostStart = hostStart
        self.count = count
    }
}

/// A user-namespace id map (one of uid_map / gid_map).
public struct IDMap: Hashable, Sendable, Codable {
    public var ranges: [IDRange]

    public init(_ ranges: [IDRange]) { self.ranges = ranges }

    /// Container id → host id, nil when unmapped.
    public func host(_ id: UInt32) -> UInt32? {
        for r in ranges where id >= r.containerStart && UInt64(id) < UInt64(r.containerStart) + UInt64(r.count) {
            return UInt32(UInt64(r.hostStart) + UInt64(id - r.containerStart))
        }
        return nil
    }

    /// Host id → container id, nil when unmapped (the container sees it as `nobody`, 65534).
    public func container(_ hostID: UInt32) -> UInt32? {
        for r in ranges where hostID >= r.hostStart && UInt64(hostID) < UInt64(r.hostStart) + UInt64(r.count) {
            return UInt32(UInt64(r.containerStart) + UInt64(hostID - r.hostStart))
        }
        return nil
    }

    public func mapsHost(_ hostID: UInt32) -> Bool { container(hostID) != nil }
}

/// The inodes a capability-holding process may override DAC on: those whose owner AND group are mapped into its user
/// namespace (`privileged_wrt_inode_uidgid`). Host ids.
public struct DACScope: Hashable, Sendable {
    public var uids: IDMap
    public var gids: IDMap

    public func covers(uid: UInt32, gid: UInt32) -> Bool { uids.mapsHost(uid) && gids.mapsHost(gid) }
}

public struct ContainerIdentity: Hashable, Sendable, CustomStringConvertible {
    public var uid: UInt32
    public var gid: UInt32
    /// Supplementary groups (not including `gid` unless listed).
    public var groups: [UInt32]
    /// uid 0 with its capabilities: CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH apply.
    public var bypassesDAC: Bool
    /// When set, the bypass only holds for inodes whose owner and group are mapped into the container's user
    /// namespace (userns-remap, rootless). nil = every inode (no user namespace).
    public var bypassScope: DACScope?
    /// How the identity was obtained, for messages: `image user "openmsi"`, `--user 1234:5678`, `… mapped by userns-remap`.
    public var source: String
    /// The passwd entry's name, when the user matched one.
    public var userName: String?
    /// HOME as the container gets it (passwd entry, or `/` without one).
    public var home: String?

    public init(uid: UInt32, gid: UInt32, groups: [UInt32] = [], bypassesDAC: Bool? = nil, bypassScope: DACScope? = nil,
                source: String = "", userName: String? = nil, home: String? = nil) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.bypassesDAC = bypassesDAC ?? (uid == 0)
        self.bypassScope = bypassScope
        self.source = source
        self.userName = userName
        self.home = home
    }

    /// `in_group_p`: the primary gid or a supplementary group.
    @inline(__always)
    public func inGroup(_ g: UInt32) -> Bool {
        if g == gid { return true }
        for s in groups where s == g { return true }
        return false
    }

    /// All groups, primary first, without duplicates.
    public var allGroups: [UInt32] {
        var out = [gid]
        for g in groups where !out.contains(g) { out.append(g) }
        return out
    }

    /// `uid=1000 gid=1000 groups=27`
    public var description: String {
        var text = "uid=\(uid)" + (userName.map { "(\($0))" } ?? "") + " gid=\(gid)"
        if !groups.isEmpty { text += " groups=" + groups.map(String.init).joined(separator: ",") }
        return text
    }
}

public enum IdentityError: Error, Equatable, Sendable, CustomStringConvertible {
    /// docker: `unable to find user X: no matching entries in passwd file` (exit 125).
    case noSuchUser(String)
    /// docker: `unable to find group X: no matching entries in group file`.
    case noSuchGroup(String)
    case outOfRange(String)
    /// A container id has no host id under the user-namespace map.
    case unmapped(kind: String, id: UInt32)
    /// No /etc/subuid or /etc/subgid range for the remap or rootless user.
    case noSubordinateRange(file: String, user: String)

    public var description: String {
        switch self {
        case .noSuchUser(let u): return "unable to find user \(u): no matching entries in passwd file"
        case .noSuchGroup(let g): return "unable to find group \(g): no matching entries in group file"
        case .outOfRange(let s): return "\(s): uids and gids must be in range 0-2147483647"
        case let .unmapped(kind, id): return "container \(kind) \(id) has no host \(kind) under the user-namespace map"
        case let .noSubordinateRange(file, user): return "\(file) has no range for \(user)"
        }
    }
}

/// One /etc/passwd line.
public struct PasswdEntry: Hashable, Sendable {
    public var name: String
    public var uid: Int
    public var gid: Int
    public var home: String
}

/// One /etc/group line.
public struct GroupEntry: Hashable, Sendable {
    public var name: String
    public var gid: Int
    public var members: [String]
}

public enum IdentityResolver {
    static let maxID = 2_147_483_647

    /// runc's/moby's parse (libcontainer/user): fields split at ':', integers through Atoi (garbage → 0), lines
    /// trimmed, empty lines skipped, no comment syntax.
    public static func parsePasswd(_ text: String) -> [PasswdEntry] {
        text.split(whereSeparator: \.isNewline).compactMap { raw in
            let line = raw.trimmedOf(" \t\r\u{0B}\u{0C}")
            guard !line.isEmpty else { return nil }
            let f = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            func field(_ i: Int) -> String { i < f.count ? f[i] : "" }
            return PasswdEntry(name: field(0), uid: atoi(field(2)), gid: atoi(field(3)), home: field(5))
        }
    }

    public static func parseGroup(_ text: String) -> [GroupEntry] {
        // Unlike passwd lines, group lines are not trimmed (runc's ParseGroupFilter); comments are not special.
        text.split(whereSeparator: \.isNewline).compactMap { raw in
            let line = String(raw)
            guard !line.isEmpty else { return nil }
            let f = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            func field(_ i: Int) -> String { i < f.count ? f[i] : "" }
            let members = field(3).split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            return GroupEntry(name: field(0), gid: atoi(field(2)), members: members)
        }
    }

    /// Go's strconv.Atoi (decimal, optional sign) or nil.
    static func number(_ s: String) -> Int? {
        guard !s.isEmpty else { return nil }
        var digits = Substring(s)
        var negative = false
        if digits.first == "+" || digits.first == "-" { negative = digits.first == "-"; digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(digits) else { return nil }
        return negative ? -v : v
    }

    static func atoi(_ s: String) -> Int { number(s) ?? 0 }

    /// Resolves `spec` (`""` = the image default, root), `name`, `uid`, `name:group`, `uid:gid`) against the image's
    /// /etc/passwd and /etc/group texts (nil = the file does not exist in the image).
    public static func resolve(spec: String, passwd: String?, group: String?, groupAdd: [String] = [],
                               source: String? = nil) throws -> ContainerIdentity {
        let userArg: String
        let groupArg: String
        if let colon = spec.firstIndex(of: ":") {
            userArg = String(spec[..<colon])
            // moby's parseLine keeps only the second field: "a:b:c" → group "b".
            groupArg = String(spec[spec.index(after: colon)...].split(separator: ":", omittingEmptySubsequences: false).first ?? "")
        } else {
            userArg = spec
            groupArg = ""
        }
        let uidArg = number(userArg)
        let gidArg = number(groupArg)

        var uid = 0, gid = 0
        var home: String? = "/"
        var matchedName: String?
        let users = passwd.map(parsePasswd) ?? []
        let match = users.first { u in
            if userArg.isEmpty { return u.uid == 0 }
            if let uidArg { return u.uid == uidArg }
            return u.name == userArg
        }
        if let match {
            matchedName = match.name
            uid = match.uid
            gid = match.gid
            home = match.home
        } else if !userArg.isEmpty {
            guard let uidArg else { throw IdentityError.noSuchUser(userArg) }
            guard (0...maxID).contains(uidArg) else { throw IdentityError.outOfRange(spec) }
            uid = uidArg
        }

        var supplementary: [UInt32] = []
        let groups = group.map(parseGroup) ?? []
        if !groupArg.isEmpty {
            if let g = groups.first(where: { g in gidArg.map { g.gid == $0 } ?? (g.name == groupArg) }) {
                gid = g.gid
            } else {
                guard let gidArg else { throw IdentityError.noSuchGroup(groupArg) }
                guard (0...maxID).contains(gidArg) else { throw IdentityError.outOfRange(spec) }
                gid = gidArg
            }
        } else if let matchedName {
            supplementary = groups.filter { $0.members.contains(matchedName) }.map { UInt32(truncatingIfNeeded: $0.gid) }
        }
        // GetAdditionalGroups: a group entry by name or by its gid's text, else a numeric gid as is.
        for added in groupAdd {
            let gid: UInt32
            if let g = groups.first(where: { $0.name == added || String($0.gid) == added }) {
                gid = UInt32(truncatingIfNeeded: g.gid)
            } else if let n = number(added) {
                guard (0...maxID).contains(n) else { throw IdentityError.outOfRange(added) }
                gid = UInt32(n)
            } else {
                throw IdentityError.noSuchGroup(added)
            }
            if !supplementary.contains(gid) { supplementary.append(gid) }
        }
        let description = source ?? (spec.isEmpty ? "image default user (root)" : "user \"\(spec)\"")
        return ContainerIdentity(uid: UInt32(truncatingIfNeeded: uid), gid: UInt32(truncatingIfNeeded: gid),
                                 groups: supplementary, source: description, userName: matchedName, home: home)
    }
}

// MARK: - Mapping to host ids

/// One line of /etc/subuid or /etc/subgid.
public struct SubordinateRange: Hashable, Sendable {
    public var owner: String
    public var start: UInt32
    public var count: UInt32
}

/// How container ids become host ids on the daemon's host.
public struct IDMapping: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable {
        case none
        case usernsRemap = "userns-remap"
        case rootless
    }

    public var kind: Kind
    public var uids: IDMap
    public var gids: IDMap

    /// No user namespace: ids are used as they are.
    public static let identity = IDMapping(kind: .none, uids: IDMap([]), gids: IDMap([]))

    public static func parseSubordinate(_ text: String) -> [SubordinateRange] {
        text.split(whereSeparator: \.isNewline).compactMap { raw in
            let line = raw.trimmedOf(" \t\r")
            guard !line.isEmpty, !line.hasPrefix("#") else { return nil }
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count == 3, let start = UInt32(f[1]), let count = UInt32(f[2]), count > 0 else { return nil }
            return SubordinateRange(owner: String(f[0]), start: start, count: count)
        }
    }

    /// The ranges of a user, as moby's idtools looks them up: lines keyed by the numeric uid if there are any,
    /// else lines keyed by the name.
    static func ranges(in text: String, user: String, userID: UInt32?) -> [SubordinateRange] {
        let all = parseSubordinate(text)
        if let userID {
            let byID = all.filter { $0.owner == String(userID) }
            if !byID.isEmpty { return byID }
        }
        return all.filter { $0.owner == user }
    }

    /// userns-remap: container n → the n-th id of the remap user's subordinate ranges (sorted by start, concatenated).
    /// `user` is the daemon's `userns-remap` user (`default` means `dockremap`).
    public static func usernsRemap(user: String, userID: UInt32? = nil, subuid: String, subgid: String) throws -> IDMapping {
        let name = user == "default" ? "dockremap" : user
        func map(_ text: String, _ file: String) throws -> IDMap {
            let ranges = Self.ranges(in: text, user: name, userID: userID).sorted { $0.start < $1.start }
            guard !ranges.isEmpty else { throw IdentityError.noSubordinateRange(file: file, user: name) }
            var next: UInt32 = 0
            return IDMap(ranges.map { r in
                defer { next &+= r.count }
                return IDRange(containerStart: next, hostStart: r.start, count: r.count)
            })
        }
        return IDMapping(kind: .usernsRemap, uids: try map(subuid, "/etc/subuid"), gids: try map(subgid, "/etc/subgid"))
    }

    /// Rootless Docker: container 0 → the daemon user's host uid/gid; n ≥ 1 → the n-th id of its subordinate ranges
    /// (`subuid start + n − 1` for a single range).
    public static func rootless(hostUID: UInt32, hostGID: UInt32, user: String, subuid: String, subgid: String) throws -> IDMapping {
        func map(_ hostID: UInt32, _ text: String, _ file: String) throws -> IDMap {
            let ranges = Self.ranges(in: text, user: user, userID: hostUID)
            guard !ranges.isEmpty else { throw IdentityError.noSubordinateRange(file: file, user: user) }
            var out = [IDRange(containerStart: 0, hostStart: hostID, count: 1)]
            var next: UInt32 = 1
            for r in ranges {
                out.append(IDRange(containerStart: next, hostStart: r.start, count: r.count))
                next &+= r.count
            }
            return IDMap(out)
        }
        return IDMapping(kind: .rootless, uids: try map(hostUID, subuid, "/etc/subuid"),
                         gids: try map(hostGID, subgid, "/etc/subgid"))
    }

    public func hostUID(_ containerUID: UInt32) throws -> UInt32 {
        if kind == .none { return containerUID }
        guard let h = uids.host(containerUID) else { throw IdentityError.unmapped(kind: "uid", id: containerUID) }
        return h
    }

    public func hostGID(_ containerGID: UInt32) throws -> UInt32 {
        if kind == .none { return containerGID }
        guard let h = gids.host(containerGID) else { throw IdentityError.unmapped(kind: "gid", id: containerGID) }
        return h
    }

    /// The identity as the host kernel sees it on the bind-mounted files. Container root keeps its capabilities
    /// inside the user namespace, so its DAC bypass is limited to inodes whose owner and group are mapped.
    public func hostIdentity(_ c: ContainerIdentity) throws -> ContainerIdentity {
        guard kind != .none else { return c }
        var h = c
        h.uid = try hostUID(c.uid)
        h.gid = try hostGID(c.gid)
        h.groups = try c.groups.map(hostGID)
        if c.bypassesDAC { h.bypassScope = DACScope(uids: uids, gids: gids) }
        h.source = c.source + ", mapped by \(kind.rawValue) to host uid \(h.uid) gid \(h.gid)"
        return h
    }
}

extension StringProtocol {
    fileprivate func trimmedOf(_ set: String) -> String {
        var s = String(self)[...]
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
