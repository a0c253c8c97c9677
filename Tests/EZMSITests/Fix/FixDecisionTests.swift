import Foundation
import Glibc
import Testing
@testable import EZMSICore

/// The per-entry decision of the fixer, without a file system.
@Suite struct FixDecisionTests {
    static let openmsi = ContainerIdentity(uid: 1000, gid: 1000, groups: [27])
    static let dir = UInt32(S_IFDIR)
    static let reg = UInt32(S_IFREG)
    let acl = FixDecider(kind: .acl, identity: FixDecisionTests.openmsi)
    let chown = FixDecider(kind: .chown, identity: FixDecisionTests.openmsi)

    func allowed(_ ops: [AccessOperation], uid: UInt32, gid: UInt32, mode: UInt32, access: FileACL?) -> Bool {
        !acl.denied(ops, InodeSecurity(uid: uid, gid: gid, mode: mode, acl: access))
    }

    @Test func ownerGetsOwnerBitsNotANamedEntry() throws {
        let c = try #require(acl.decide(isDirectory: false, uid: 1000, gid: 5, mode: Self.reg | 0o200, access: nil,
                                        defaultACL: nil, ops: [.readFile], defaultBits: []))
        #expect(c.mode == 0o600 && c.access == nil && c.owner == nil && c.wasDenied && !c.stillDenied)
        // With an ACL the owner bits are the ACL's u:: entry: still a chmod, the ACL (mask) is untouched.
        let withACL = try FileACL(text: "u::-w-,u:1000:rwx,g::r--,m::rwx,o::---")
        let d = try #require(acl.decide(isDirectory: false, uid: 1000, gid: 5, mode: Self.reg | 0o270, access: withACL,
                                        defaultACL: nil, ops: [.readFile], defaultBits: []))
        #expect(d.mode == 0o670 && d.access == nil)
        // Special bits are kept.
        let s = try #require(acl.decide(isDirectory: true, uid: 1000, gid: 5, mode: Self.dir | 0o3070, access: nil,
                                        defaultACL: nil, ops: [.listDirectory], defaultBits: [.r, .x]))
        #expect(s.mode == 0o3570)
    }

    @Test func namedEntryAndMaskRaisedOnlyByTheGrantedBits() throws {
        // No ACL: a named entry, mask = group bits ∪ granted (what setfacl would compute too).
        let c = try #require(acl.decide(isDirectory: false, uid: 0, gid: 0, mode: Self.reg | 0o640, access: nil,
                                        defaultACL: nil, ops: [.readFile], defaultBits: []))
        #expect(c.access?.text == "u::rw-,u:1000:r--,g::r--,m::r--,o::---")
        // An existing ACL whose mask is --- (the kernel ignores the ACL): the mask becomes exactly the granted bits,
        // u:1001:rwx and g::rw- do not silently gain w or x.
        let masked = try FileACL(text: "u::rw-,u:1001:rwx,g::rw-,m::---,o::---")
        let m = try #require(acl.decide(isDirectory: false, uid: 0, gid: 0, mode: Self.reg | 0o600, access: masked,
                                        defaultACL: nil, ops: [.readFile], defaultBits: []))
        #expect(m.access?.text == "u::rw-,u:1000:r--,u:1001:rwx,g::rw-,m::r--,o::---")
        #expect(m.access.map { $0.mode(keeping: Self.reg | 0o600) & 0o777 } == 0o640)
        // An existing named entry that the mask limits: extended (never reduced) and the mask raised.
        let limited = try FileACL(text: "u::rwx,u:1000:rwx,g::---,m::r--,o::---")
        let l = try #require(acl.decide(isDirectory: true, uid: 0, gid: 0, mode: Self.dir | 0o740, access: limited,
                                        defaultACL: try FileACL(text: "u::rwx,u:1000:r-x,g::---,m::r-x,o::---"),
                                        ops: [.listDirectory], defaultBits: [.r, .x]))
        #expect(l.access?.text == "u::rwx,u:1000:rwx,g::---,m::r-x,o::---")
        #expect(l.defaultACL == nil)  // the default entry already grants r-x
        // A named entry lacking bits.
        let lacks = try FileACL(text: "u::rwx,u:1000:--x,g::r-x,m::rwx,o::---")
        let k = try #require(acl.decide(isDirectory: true, uid: 0, gid: 0, mode: Self.dir | 0o770, access: lacks,
                                        defaultACL: nil, ops: [.listDirectory, .createInDirectory], defaultBits: .rwx))
        #expect(k.access?.text == "u::rwx,u:1000:rwx,g::r-x,m::rwx,o::---")
    }

    @Test func groupEntriesThatDenyAreOvercomeByTheNamedEntry() throws {
        // The identity is in group 27 whose entry lacks x: the group class denies and OTHER is not consulted.
        let grp = try FileACL(text: "u::rwx,g::---,g:27:r--,m::r--,o::r-x")
        #expect(!allowed([.listDirectory], uid: 0, gid: 0, mode: Self.dir | 0o745, access: grp))
        let c = try #require(acl.decide(isDirectory: true, uid: 0, gid: 0, mode: Self.dir | 0o745, access: grp,
                                        defaultACL: nil, ops: [.listDirectory], defaultBits: [.r, .x]))
        #expect(c.access?.text == "u::rwx,u:1000:r-x,g::---,g:27:r--,m::r-x,o::r-x")
        #expect(allowed([.listDirectory], uid: 0, gid: 0, mode: c.access!.mode(keeping: Self.dir | 0o745), access: c.access))
    }

    @Test func defaultACLSeededOrExtended() throws {
        // A directory that is fine but has no default ACL: only the default ACL, seeded like setfacl from the access ACL.
        let c = try #require(acl.decide(isDirectory: true, uid: 0, gid: 0, mode: Self.dir | 0o755, access: nil,
                                        defaultACL: nil, ops: [.listDirectory], defaultBits: [.r, .x]))
        #expect(!c.wasDenied && c.access == nil && c.mode == nil)
        #expect(c.defaultACL?.text == "u::rwx,u:1000:r-x,g::r-x,m::r-x,o::r-x")
        // g:: of the ACL, not its mask.
        let withACL = try FileACL(text: "u::rwx,u:1001:rwx,g::r--,m::rwx,o::---")
        let d = try #require(acl.decide(isDirectory: true, uid: 0, gid: 0, mode: Self.dir | 0o770, access: withACL,
                                        defaultACL: nil, ops: [.listDirectory, .createInDirectory], defaultBits: .rwx))
        #expect(d.defaultACL?.text == "u::rwx,u:1000:rwx,g::r--,m::rwx,o::---")
        // An existing default ACL is extended; its other entries are kept; its mask raised by the bits only.
        let existing = try FileACL(text: "u::rwx,u:1001:rwx,g::---,m::---,o::---")
        let e = try #require(acl.decide(isDirectory: true, uid: 0, gid: 0, mode: Self.dir | 0o755, access: nil,
                                        defaultACL: existing, ops: [.listDirectory], defaultBits: [.r, .x]))
        #expect(e.defaultACL?.text == "u::rwx,u:1000:r-x,u:1001:rwx,g::---,m::r-x,o::---")
        // A minimal default ACL (no mask): a mask appears (g:: ∪ bits).
        let minimal = try FileACL(text: "u::rwx,g::r--,o::---")
        let f = try #require(acl.decide(isDirectory: true, uid: 0, gid: 0, mode: Self.dir | 0o755, access: nil,
                                        defaultACL: minimal, ops: [.listDirectory], defaultBits: [.r, .x]))
        #expect(f.defaultACL?.text == "u::rwx,u:1000:r-x,g::r--,m::r-x,o::---")
        #expect(f.defaultACL?.problem == nil && c.defaultACL?.problem == nil && e.defaultACL?.problem == nil)
        // Fine and already inheriting: nothing.
        #expect(acl.decide(isDirectory: true, uid: 0, gid: 0, mode: Self.dir | 0o755, access: nil,
                           defaultACL: e.defaultACL, ops: [.listDirectory], defaultBits: [.r, .x]) == nil)
        // A default named entry the default mask limits is not enough.
        let maskedDefault = try FileACL(text: "u::rwx,u:1000:rwx,g::---,m::r--,o::---")
        let g = try #require(acl.decide(isDirectory: true, uid: 0, gid: 0, mode: Self.dir | 0o755, access: nil,
                                        defaultACL: maskedDefault, ops: [.listDirectory], defaultBits: [.r, .x]))
        #expect(g.defaultACL?.text == "u::rwx,u:1000:rwx,g::---,m::r-x,o::---")
    }

    @Test func filesNeedingNothingAndRootIdentities() {
        #expect(acl.decide(isDirectory: false, uid: 0, gid: 0, mode: Self.reg | 0o600, access: nil, defaultACL: nil,
                           ops: [], defaultBits: []) == nil)
        // uid 0 with its capabilities: nothing is denied, no default entries.
        let root = FixDecider(kind: .acl, identity: ContainerIdentity(uid: 0, gid: 0))
        #expect(!root.wantsDefaults)
        #expect(root.decide(isDirectory: true, uid: 5, gid: 5, mode: Self.dir | 0o700, access: nil, defaultACL: nil,
                            ops: [.listDirectory, .createInDirectory], defaultBits: .rwx) == nil)
        #expect(!chown.wantsDefaults)
    }

    @Test func chownPlan() throws {
        let c = try #require(chown.decide(isDirectory: false, uid: 0, gid: 0, mode: Self.reg | 0o640, access: nil,
                                          defaultACL: nil, ops: [.readFile], defaultBits: []))
        #expect(c.owner?.uid == 1000 && c.owner?.gid == 1000 && c.mode == nil && c.access == nil)
        // Owner bits raised; the setuid bit the kernel clears on chown is not put back.
        let s = try #require(chown.decide(isDirectory: false, uid: 0, gid: 0, mode: Self.reg | 0o4011, access: nil,
                                          defaultACL: nil, ops: [.readFile], defaultBits: []))
        #expect(s.mode == 0o411)
        let g = try #require(chown.decide(isDirectory: false, uid: 0, gid: 0, mode: Self.reg | 0o2070, access: nil,
                                          defaultACL: nil, ops: [.readFile, .writeFile], defaultBits: []))
        #expect(g.mode == 0o670)  // setgid with group-exec: cleared
        // Directories keep setgid; an entry the uid owns only gets its owner bits.
        let d = try #require(chown.decide(isDirectory: true, uid: 1000, gid: 1000, mode: Self.dir | 0o2500, access: nil,
                                          defaultACL: nil, ops: [.listDirectory, .createInDirectory], defaultBits: .rwx))
        #expect(d.owner == nil && d.mode == 0o2700)
        #expect(chown.decide(isDirectory: true, uid: 0, gid: 0, mode: Self.dir | 0o755, access: nil, defaultACL: nil,
                             ops: [.listDirectory], defaultBits: [.r, .x]) == nil)
    }

    @Test func rulesSelectLikeTheAudit() {
        let upload = RequirementRules(TreeRequirements.forNeed(.readTreeWriteRoot)!)
        #expect(upload.walkerReadsFileACLs)
        func sel(_ kind: TreeEntryKind, _ depth: Int, _ name: String, _ ctx: UInt8) -> RequirementRules.Selection {
            name.withCString { upload.select(kind: kind, depth: depth, name: $0, context: ctx) }
        }
        #expect(sel(.directory, 0, "/x", 0).ops == [.listDirectory, .createInDirectory])
        #expect(sel(.directory, 0, "/x", 0).defaultBits == [.r, .x])
        let logs = sel(.directory, 1, "LOGS", 0)
        #expect(logs.ops == [.listDirectory, .createInDirectory] && logs.childContext == 1 && logs.defaultBits == .rwx)
        #expect(sel(.file, 2, "DataFileUploadDirectory.log", 1).ops == [.readFile, .writeFile])
        #expect(sel(.file, 2, "x.csv", 1).ops == [.readFile])
        #expect(sel(.directory, 2, "LOGS", 0).ops == [.listDirectory])
        #expect(sel(.file, 1, "LOGS", 0).ops == [.readFile])
        let download = RequirementRules(TreeRequirements.forNeed(.writeTree)!)
        #expect(!download.walkerReadsFileACLs)
        #expect("DataFileDownloadDirectory.log".withCString { download.select(kind: .file, depth: 1, name: $0, context: 0) }.ops == [.writeFile])
        #expect("x".withCString { download.select(kind: .file, depth: 3, name: $0, context: 0) }.ops.isEmpty)
        #expect("d".withCString { download.select(kind: .directory, depth: 3, name: $0, context: 0) }.defaultBits == .rwx)
    }

    @Test func journalLinesParseBack() throws {
        var j = JSONLine()
        j.raw("{")
        let weird: [UInt8] = Array("a/\"q\"\\\n\tx".utf8)
        weird.withUnsafeBytes { j.pathField($0) }
        j.raw(",\"n\":")
        j.number(UInt64.max)
        j.raw(",\"z\":")
        j.number(0)
        j.raw(",\"h\":")
        [UInt8]([2, 0, 0xff]).withUnsafeBytes { j.hex($0) }
        j.raw(",\"x\":null,\"b\":true}")
        let parsed = try #require(FlatJSON.parse(j.bytes[...]))
        #expect(parsed["path"]?.string == "a/\"q\"\\\n\tx")
        #expect(parsed["n"]?.uint64 == UInt64.max && parsed["z"]?.int == 0)
        #expect(parsed["h"]?.string.flatMap(FlatJSON.unhex) == [2, 0, 0xff])
        #expect(parsed["x"] == .null && parsed["b"]?.bool == true)
        // It is JSON for everyone else too.
        let object = try JSONSerialization.jsonObject(with: Data(j.bytes)) as? [String: Any]
        #expect(object?["path"] as? String == "a/\"q\"\\\n\tx")
        // Not UTF-8: pathHex.
        var k = JSONLine()
        [UInt8]([0x61, 0xFF]).withUnsafeBytes { k.pathField($0) }
        #expect(String(decoding: k.bytes, as: UTF8.self) == "\"pathHex\":\"61ff\"")
        // A line cut short is rejected.
        #expect(FlatJSON.parse(j.bytes.dropLast(3)) == nil)
        #expect(FlatJSON.parse(Array("{\"a\":\"\\u00e9\\ud83d\\ude00\"}".utf8)[...])?["a"]?.string == "é😀")
    }

    @Test func reverseLinesAndJournalNames() throws {
        let path = "/tmp/ezmsi-fix-lines-\(getpid())"
        defer { unlink(path) }
        var text = ""
        for i in 0..<5000 { text += "line \(i) " + String(repeating: "x", count: i % 97) + "\n" }
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let reader = ReverseLineReader(fd: fd, chunk: 1000)
        var lines: [String] = []
        while let l = reader.previous() { lines.append(String(decoding: l, as: UTF8.self)) }
        #expect(lines.reversed() == text.split(separator: "\n").map(String.init))
        #expect(readFirstLine(fd: fd).map { String(decoding: $0, as: UTF8.self) } == "line 0 ")

        let date = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(FixJournal.fileName(date: date, pid: 42, attempt: 0) == "fix-20231114-221320-42.jsonl")
        #expect(FixJournal.fileName(date: date, pid: 42, attempt: 1) == "fix-20231114-221320-42-2.jsonl")
        #expect(FolderFixer.defaultJournalDirectory(environment: ["XDG_STATE_HOME": "/s/", "HOME": "/h"]) == "/s/ezmsi/journals")
        #expect(FolderFixer.defaultJournalDirectory(environment: ["XDG_STATE_HOME": "rel", "HOME": "/h"]) == "/h/.local/state/ezmsi/journals")
        #expect(FolderFixer.defaultJournalDirectory(environment: ["HOME": "/home/me"]) == "/home/me/.local/state/ezmsi/journals")
    }
}
