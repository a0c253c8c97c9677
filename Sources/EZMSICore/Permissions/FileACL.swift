import CACL
import Glibc

/// The tag of one POSIX ACL entry. Raw values are the kernel's and libacl's (`ACL_USER_OBJ` … `ACL_OTHER`).
public enum ACLTag: Hashable, Sendable, Comparable, CustomStringConvertible {
    case userObj
    case user(UInt32)
    case groupObj
    case group(UInt32)
    case mask
    case other

    public var rawTag: UInt16 {
        switch self {
        case .userObj: return 0x01
        case .user: return 0x02
        case .groupObj: return 0x04
        case .group: return 0x08
        case .mask: return 0x10
        case .other: return 0x20
        }
    }

    /// The qualifier of a named entry.
    public var id: UInt32? {
        switch self {
        case .user(let id), .group(let id): return id
        default: return nil
        }
    }

    public init?(rawTag: UInt16, id: UInt32) {
        switch rawTag {
        case 0x01: self = .userObj
        case 0x02: self = .user(id)
        case 0x04: self = .groupObj
        case 0x08: self = .group(id)
        case 0x10: self = .mask
        case 0x20: self = .other
        default: return nil
        }
    }

    /// The kernel's order: USER_OBJ, USER (by uid), GROUP_OBJ, GROUP (by gid), MASK, OTHER.
    public static func < (a: ACLTag, b: ACLTag) -> Bool {
        if a.rawTag != b.rawTag { return a.rawTag < b.rawTag }
        return (a.id ?? 0) < (b.id ?? 0)
    }

    /// `u::`, `u:1000:`, `g::`, `g:27:`, `m::`, `o::` (the short, numeric form of `getfacl -n`).
    public var description: String {
        switch self {
        case .userObj: return "u::"
        case .user(let id): return "u:\(id):"
        case .groupObj: return "g::"
        case .group(let id): return "g:\(id):"
        case .mask: return "m::"
        case .other: return "o::"
        }
    }
}

public struct ACLEntry: Hashable, Sendable, CustomStringConvertible {
    public var tag: ACLTag
    public var perms: Perm

    public init(_ tag: ACLTag, _ perms: Perm) {
        self.tag = tag
        self.perms = perms
    }

    /// `u:1000:rwx`
    public var description: String { tag.description + perms.description }
}

/// Which of a path's two ACLs.
public enum ACLType: String, Sendable, Hashable {
    case access
    case `default`

    var xattrName: String { self == .access ? Xattr.accessName : Xattr.defaultName }
    var libaclType: acl_type_t { acl_type_t(self == .access ? ACL_TYPE_ACCESS : ACL_TYPE_DEFAULT) }
}

/// Why an ACL could not be read, decoded or used.
public struct ACLError: Error, Equatable, Sendable, CustomStringConvertible {
    public var operation: String
    public var path: String?
    /// errno, or 0 for a format error.
    public var code: Int32
    public var detail: String?

    public init(_ operation: String, path: String? = nil, code: Int32, detail: String? = nil) {
        self.operation = operation
        self.path = path
        self.code = code
        self.detail = detail
    }

    public var description: String {
        var text = operation
        if let path { text += " \(path)" }
        if code != 0 { text += ": " + String(cString: strerror(code)) }
        if let detail { text += ": " + detail }
        return text
    }
}

/// A POSIX ACL: its entries in the kernel's order.
/// An access ACL always exists conceptually: a file without the xattr has the minimal ACL of its mode bits
/// (`FileACL(mode:)`). A default ACL exists only on directories that have one.
public struct FileACL: Hashable, Sendable, CustomStringConvertible {
    /// Sorted as the kernel stores them (see `ACLTag.<`).
    public private(set) var entries: [ACLEntry]

    public init(entries: [ACLEntry]) {
        self.entries = entries.sorted { $0.tag < $1.tag }
    }

    /// The minimal (3-entry) ACL equivalent to the permission bits of `mode`.
    public init(mode: UInt32) {
        entries = [ACLEntry(.userObj, Perm(mode: mode, shift: 6)), ACLEntry(.groupObj, Perm(mode: mode, shift: 3)),
                   ACLEntry(.other, Perm(mode: mode, shift: 0))]
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// Only USER_OBJ, GROUP_OBJ and OTHER: the same as mode bits.
    public var isMinimal: Bool { !entries.contains { $0.tag.id != nil || $0.tag == .mask } }

    public func perms(_ tag: ACLTag) -> Perm? { entries.first { $0.tag == tag }?.perms }

    public var userObj: Perm { perms(.userObj) ?? [] }
    public var groupObj: Perm { perms(.groupObj) ?? [] }
    public var other: Perm { perms(.other) ?? [] }
    public var mask: Perm? { perms(.mask) }

    /// The bits the mode's group triplet shows: the mask if there is one, else GROUP_OBJ.
    public var groupClass: Perm { mask ?? groupObj }

    /// What an entry actually grants: named entries and GROUP_OBJ are limited by the mask; USER_OBJ and OTHER not.
    public func effective(_ entry: ACLEntry) -> Perm {
        switch entry.tag {
        case .user, .group, .groupObj: return entry.perms.intersection(mask ?? .rwx)
        default: return entry.perms
        }
    }

    /// The permission bits (0o777 part) a file with this access ACL has; other mode bits are kept from `mode`.
    public func mode(keeping mode: UInt32) -> UInt32 {
        (mode & ~0o777) | UInt32(userObj.rawValue) << 6 | UInt32(groupClass.rawValue) << 3 | UInt32(other.rawValue)
    }

    /// Sets (or adds) one entry, keeping the kernel order.
    public mutating func set(_ tag: ACLTag, _ perms: Perm) {
        if let i = entries.firstIndex(where: { $0.tag == tag }) {
            entries[i].perms = perms
        } else {
            self = FileACL(entries: entries + [ACLEntry(tag, perms)])
        }
    }

    public mutating func remove(_ tag: ACLTag) { entries.removeAll { $0.tag == tag } }

    /// Recomputes the mask as the union of the group class (GROUP_OBJ and named entries), as `acl_calc_mask` does.
    /// Adds a mask only when there are named entries or one exists already.
    public mutating func recalculateMask() {
        let classEntries = entries.filter { $0.tag.id != nil || $0.tag == .groupObj }
        guard mask != nil || entries.contains(where: { $0.tag.id != nil }) else { return }
        set(.mask, classEntries.reduce(Perm()) { $0.union($1.perms) })
    }

    // MARK: Validity

    /// Why the kernel (and `acl_valid`) would reject this ACL, or nil when it is valid. An empty ACL is valid only as a
    /// default ACL ("no default ACL").
    public var problem: String? {
        if entries.isEmpty { return "empty ACL" }
        var seen = Set<ACLTag>()
        for entry in entries {
            if !seen.insert(entry.tag).inserted { return "duplicate entry \(entry.tag)" }
        }
        for required in [ACLTag.userObj, .groupObj, .other] where !seen.contains(required) {
            return "missing \(required) entry"
        }
        if entries.contains(where: { $0.tag.id != nil }) && !seen.contains(.mask) {
            return "named entries without a mask entry"
        }
        return nil
    }

    // MARK: Text

    /// The short numeric text of `getfacl -n` on one line: `u::rwx,u:1000:rwx,g::r-x,m::rwx,o::---`.
    public var text: String { entries.map(\.description).joined(separator: ",") }

    public var description: String { text }

    /// Parses the short or long text form (`u::rwx`, `user:1000:rwx`, `default:` prefixes are rejected), entries
    /// separated by commas, blanks or newlines; `#` starts a comment. Ids must be numeric.
    public init(text: String) throws {
        var parsed: [ACLEntry] = []
        for line in text.split(whereSeparator: { $0 == "\n" }) {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            for item in content.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) {
                let parts = item.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 3, let perms = Perm(text: parts[2]) else {
                    throw ACLError("parse ACL", code: 0, detail: "bad entry '\(item)'")
                }
                let qualifier = parts[1]
                let id: UInt32?
                if qualifier.isEmpty { id = nil } else if let n = UInt32(qualifier) { id = n } else {
                    throw ACLError("parse ACL", code: 0, detail: "non-numeric id in '\(item)'")
                }
                let tag: ACLTag
                switch (parts[0], id) {
                case ("u", nil), ("user", nil): tag = .userObj
                case ("u", let n?), ("user", let n?): tag = .user(n)
                case ("g", nil), ("group", nil): tag = .groupObj
                case ("g", let n?), ("group", let n?): tag = .group(n)
                case ("m", nil), ("mask", nil): tag = .mask
                case ("o", nil), ("other", nil): tag = .other
                default: throw ACLError("parse ACL", code: 0, detail: "bad entry '\(item)'")
                }
                parsed.append(ACLEntry(tag, perms))
            }
        }
        self.init(entries: parsed)
    }

    // MARK: The xattr format

    static let xattrVersion: UInt32 = 2
    static let undefinedID: UInt32 = .max

    /// Decodes `system.posix_acl_access` / `system.posix_acl_default`: little-endian u32 version 2, then 8-byte entries
    /// `{u16 tag, u16 perm, u32 id}`. An attribute of just the header is an empty ACL.
    public init(xattr bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count >= 4, (bytes.count - 4) % 8 == 0 else {
            throw ACLError("decode ACL xattr", code: 0, detail: "length \(bytes.count) is not 4 + 8n")
        }
        let version = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        guard version == FileACL.xattrVersion else {
            throw ACLError("decode ACL xattr", code: 0, detail: "version \(version), expected 2")
        }
        let count = (bytes.count - 4) / 8
        var list: [ACLEntry] = []
        list.reserveCapacity(count)
        for i in 0..<count {
            let base = 4 + i * 8
            let tag = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: base, as: UInt16.self))
            let perm = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: base + 2, as: UInt16.self))
            let id = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: base + 4, as: UInt32.self))
            guard let t = ACLTag(rawTag: tag, id: id) else {
                throw ACLError("decode ACL xattr", code: 0, detail: "unknown tag 0x\(String(tag, radix: 16))")
            }
            guard perm & ~7 == 0 else {
                throw ACLError("decode ACL xattr", code: 0, detail: "bad permission bits 0x\(String(perm, radix: 16))")
            }
            list.append(ACLEntry(t, Perm(rawValue: perm)))
        }
        entries = list
        // The kernel stores them sorted; sort anyway so a hand-made attribute evaluates in kernel order.
        if !list.isSorted(by: { $0.tag < $1.tag }) { entries = list.sorted { $0.tag < $1.tag } }
    }

    public init(xattr bytes: [UInt8]) throws {
        try self = bytes.withUnsafeBytes { try FileACL(xattr: $0) }
    }

    /// The attribute value, entries sorted as the kernel requires.
    public var xattr: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4 + entries.count * 8)
        func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func put16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put32(FileACL.xattrVersion)
        for entry in entries.sorted(by: { $0.tag < $1.tag }) {
            put16(entry.tag.rawTag)
            put16(entry.perms.rawValue)
            put32(entry.tag.id ?? FileACL.undefinedID)
        }
        return out
    }
}

extension Array where Element == ACLEntry {
    fileprivate func isSorted(by less: (ACLEntry, ACLEntry) -> Bool) -> Bool {
        var i = 1
        while i < count { if less(self[i], self[i - 1]) { return false }; i += 1 }
        return true
    }
}

// MARK: - Reading and writing ACLs of paths and descriptors (the xattr route, no symlink following)

/// Where an access ACL came from.
public enum ACLOrigin: String, Sendable, Hashable {
    /// The `system.posix_acl_access` attribute.
    case stored
    /// No attribute: the mode bits are the ACL.
    case modeBits = "mode-bits"
    /// The file system has no ACL support (ENOTSUP/EOPNOTSUPP): mode bits.
    case unsupported
}

/// The ACLs of one file system object.
public struct PathACLs: Sendable, Hashable {
    public var access: FileACL
    public var origin: ACLOrigin
    /// Directories only; nil when there is none.
    public var defaultACL: FileACL?
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
}

extension FileACL {
    /// Result of reading one ACL attribute: the ACL, absent (ENODATA), or not supported by the file system.
    enum Raw {
        case acl(FileACL)
        case absent
        case unsupported
    }

    static func interpret(_ bytes: [UInt8]?, operation: String, path: String?) throws -> Raw {
        guard let bytes else {
            let e = errno
            if e == ENODATA { return .absent }
            if e == EOPNOTSUPP || e == ENOTSUP { return .unsupported }
            throw ACLError(operation, path: path, code: e)
        }
        let acl = try FileACL(xattr: bytes)
        return acl.isEmpty ? .absent : .acl(acl)
    }

    static func readRaw(path: String, type: ACLType) throws -> Raw {
        let bytes = Xattr.read { Xattr.lget(path, type.xattrName, $0, $1) }
        return try interpret(bytes, operation: "read \(type.rawValue) ACL of", path: path)
    }

    static func readRaw(fd: Int32, type: ACLType) throws -> Raw {
        let bytes = Xattr.read { Xattr.fget(fd, type.xattrName, $0, $1) }
        return try interpret(bytes, operation: "read \(type.rawValue) ACL of descriptor", path: nil)
    }

    /// The ACLs of `path` without following a final symlink (a symlink has mode-bit "ACLs" of its own and none is
    /// read from its target). Falls back to mode bits when there is no ACL or no ACL support.
    public static func read(path: String) throws -> PathACLs {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw ACLError("stat", path: path, code: errno) }
        let isLink = (st.st_mode & S_IFMT) == S_IFLNK
        let isDir = (st.st_mode & S_IFMT) == S_IFDIR
        let access: Raw = isLink ? .absent : try readRaw(path: path, type: .access)
        var defaultACL: FileACL?
        if isDir, case .acl(let d) = try readRaw(path: path, type: .default) { defaultACL = d }
        return PathACLs(access: access, mode: st.st_mode, uid: st.st_uid, gid: st.st_gid, defaultACL: defaultACL)
    }

    /// The same for an open descriptor (never follows anything: the descriptor is the object).
    public static func read(fd: Int32) throws -> PathACLs {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ACLError("fstat descriptor", code: errno) }
        let access = try readRaw(fd: fd, type: .access)
        var defaultACL: FileACL?
        if (st.st_mode & S_IFMT) == S_IFDIR, case .acl(let d) = try readRaw(fd: fd, type: .default) { defaultACL = d }
        return PathACLs(access: access, mode: st.st_mode, uid: st.st_uid, gid: st.st_gid, defaultACL: defaultACL)
    }

    /// Writes this ACL to an open descriptor (fsetxattr). Validates first: the kernel would answer EINVAL.
    /// Writing an access ACL makes the kernel rewrite the mode's permission bits (group bits = mask).
    public func write(fd: Int32, type: ACLType) throws {
        if let problem, !(type == .default && isEmpty) {
            throw ACLError("write \(type.rawValue) ACL", code: EINVAL, detail: problem)
        }
        if type == .default && isEmpty {
            if Xattr.fremove(fd, type.xattrName) != 0 && errno != ENODATA {
                throw ACLError("remove default ACL", code: errno)
            }
            return
        }
        let value = xattr
        let rc = value.withUnsafeBytes { Xattr.fset(fd, type.xattrName, $0.baseAddress, $0.count, 0) }
        if rc != 0 { throw ACLError("write \(type.rawValue) ACL", code: errno) }
    }

    /// Writes this ACL to `path` without following a final symlink (lsetxattr).
    public func write(path: String, type: ACLType) throws {
        if let problem, !(type == .default && isEmpty) {
            throw ACLError("write \(type.rawValue) ACL", path: path, code: EINVAL, detail: problem)
        }
        if type == .default && isEmpty {
            if Xattr.lremove(path, type.xattrName) != 0 && errno != ENODATA {
                throw ACLError("remove default ACL of", path: path, code: errno)
            }
            return
        }
        let value = xattr
        let rc = value.withUnsafeBytes { Xattr.lset(path, type.xattrName, $0.baseAddress, $0.count, 0) }
        if rc != 0 { throw ACLError("write \(type.rawValue) ACL of", path: path, code: errno) }
    }
}

extension PathACLs {
    init(access raw: FileACL.Raw, mode: UInt32, uid: UInt32, gid: UInt32, defaultACL: FileACL?) {
        switch raw {
        case .acl(let a): access = a; origin = .stored
        case .absent: access = FileACL(mode: mode); origin = .modeBits
        case .unsupported: access = FileACL(mode: mode); origin = .unsupported
        }
        self.defaultACL = defaultACL
        self.mode = mode
        self.uid = uid
        self.gid = gid
    }
}

// MARK: - libacl (the reference implementation; text and validity)

extension FileACL {
    /// Reads an ACL with libacl's `acl_get_file`, which FOLLOWS symlinks and synthesizes the minimal ACL from the mode.
    /// Used as the reference in tests and where following is intended. ENOTSUP falls back to the mode bits (as getfacl
    /// does) for the access ACL and to "none" (nil) for the default ACL; a default ACL with no entries is nil.
    public static func libacl(path: String, type: ACLType = .access) throws -> FileACL? {
        guard let handle = acl_get_file(path, type.libaclType) else {
            let e = errno
            if e == ENOTSUP || e == EOPNOTSUPP {
                if type == .default { return nil }
                var st = stat()
                guard stat(path, &st) == 0 else { throw ACLError("stat", path: path, code: errno) }
                return FileACL(mode: st.st_mode)
            }
            if type == .default && e == EACCES {
                // libacl's answer for the default ACL of a non-directory.
                var st = stat()
                if stat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFDIR { return nil }
            }
            throw ACLError("acl_get_file", path: path, code: e)
        }
        defer { acl_free(UnsafeMutableRawPointer(handle)) }
        let acl = try FileACL(libacl: handle)
        return acl.isEmpty && type == .default ? nil : acl
    }

    /// Converts a libacl handle.
    init(libacl handle: acl_t) throws {
        var list: [ACLEntry] = []
        var entry: acl_entry_t?
        var which = ACL_FIRST_ENTRY
        while true {
            let got = acl_get_entry(handle, which, &entry)
            if got == 0 { break }
            if got < 0 { throw ACLError("acl_get_entry", code: errno) }
            which = ACL_NEXT_ENTRY
            var rawTag: acl_tag_t = 0
            guard acl_get_tag_type(entry, &rawTag) == 0 else { throw ACLError("acl_get_tag_type", code: errno) }
            var id: UInt32 = FileACL.undefinedID
            if rawTag == ACL_USER || rawTag == ACL_GROUP {
                guard let q = acl_get_qualifier(entry) else { throw ACLError("acl_get_qualifier", code: errno) }
                id = q.load(as: UInt32.self)
                acl_free(q)
            }
            var permset: acl_permset_t?
            guard acl_get_permset(entry, &permset) == 0 else { throw ACLError("acl_get_permset", code: errno) }
            var bits: UInt16 = 0
            if acl_get_perm(permset, acl_perm_t(ACL_READ)) == 1 { bits |= 4 }
            if acl_get_perm(permset, acl_perm_t(ACL_WRITE)) == 1 { bits |= 2 }
            if acl_get_perm(permset, acl_perm_t(ACL_EXECUTE)) == 1 { bits |= 1 }
            guard let tag = ACLTag(rawTag: UInt16(rawTag), id: id) else {
                throw ACLError("libacl", code: 0, detail: "unknown tag \(rawTag)")
            }
            list.append(ACLEntry(tag, Perm(rawValue: bits)))
        }
        self.init(entries: list)
    }

    /// Builds a libacl handle (entries in this ACL's order). The caller frees it with `acl_free`.
    func makeLibACL() throws -> acl_t {
        guard var handle: acl_t = acl_init(Int32(max(entries.count, 1))) else { throw ACLError("acl_init", code: errno) }
        do {
            for e in entries {
                var entry: acl_entry_t?
                var h: acl_t? = handle
                guard acl_create_entry(&h, &entry) == 0, let newHandle = h else { throw ACLError("acl_create_entry", code: errno) }
                handle = newHandle
                guard acl_set_tag_type(entry, acl_tag_t(e.tag.rawTag)) == 0 else { throw ACLError("acl_set_tag_type", code: errno) }
                if var id = e.tag.id {
                    guard acl_set_qualifier(entry, &id) == 0 else { throw ACLError("acl_set_qualifier", code: errno) }
                }
                var permset: acl_permset_t?
                guard acl_get_permset(entry, &permset) == 0 else { throw ACLError("acl_get_permset", code: errno) }
                acl_clear_perms(permset)
                if e.perms.contains(.r) { acl_add_perm(permset, acl_perm_t(ACL_READ)) }
                if e.perms.contains(.w) { acl_add_perm(permset, acl_perm_t(ACL_WRITE)) }
                if e.perms.contains(.x) { acl_add_perm(permset, acl_perm_t(ACL_EXECUTE)) }
                guard acl_set_permset(entry, permset) == 0 else { throw ACLError("acl_set_permset", code: errno) }
            }
        } catch {
            acl_free(UnsafeMutableRawPointer(handle))
            throw error
        }
        return handle
    }

    /// `acl_valid`: libacl's verdict on this ACL (the kernel applies the same rules).
    public var libaclValid: Bool {
        guard let handle = try? makeLibACL() else { return false }
        defer { acl_free(UnsafeMutableRawPointer(handle)) }
        return acl_valid(handle) == 0
    }

    /// libacl's short numeric text (`acl_to_any_text(acl, NULL, ',', TEXT_ABBREVIATE | TEXT_NUMERIC_IDS)`).
    public var libaclText: String? {
        guard let handle = try? makeLibACL() else { return nil }
        defer { acl_free(UnsafeMutableRawPointer(handle)) }
        guard let cText = acl_to_any_text(handle, nil, CChar(UInt8(ascii: ",")), Int32(TEXT_ABBREVIATE | TEXT_NUMERIC_IDS)) else {
            return nil
        }
        defer { acl_free(UnsafeMutableRawPointer(cText)) }
        return String(cString: cText)
    }
}

/// Decodes raw ACL xattrs, reusing the last result while the bytes repeat (inherited ACLs usually do, so a tree walk
/// decodes each distinct ACL about once).
struct ACLDecodeCache {
    private var lastBytes: [UInt8] = []
    private var last: FileACL?

    mutating func decode(_ raw: UnsafeRawBufferPointer) -> FileACL? {
        if let last, raw.count == lastBytes.count,
           lastBytes.withUnsafeBytes({ memcmp($0.baseAddress!, raw.baseAddress!, raw.count) == 0 }) {
            return last
        }
        let acl = try? FileACL(xattr: raw)
        lastBytes = Array(raw)
        last = acl
        return acl
    }
}
