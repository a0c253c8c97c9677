import Foundation
import Glibc
import Testing
@testable import EZMSICore

/// The xattr codec, text form and validity against libacl and the kernel.
@Suite(.serialized) struct PermissionsACLTests {
    @Test func permAndOperationBasics() {
        #expect(Perm(text: "r-x") == [.r, .x])
        #expect(Perm.rwx.description == "rwx")
        #expect(Perm(mode: 0o750, shift: 3).description == "r-x")
        #expect(AccessOperation.listDirectory.want == [.r, .x])
        #expect(AccessOperation.listDirectory.checks == [.r, .x])
        #expect(AccessOperation.createInDirectory.checks == [[.w, .x]])
        #expect(AccessOperation.traverse.want == .x)
    }

    @Test func textRoundTripAndKernelOrder() throws {
        let acl = try FileACL(text: "o::---,m::rwx,g::r-x,u:1000:rwx,u::rwx,g:27:r--")
        #expect(acl.text == "u::rwx,u:1000:rwx,g::r-x,g:27:r--,m::rwx,o::---")
        #expect(try FileACL(text: "user::rwx\nuser:1000:rwx\ngroup::r-x\nmask::rwx\nother::---\n# comment").text
                == "u::rwx,u:1000:rwx,g::r-x,m::rwx,o::---")
        #expect(acl.libaclText == acl.text)
        #expect(FileACL(mode: 0o754).text == "u::rwx,g::r-x,o::r--")
        #expect(acl.mode(keeping: 0o42000) == 0o42770)
        #expect(throws: ACLError.self) { try FileACL(text: "u:bob:rwx") }
    }

    @Test func xattrBytesAreTheKernelFormat() throws {
        let acl = try FileACL(text: "u::rwx,u:1000:rw-,g::r-x,m::rwx,o::---")
        let bytes = acl.xattr
        #expect(bytes.count == 4 + 5 * 8)
        #expect(Array(bytes.prefix(4)) == [2, 0, 0, 0])
        #expect(Array(bytes[12..<20]) == [0x02, 0, 6, 0, 0xE8, 0x03, 0, 0])  // ACL_USER, rw-, uid 1000
        #expect(Array(bytes[4..<12]) == [0x01, 0, 7, 0, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(try FileACL(xattr: bytes) == acl)
        #expect(throws: ACLError.self) { try FileACL(xattr: [2, 0, 0, 0, 1]) }
        #expect(throws: ACLError.self) { try FileACL(xattr: [3, 0, 0, 0]) }
        #expect(throws: ACLError.self) { try FileACL(xattr: [2, 0, 0, 0, 0x40, 0, 7, 0, 0, 0, 0, 0]) }
    }

    /// Random entry lists, valid or not: our `problem` agrees with libacl's `acl_valid`.
    @Test func validityMatchesLibacl() {
        var rng = PermRandom(seed: 7)
        var valid = 0
        for _ in 0..<500 {
            var entries: [ACLEntry] = []
            let tags: [ACLTag] = [.userObj, .groupObj, .other, .mask, .user(1000), .user(1001), .group(27), .group(1000)]
            for tag in tags where rng.chance(0.7) { entries.append(ACLEntry(tag, rng.perm())) }
            if rng.chance(0.1), let first = entries.first { entries.append(first) }  // a duplicate
            let acl = FileACL(entries: entries)
            #expect((acl.problem == nil) == acl.libaclValid, "\(acl.text)")
            if acl.problem == nil { valid += 1 }
        }
        #expect(valid > 50)
    }

    /// ACLs set with setfacl on real files and directories: the xattr decoder equals libacl (access and default),
    /// the text equals libacl's, and the encoder reproduces the kernel's bytes exactly.
    @Test(.enabled(if: PermShell.isRoot)) func decoderMatchesLibaclOnRealFiles() throws {
        let scratch = TempDir("codec")
        var rng = PermRandom(seed: 42)
        var script = ""
        var expected: [(path: String, isDir: Bool)] = []
        for i in 0..<160 {
            let isDir = i % 2 == 0
            let p = isDir ? scratch.dir("d\(i)") : scratch.file("f\(i)")
            var parts = ["u::\(rng.perm())", "g::\(rng.perm())", "o::\(rng.perm())"]
            for uid in [1000, 1001, 4_000_000_000] where rng.chance(0.4) { parts.append("u:\(uid):\(rng.perm())") }
            for gid in [27, 1000, 65534] where rng.chance(0.4) { parts.append("g:\(gid):\(rng.perm())") }
            if parts.count == 3 && rng.chance(0.5) { parts.append("u:\(1000 + i):rwx") }
            if rng.chance(0.5) || parts.count > 3 { parts.append("m::\(rng.perm())") }
            script += "setfacl --set \(PermShell.quote(parts.joined(separator: ","))) \(PermShell.quote(p))\n"
            if isDir && rng.chance(0.6) {
                script += "setfacl -d --set 'u::rwx,u:1000:rwx,g::r-x,g:27:r-x,m::rwx,o::---' \(PermShell.quote(p))\n"
            }
            expected.append((p, isDir))
        }
        try PermShell.sh(script)
        var stored = 0
        for (p, isDir) in expected {
            let ours = try FileACL.read(path: p)
            let reference = try #require(try FileACL.libacl(path: p, type: .access))
            #expect(ours.access == reference, "\(p)")
            #expect(ours.access.text == reference.libaclText, "\(p)")
            let referenceDefault = try FileACL.libacl(path: p, type: .default)
            #expect(ours.defaultACL == referenceDefault, "\(p)")
            if isDir == false { #expect(ours.defaultACL == nil) }
            if ours.origin == .stored {
                stored += 1
                let raw = Xattr.read { Xattr.lget(p, Xattr.accessName, $0, $1) }
                #expect(raw == ours.access.xattr, "encoder bytes differ from the kernel's for \(p)")
            } else {
                #expect(ours.access.isMinimal)
            }
            // The mode's group bits are the mask (or GROUP_OBJ).
            #expect(ours.mode & 0o777 == ours.access.mode(keeping: 0) & 0o777, "\(p)")
        }
        #expect(stored > 80)
    }

    /// Our writer (fsetxattr / lsetxattr) produces what getfacl reads back.
    @Test(.enabled(if: PermShell.isRoot)) func writerAgreesWithGetfacl() throws {
        let scratch = TempDir("writer")
        var rng = PermRandom(seed: 99)
        for i in 0..<40 {
            let p = i % 2 == 0 ? scratch.dir("d\(i)") : scratch.file("f\(i)")
            var acl = FileACL(mode: 0o750)
            acl.set(.user(UInt32(1000 + i)), rng.perm())
            acl.set(.group(27), rng.perm())
            acl.recalculateMask()
            if i % 3 == 0 { acl.set(.mask, rng.perm()) }
            if i % 4 == 0 {
                let fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
                defer { close(fd) }
                try acl.write(fd: fd, type: .access)
            } else {
                try acl.write(path: p, type: .access)
            }
            if i % 2 == 0 { try acl.write(path: p, type: .default) }
            let text = try PermShell.sh("getfacl -c -n -p \(PermShell.quote(p))")
            let fromGetfacl = try FileACL(text: text.split(separator: "\n").filter { !$0.hasPrefix("default:") }
                .map { $0.split(separator: "\t").first.map(String.init) ?? "" }.joined(separator: "\n"))
            #expect(fromGetfacl == acl, "\(p): \(text)")
            if i % 2 == 0 {
                let defaults = text.split(separator: "\n").filter { $0.hasPrefix("default:") }
                    .map { String($0.dropFirst("default:".count)) }.joined(separator: "\n")
                #expect(try FileACL(text: defaults) == acl)
            }
        }
        // Invalid ACLs are refused before the kernel sees them.
        let p = scratch.file("bad")
        #expect(throws: ACLError.self) { try FileACL(entries: [ACLEntry(.userObj, .rwx)]).write(path: p, type: .access) }
        // An empty default ACL removes it.
        let d = scratch.dir("dd")
        try FileACL(mode: 0o755).write(path: d, type: .default)
        #expect(try FileACL.read(path: d).defaultACL != nil)
        try FileACL(entries: []).write(path: d, type: .default)
        #expect(try FileACL.read(path: d).defaultACL == nil)
    }

    /// No ACL support (procfs): mode bits, like getfacl.
    @Test func unsupportedFilesystemFallsBackToModeBits() throws {
        let acls = try FileACL.read(path: "/proc/self/status")
        #expect(acls.origin == .unsupported)
        #expect(acls.access == FileACL(mode: acls.mode))
        #expect(try FileACL.libacl(path: "/proc/self/status") == FileACL(mode: acls.mode))
    }

    /// A symlink's ACL is never its target's.
    @Test(.enabled(if: PermShell.isRoot)) func readDoesNotFollowSymlinks() throws {
        let scratch = TempDir("nofollow")
        let target = scratch.file("target")
        try PermShell.sh("setfacl -m u:1000:rwx \(target)")
        scratch.symlink("link", to: target)
        let link = try FileACL.read(path: scratch.path + "/link")
        #expect(link.origin == .modeBits)
        #expect(try FileACL.read(path: target).origin == .stored)
        #expect(try FileACL.libacl(path: scratch.path + "/link")?.isMinimal == false, "libacl follows")
    }
}
