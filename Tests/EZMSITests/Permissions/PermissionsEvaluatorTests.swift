import Foundation
import Glibc
import Testing
@testable import EZMSICore

/// The evaluator against the kernel: every generated setup is created for real (chown, chmod, setfacl), every identity
/// really tries every operation through setpriv, and the evaluator must predict each outcome.
@Suite(.serialized) struct PermissionsEvaluatorTests {
    struct Case {
        var name: String
        var isDir: Bool
        var owner: UInt32
        var group: UInt32
        /// Permission and special bits (ignored for the permission bits when `acl` is set: setfacl rewrites them).
        var mode: UInt32
        /// Full `setfacl --set` text, or nil for mode bits only.
        var acl: String?
    }

    static let identities: [ContainerIdentity] = [
        ContainerIdentity(uid: 1000, gid: 1000, groups: [27], source: "image user openmsi"),
        ContainerIdentity(uid: 1000, gid: 1000, groups: [], source: "1000:1000"),
        ContainerIdentity(uid: 2001, gid: 2001, groups: [2002], source: "2001 (+2002)"),
        ContainerIdentity(uid: 3000, gid: 2002, groups: [2001, 27], source: "3000:2002 (+2001,27)"),
        ContainerIdentity(uid: 1234, gid: 5678, groups: [], source: "--user 1234:5678"),
        ContainerIdentity(uid: 0, gid: 0, groups: [], source: "root"),
    ]

    static func operations(isDir: Bool) -> [AccessOperation] {
        isDir ? [.listDirectory, .createInDirectory, .traverse] : [.readFile, .writeFile, .traverse]
    }

    static func generated(count: Int, seed: UInt64) -> [Case] {
        var rng = PermRandom(seed: seed)
        let owners: [UInt32] = [1000, 2001, 3000, 0, 4242, 1234]
        let groups: [UInt32] = [1000, 2001, 2002, 27, 0, 5678]
        let common: [UInt32] = [0o755, 0o750, 0o700, 0o775, 0o770, 0o644, 0o640, 0o600, 0o000, 0o705, 0o070, 0o007, 0o777, 0o711]
        var cases: [Case] = []
        for i in 0..<count {
            let isDir = i % 2 == 0
            let owner = rng.pick(owners)
            let group = rng.pick(groups)
            var mode = rng.chance(0.35) ? rng.pick(common) : UInt32.random(in: 0...0o777, using: &rng)
            if isDir && rng.chance(0.2) { mode |= 0o2000 }
            if isDir && rng.chance(0.2) { mode |= 0o1000 }
            var acl: String?
            if rng.chance(0.55) {
                var parts = ["u::\(Perm(mode: mode, shift: 6))", "g::\(Perm(mode: mode, shift: 3))", "o::\(Perm(mode: mode, shift: 0))"]
                var named: [Perm] = []
                for uid in Set([1000, 2001, 3000, 1234, owner]).sorted() where rng.chance(0.35) {
                    let p = rng.perm()
                    named.append(p)
                    parts.append("u:\(uid):\(p)")
                }
                for gid in [1000, 2001, 2002, 27, 5678] as [UInt32] where rng.chance(0.35) {
                    let p = rng.perm()
                    named.append(p)
                    parts.append("g:\(gid):\(p)")
                }
                if rng.chance(0.4) || (named.isEmpty && rng.chance(0.3)) {
                    parts.append("m::\(rng.perm())")
                } else if !named.isEmpty {
                    let union = named.reduce(Perm(mode: mode, shift: 3)) { $0.union($1) }
                    parts.append("m::\(union)")
                }
                acl = parts.joined(separator: ",")
            }
            cases.append(Case(name: "generated #\(i)", isDir: isDir, owner: owner, group: group, mode: mode, acl: acl))
        }
        return cases
    }

    static let special: [Case] = [
        Case(name: "two-group split r--/--x (list yes, create no)", isDir: true, owner: 4242, group: 5678, mode: 0o700,
             acl: "u::rwx,g::---,g:2001:r--,g:2002:--x,m::rwx,o::---"),
        Case(name: "two-group split r-x/-wx (list and create)", isDir: true, owner: 4242, group: 5678, mode: 0o700,
             acl: "u::rwx,g::---,g:2001:r-x,g:2002:-wx,m::rwx,o::---"),
        Case(name: "two-group split -w-/--x (no create)", isDir: true, owner: 4242, group: 5678, mode: 0o700,
             acl: "u::rwx,g::---,g:2001:-w-,g:2002:--x,m::rwx,o::rwx"),
        Case(name: "two-group split file r--/-w-", isDir: false, owner: 4242, group: 5678, mode: 0o600,
             acl: "u::rw-,g::---,g:2001:r--,g:2002:-w-,m::rw-,o::---"),
        Case(name: "mask-limited named user", isDir: true, owner: 0, group: 0, mode: 0o750,
             acl: "u::rwx,u:1000:rwx,g::r-x,m::r-x,o::---"),
        Case(name: "owner with --- owner bits and a named entry for itself", isDir: false, owner: 1000, group: 1000,
             mode: 0o044, acl: "u::---,u:1000:rwx,g::r--,m::rwx,o::r--"),
        Case(name: "owner with --- owner bits on a directory", isDir: true, owner: 1000, group: 1000, mode: 0o077, acl: nil),
        Case(name: "mask --- makes the kernel skip the ACL (other decides)", isDir: false, owner: 0, group: 0, mode: 0o604,
             acl: "u::rw-,u:1000:rwx,g::---,m::---,o::r--"),
        Case(name: "mask --- directory, named user rwx, other r-x", isDir: true, owner: 0, group: 0, mode: 0o705,
             acl: "u::rwx,u:1000:rwx,g::rwx,m::---,o::r-x"),
        Case(name: "owning-group member denied although other allows", isDir: false, owner: 0, group: 1000, mode: 0o604, acl: nil),
        Case(name: "matching group entry lacks the bits, other allows", isDir: false, owner: 0, group: 0, mode: 0o604,
             acl: "u::rw-,g::---,g:27:-w-,m::rw-,o::r--"),
        Case(name: "named group masked", isDir: true, owner: 0, group: 0, mode: 0o700,
             acl: "u::rwx,g::---,g:27:rwx,m::r--,o::---"),
        Case(name: "sticky 1777", isDir: true, owner: 0, group: 0, mode: 0o1777, acl: nil),
        Case(name: "setgid 2770 group 1000", isDir: true, owner: 0, group: 1000, mode: 0o2770, acl: nil),
        Case(name: "setgid+sticky 3775 with a default-style ACL", isDir: true, owner: 0, group: 2001, mode: 0o3775,
             acl: "u::rwx,u:1000:rwx,g::rwx,m::rwx,o::r-x"),
        Case(name: "root: file without any x bit", isDir: false, owner: 4242, group: 5678, mode: 0o644, acl: nil),
        Case(name: "root: file with only other x", isDir: false, owner: 4242, group: 5678, mode: 0o001, acl: nil),
        Case(name: "root: directory 000", isDir: true, owner: 4242, group: 5678, mode: 0o000, acl: nil),
        Case(name: "named user for uid 1000 lacks w, other has it", isDir: false, owner: 0, group: 0, mode: 0o646,
             acl: "u::rw-,u:1000:r--,g::r--,m::rw-,o::rw-"),
    ]

    struct Mismatch: CustomStringConvertible {
        var c: Case
        var identity: ContainerIdentity
        var operation: AccessOperation
        var kernel: Bool
        var decision: AccessDecision
        var description: String {
            "\(c.name) [\(c.isDir ? "dir" : "file") \(c.owner):\(c.group) mode \(String(c.mode, radix: 8)) acl \(c.acl ?? "-")] "
                + "as \(identity): kernel \(kernel ? "allows" : "denies") \(operation), evaluator says \(decision)"
        }
    }

    /// Creates the cases, asks the kernel, asks the evaluator. Returns the number of checks and the mismatches.
    static func compare(_ cases: [Case], useOwnWriter: Bool) throws
        -> (checks: Int, mismatches: [Mismatch], kernel: [String: Bool]) {
        let scratch = TempDir("oracle")
        var setup = ""
        var paths: [String] = []
        for (i, c) in cases.enumerated() {
            let p = scratch.path + "/c\(i)"
            paths.append(p)
            if c.isDir {
                setup += "mkdir \(p) && : > \(p)/child && chmod 644 \(p)/child\n"
            } else {
                setup += ": > \(p)\n"
            }
            setup += "chown \(c.owner):\(c.group) \(p) && chmod \(String(c.mode, radix: 8)) \(p)\n"
            if let acl = c.acl, !(useOwnWriter && i % 2 == 1) {
                setup += "setfacl --set \(PermShell.quote(acl)) \(p)\n"
            }
        }
        try PermShell.sh(setup)
        if useOwnWriter {
            for (i, c) in cases.enumerated() where i % 2 == 1 {
                guard let text = c.acl else { continue }
                try FileACL(text: text).write(path: paths[i], type: .access)
            }
        }
        // The kernel keeps setgid/sticky through setfacl (we are root); check that the setup is what we think.
        for (i, c) in cases.enumerated() {
            var st = stat()
            lstat(paths[i], &st)
            if st.st_mode & 0o7000 != c.mode & 0o7000 || st.st_uid != c.owner || st.st_gid != c.group {
                throw PermTestError("setup of \(c.name) differs: mode \(String(st.st_mode, radix: 8))")
            }
        }

        var checks = 0
        var mismatches: [Mismatch] = []
        var kernelAnswers: [String: Bool] = [:]
        for (k, identity) in identities.enumerated() {
            var script = ""
            for (i, c) in cases.enumerated() {
                let p = paths[i]
                for op in operations(isDir: c.isDir) {
                    let command: String
                    switch op {
                    case .readFile: command = "( : < \(p) ) 2>/dev/null"
                    case .writeFile: command = "( : >> \(p) ) 2>/dev/null"
                    case .traverse: command = c.isDir ? "( cd \(p) ) 2>/dev/null" : "[ -x \(p) ]"
                    case .listDirectory: command = "ls \(p) >/dev/null 2>&1 && [ -e \(p)/child ]"
                    case .createInDirectory: command = "( : > \(p)/new\(k) ) 2>/dev/null"
                    }
                    script += "if \(command); then echo \(i) \(op.rawValue) 1; else echo \(i) \(op.rawValue) 0; fi\n"
                }
            }
            let out = try PermShell.asIdentity(identity, script: script)
            guard out.status == 0 else { throw PermTestError("setpriv failed: \(out.stderr)") }
            for line in out.stdout.split(separator: "\n") {
                let f = line.split(separator: " ")
                guard f.count == 3, let i = Int(f[0]), let op = AccessOperation(rawValue: String(f[1])) else {
                    throw PermTestError("bad oracle line \(line)")
                }
                let kernel = f[2] == "1"
                kernelAnswers["\(i)/\(k)/\(op.rawValue)"] = kernel
                let (_, decisions) = try AccessEvaluator.evaluate(path: paths[i], operations: [op], identity: identity)
                checks += 1
                if decisions[0].allowed != kernel {
                    mismatches.append(Mismatch(c: cases[i], identity: identity, operation: op, kernel: kernel, decision: decisions[0]))
                }
            }
        }
        return (checks, mismatches, kernelAnswers)
    }

    @Test(.enabled(if: PermShell.isRoot)) func generatedSetupsMatchTheKernel() throws {
        let cases = Self.generated(count: 160, seed: 2024)
        #expect(cases.count >= 100)
        #expect(cases.filter { $0.acl != nil }.count >= 60)
        let (checks, mismatches, kernel) = try Self.compare(cases, useOwnWriter: true)
        #expect(checks == cases.count * 3 * Self.identities.count)
        // The oracle itself is not degenerate: plenty of both answers.
        let allowed = kernel.values.filter { $0 }.count
        #expect(allowed > checks / 5 && checks - allowed > checks / 5, "\(allowed) of \(checks) allowed")
        #expect(mismatches.isEmpty, Comment(rawValue: "\(mismatches.count) of \(checks) disagree:\n"
            + mismatches.prefix(15).map(\.description).joined(separator: "\n")))
    }

    @Test(.enabled(if: PermShell.isRoot)) func namedPitfallsMatchTheKernel() throws {
        let (checks, mismatches, kernel) = try Self.compare(Self.special, useOwnWriter: false)
        #expect(checks == Self.special.count * 3 * Self.identities.count)
        // What the kernel does in the pitfalls (identity indexes: 0 openmsi+27, 2 = 2001+2002, 5 = root).
        func answer(_ name: String, _ identity: Int, _ op: AccessOperation) -> Bool? {
            guard let i = Self.special.firstIndex(where: { $0.name.hasPrefix(name) }) else { return nil }
            return kernel["\(i)/\(identity)/\(op.rawValue)"]
        }
        #expect(answer("two-group split r--/--x", 2, .listDirectory) == true)
        #expect(answer("two-group split r--/--x", 2, .createInDirectory) == false)
        #expect(answer("two-group split r-x/-wx", 2, .createInDirectory) == true)
        #expect(answer("two-group split -w-/--x", 2, .createInDirectory) == false)
        #expect(answer("mask-limited named user", 0, .listDirectory) == true)
        #expect(answer("mask-limited named user", 0, .createInDirectory) == false)
        #expect(answer("owner with --- owner bits and a named", 0, .readFile) == false)
        #expect(answer("mask --- makes the kernel skip", 0, .readFile) == true)
        #expect(answer("mask --- makes the kernel skip", 0, .writeFile) == false)
        #expect(answer("owning-group member denied", 0, .readFile) == false)
        #expect(answer("owning-group member denied", 4, .readFile) == true)
        #expect(answer("matching group entry lacks", 0, .readFile) == false)
        #expect(answer("matching group entry lacks", 1, .readFile) == true)
        #expect(answer("root: file without any x bit", 5, .traverse) == false)
        #expect(answer("root: file with only other x", 5, .traverse) == true)
        #expect(answer("root: directory 000", 5, .createInDirectory) == true)
        #expect(mismatches.isEmpty, Comment(rawValue: "\(mismatches.count) of \(checks) disagree:\n"
            + mismatches.map(\.description).joined(separator: "\n")))
    }

    // MARK: Reasons (pure)

    static let openmsi = ContainerIdentity(uid: 1000, gid: 1000, groups: [27])

    static func inode(_ uid: UInt32, _ gid: UInt32, _ mode: UInt32, _ acl: String? = nil, dir: Bool = true) -> InodeSecurity {
        let parsed = acl.map { try! FileACL(text: $0) }
        let type: UInt32 = dir ? UInt32(S_IFDIR) : UInt32(S_IFREG)
        let bits = parsed.map { $0.mode(keeping: mode) } ?? mode
        return InodeSecurity(uid: uid, gid: gid, mode: type | bits, acl: parsed)
    }

    @Test func reasonsNameTheRuleThatDecided() {
        let split = Self.inode(0, 0, 0, "u::rwx,g::---,g:2001:r--,g:2002:--x,m::rwx,o::---")
        let two = ContainerIdentity(uid: 2001, gid: 2001, groups: [2002])
        let list = AccessEvaluator.evaluate(.listDirectory, identity: two, inode: split)
        #expect(list.allowed)
        let create = AccessEvaluator.evaluate(.createInDirectory, identity: two, inode: split)
        #expect(!create.allowed)
        #expect(create.reason == .groupClassLacks(matched: [2001, 2002]))

        let masked = Self.inode(0, 0, 0, "u::rwx,u:1000:rwx,g::r-x,m::r-x,o::---")
        let d = AccessEvaluator.evaluate(.createInDirectory, identity: Self.openmsi, inode: masked)
        #expect(!d.allowed)
        #expect(d.reason == .namedUser(ACLEntry(.user(1000), .rwx), mask: [.r, .x]))
        #expect(TreeAudit.Cause(d) == .namedUserMasked)

        let ownerLocked = Self.inode(1000, 1000, 0o077, dir: false)
        let o = AccessEvaluator.evaluate(.readFile, identity: Self.openmsi, inode: ownerLocked)
        #expect(!o.allowed && o.reason == .owner([]))

        let groupMember = Self.inode(0, 27, 0o604, dir: false)
        let g = AccessEvaluator.evaluate(.readFile, identity: Self.openmsi, inode: groupMember)
        #expect(!g.allowed && g.reason == .group(gid: 27, entry: ACLEntry(.groupObj, []), mask: nil))

        let maskEmpty = Self.inode(0, 0, 0o604, "u::rw-,u:1000:rwx,g::---,m::---,o::r--", dir: false)
        let m = AccessEvaluator.evaluate(.readFile, identity: Self.openmsi, inode: maskEmpty)
        #expect(m.allowed && m.aclIgnored && m.reason == .other(.r))

        let namedGroupMasked = Self.inode(0, 0, 0, "u::rwx,g::---,g:27:rwx,m::r--,o::---")
        let l = AccessEvaluator.evaluate(.listDirectory, identity: Self.openmsi, inode: namedGroupMasked)
        #expect(!l.allowed && l.failedCheck == .x)
        #expect(l.reason == .group(gid: 27, entry: ACLEntry(.group(27), .rwx), mask: .r))

        let root = ContainerIdentity(uid: 0, gid: 0)
        #expect(root.bypassesDAC)
        #expect(AccessEvaluator.evaluate(.listDirectory, identity: root, inode: Self.inode(5, 5, 0)).reason == .rootBypass)
        let noX = AccessEvaluator.evaluate(.traverse, identity: root, inode: Self.inode(5, 5, 0o644, dir: false))
        #expect(!noX.allowed && noX.reason == .rootNeedsExecuteBit)
    }

    /// Under a user namespace, root's capabilities only cover inodes whose owner and group are mapped.
    @Test func mappedRootBypassIsLimitedToMappedInodes() throws {
        let mapping = try IDMapping.usernsRemap(user: "default", subuid: "dockremap:165536:65536\n",
                                                subgid: "dockremap:165536:65536\n")
        let root = try mapping.hostIdentity(ContainerIdentity(uid: 0, gid: 0))
        #expect(root.uid == 165536 && root.bypassesDAC && root.bypassScope != nil)
        let hostRootsDir = Self.inode(0, 0, 0o700)
        #expect(!AccessEvaluator.evaluate(.listDirectory, identity: root, inode: hostRootsDir).allowed)
        let mappedDir = Self.inode(166536, 166536, 0o700)
        #expect(AccessEvaluator.evaluate(.listDirectory, identity: root, inode: mappedDir).reason == .rootBypass)
    }
}
