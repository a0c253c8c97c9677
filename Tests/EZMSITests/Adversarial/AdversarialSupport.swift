import Foundation
import Glibc
import Testing
@testable import EZMSICore

/// Issue 9's adversarial suite: the real `ezmsi` binary, run as root, against a real unprivileged attacker (uid 1000
/// through setpriv) that races it with the helper `Tests/Adversarial/adversary.c` (compiled with `cc` per test).
///
/// Requirements: root, setpriv, unshare, cc, getfacl/setfacl, chattr and the test Docker daemon (the fix reads the
/// container's user from the fixture image). With EZMSI_REQUIRE_DOCKER=1 (scripts/test, CI) or as root a missing
/// one fails the test; a developer run that is neither skips the suite with the reason.
enum Adversary {
    static let attacker: UInt32 = 1000
    static var isRoot: Bool { geteuid() == 0 }
    static var required: Bool { ProcessInfo.processInfo.environment["EZMSI_REQUIRE_DOCKER"] == "1" }
    static var enabled: Bool { isRoot || required }
    static let skipReason: Comment = """
        adversarial suite skipped: it must run as root (it starts an attacker as uid 1000 with setpriv, mounts in a \
        private namespace and compares root-owned sentinels); run it as root or through scripts/test
        """

    /// What this machine lacks for the suite; throws with all of it.
    static func requireEnvironment() throws {
        var missing: [String] = []
        if !isRoot { missing.append("root (running as uid \(geteuid()))") }
        for tool in ["setpriv", "unshare", "cc", "getfacl", "setfacl", "chattr", "find", "stat", "sha256sum", "od", "findmnt"]
        where Subprocess.which(tool, path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") == nil {
            missing.append(tool)
        }
        if TestDocker.host == nil {
            missing.append("the test Docker daemon (EZMSI_TEST_DOCKER_HOST unset: `source scripts/lib/env.sh` or run scripts/test)")
        }
        if !FileManager.default.isExecutableFile(atPath: Repo.binary) { missing.append("the ezmsi binary (\(Repo.binary))") }
        if !missing.isEmpty {
            throw TestFailure("the adversarial suite cannot run here; missing: " + missing.joined(separator: ", "))
        }
    }

    static func q(_ s: String) -> String { ShellWords.quote(s) }

    /// Runs a shell script as root; throws with its output when it fails.
    @discardableResult
    static func sh(_ script: String, timeout: Double = 120) throws -> String {
        let out = try Subprocess.run("/bin/bash", ["-c", script], timeout: timeout)
        guard out.status == 0 else {
            throw TestFailure("setup script failed (\(out.status)): \(script.prefix(400))\n\(out.stdout)\(out.stderr)")
        }
        return out.stdout
    }

    static let setprivArgs = ["--reuid=1000", "--regid=1000", "--clear-groups", "--"]

    /// Output with the deep tree's paths shortened ("d/d/…/d/" becomes "d/×N/") and cut to `limit` characters.
    static func squeeze(_ text: String, limit: Int = 600) -> String {
        var out = ""
        var run = 0
        var rest = Substring(text)
        while !rest.isEmpty {
            if rest.hasPrefix("d/") {
                run += 1
                rest = rest.dropFirst(2)
                continue
            }
            if run > 0 { out += run > 3 ? "d/×\(run)/" : String(repeating: "d/", count: run); run = 0 }
            out.append(rest.removeFirst())
            if out.count >= limit { return out + "…" }
        }
        if run > 0 { out += "d/×\(run)/" }
        return out
    }
}

/// One test's scratch folder under /tmp (mode 0755 so the attacker can reach into it), with the compiled helper, a
/// deployment (env-file and config) and a private state folder. Removed at the end, at any depth.
final class AdvScratch {
    let path: String
    let helper: String
    let deployment: String
    let state: String

    init(_ name: String) throws {
        try Adversary.requireEnvironment()
        var template = Array("/tmp/ezmsi-adv-\(name)-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw TestFailure("mkdtemp: \(String(cString: strerror(errno)))")
        }
        path = String(cString: template)
        chmod(path, 0o755)
        helper = path + "/bin/adversary"
        deployment = path + "/deployment"
        state = path + "/state"
        try Adversary.sh("""
            set -e
            mkdir -m 0755 \(Adversary.q(path))/bin \(Adversary.q(deployment))
            mkdir -m 0700 \(Adversary.q(state))
            cc -O2 -o \(Adversary.q(helper)) \(Adversary.q(Repo.root + "/Tests/Adversarial/adversary.c"))
            """)
        try ExampleFacts.goodEnv.write(toFile: deployment + "/openmsi.env", atomically: false, encoding: .utf8)
        chmod(deployment + "/openmsi.env", 0o600)
        try ExampleFacts.goodProducerConfig.write(toFile: deployment + "/config.config", atomically: false, encoding: .utf8)
    }

    deinit {
        // Nothing is mounted here (mounts live in private namespaces that are gone), but be sure; then remove. (Immutable
        // entries only near the top: `chattr -R` is far too slow on the 30,000-level tree.)
        _ = try? Subprocess.run("/bin/sh", ["-c", """
            grep -o ' \(path)[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l
            find \(Adversary.q(path)) -maxdepth 3 -type f -exec chattr -i {} + 2>/dev/null
            \(Adversary.q(helper)) rmtree \(Adversary.q(path)) 2>/dev/null || rm -rf \(Adversary.q(path))
            """], timeout: 300)
    }

    /// `ezmsi fix`/`doctor` arguments for an upload deployment whose folder is `folder`.
    func deploymentArgs(folder: String) -> [String] {
        ["--deployment", deployment, "--folder", folder, "--",
         "DataFileUploadDirectory", "data", "--config", "config.config", "--topic_name", "xrd"]
    }

    /// `ezmsi fix --yes --plan PLAN` on `folder` with this scratch's state folder.
    func fix(_ folder: String, plan: String, format: String = "human", env: [String: String] = [:], removing: [String] = [],
             prefix: [String] = [], timeout: Double = 120) throws -> ProcessOutput {
        var e = ["XDG_STATE_HOME": state]
        for (k, v) in env { e[k] = v }
        return try ezmsi(["fix", "--yes", "--plan", plan, "--format", format] + deploymentArgs(folder: folder),
                         env: e, removing: removing, prefix: prefix, timeout: timeout)
    }

    /// `ezmsi undo [journal]` with this scratch's state folder.
    func undo(_ journal: String? = nil, env: [String: String] = [:], removing: [String] = [], prefix: [String] = [],
              timeout: Double = 120) throws -> ProcessOutput {
        var e = ["XDG_STATE_HOME": state]
        for (k, v) in env { e[k] = v }
        return try ezmsi(["undo"] + (journal.map { [$0] } ?? []), env: e, removing: removing, prefix: prefix, timeout: timeout)
    }

    /// The journals in the state folder (none when the fix wrote none).
    var journals: [String] {
        let dir = state + "/ezmsi/journals"
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".jsonl") }.sorted()
            .map { dir + "/" + $0 }
    }

    /// Runs the helper (or any program) as the attacker, to completion.
    func asAttacker(_ executable: String, _ args: [String], timeout: Double = 120) throws -> ProcessOutput {
        try Subprocess.run("/usr/bin/setpriv", Adversary.setprivArgs + [executable] + args, timeout: timeout)
    }

    /// Starts the helper as the attacker in the background (stop it with `stop`).
    func startAttacker(_ args: [String]) throws -> ChildProcess {
        let child = try ChildProcess.spawn("/usr/bin/setpriv", Adversary.setprivArgs + [helper] + args, stdout: .pipe, stderr: .pipe)
        usleep(20_000)  // let it start swapping before the fix does anything
        return child
    }

    /// Stops a background attacker; returns what it printed (its counts).
    @discardableResult
    func stop(_ child: ChildProcess) -> String {
        child.send(SIGTERM)
        var out: [UInt8] = [], err: [UInt8] = []
        _ = child.drainOutput(until: Date().addingTimeInterval(5), stdout: &out, stderr: &err)
        if !child.waitForExit(timeout: 5) {
            child.send(SIGKILL)
            _ = child.waitForExit(timeout: 5)
        }
        return String(decoding: out + err, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The helper's snapshot of a tree (owner, mode, ACLs, inode of every entry).
    func snapshot(_ root: String) throws -> TreeSnapshot {
        let out = try Subprocess.run(helper, ["snapshot", root], timeout: 300)
        guard out.status == 0 else { throw TestFailure("snapshot \(root) failed: \(out.stderr)") }
        return TreeSnapshot(out.stdout)
    }

    /// A byte-for-byte fingerprint of files or directories outside the tree: `stat` (mode, owner, inode, links,
    /// size, mtime and ctime), `getfacl -p` and the content hash of files.
    func fingerprint(_ paths: [String]) throws -> String { try Adversary.sh(Self.fingerprintScript(paths)) }

    /// The lines of fingerprint `now` that differ from `before` (for messages).
    static func changes(from before: String, to now: String) -> String {
        let was = Set(before.split(separator: "\n")), lines = now.split(separator: "\n")
        let changed = lines.filter { !was.contains($0) && !$0.hasPrefix("# ") }
        return changed.isEmpty ? "(no line differs)" : "now: " + changed.prefix(12).joined(separator: " | ")
    }

    /// The shell commands of `fingerprint` (also run inside a mount namespace).
    static func fingerprintScript(_ paths: [String]) -> String {
        paths.map { p in
            let f = Adversary.q(p)
            return "stat -c '%n %F %a %u %g %i %h %s %Y ctime=%Z' \(f); getfacl -p -n \(f) 2>&1; [ -f \(f) ] && sha256sum < \(f); true"
        }.joined(separator: "\n")
    }

    /// Root-owned set-uid or set-gid files below `root` (find -perm /6000), as `mode uid gid inode path` lines.
    func rootPrivileged(_ root: String) throws -> [String] {
        try Adversary.sh("find \(Adversary.q(root)) -xdev -user 0 -perm /6000 -printf '%m %U %G %i %p\\n'")
            .split(separator: "\n").map(String.init)
    }
}

/// The helper's `snapshot`: one entry per line (depth-first, names sorted), with its path rebuilt.
struct TreeSnapshot: Equatable {
    struct Entry: Equatable {
        var path: String
        var depth: Int
        var type: String
        var ino: UInt64
        var nlink: Int
        var mode: String
        var uid: UInt32
        var gid: UInt32
        var size: Int
        var acl: String
        var defaultACL: String

        /// What the fixer may change: type, owner, mode, ACLs.
        var security: String { "\(type) \(mode) \(uid):\(gid) acl=\(acl) default=\(defaultACL)" }
        /// The path for messages.
        var shown: String { path.count <= 200 ? path : String(path.prefix(100)) + "…" + String(path.suffix(60)) }
        var mine: String { "\(shown) [\(security)]" }
    }

    var entries: [Entry] = []
    var text: String

    init(_ text: String) {
        self.text = text
        var prefix: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 3, let depth = Int(f[0]) else { continue }
            if f[1] == ">" {
                // The subtree of directory f[2] (at depth `depth`) follows.
                if prefix.count > depth - 1 { prefix.removeLast(prefix.count - max(0, depth - 1)) }
                prefix.append(f[2])
                continue
            }
            guard f.count >= 11 else { continue }
            // Deep entries (the 30,000-level tree) are named by their depth and the end of their path: whole paths
            // would take gigabytes.
            let parents = prefix.prefix(max(0, depth - 1))
            let path = depth == 0 ? "." : depth <= 100 ? (parents + [f[1]]).joined(separator: "/")
                : "(\(depth) levels down)…/" + (parents.suffix(2) + [f[1]]).joined(separator: "/")
            entries.append(Entry(path: path, depth: depth, type: f[2], ino: UInt64(f[3]) ?? 0, nlink: Int(f[4]) ?? 0,
                                 mode: f[5], uid: UInt32(f[6]) ?? 0, gid: UInt32(f[7]) ?? 0, size: Int(f[8]) ?? 0,
                                 acl: f[9], defaultACL: f[10]))
        }
    }

    static func == (a: TreeSnapshot, b: TreeSnapshot) -> Bool { a.text == b.text }

    func byIno() -> [UInt64: Entry] { Dictionary(entries.map { ($0.ino, $0) }, uniquingKeysWith: { a, _ in a }) }
    func byPath() -> [String: Entry] { Dictionary(entries.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a }) }

    /// The first differences against `other` (for messages).
    func differences(from other: TreeSnapshot, limit: Int = 6) -> String {
        let mine = byPath(), theirs = other.byPath()
        var out: [String] = []
        for e in other.entries where out.count < limit {
            guard let now = mine[e.path] else { out.append("\(e.shown): gone"); continue }
            if now != e { out.append("\(e.shown): was [\(e.security) ino \(e.ino)], now [\(now.security) ino \(now.ino)]") }
        }
        for e in entries where theirs[e.path] == nil && out.count < limit { out.append("\(e.shown): new [\(e.security)]") }
        return out.isEmpty ? "(no difference by path)" : out.joined(separator: "; ")
    }
}

/// What the output a human sees may not contain: terminal controls from file names, forged CI annotations.
enum TerminalSafety {
    /// The offending bytes of `bytes` (ESC, CR, other C0 but tab and newline, DEL, C1 as UTF-8 or raw), described.
    static func controls(in bytes: [UInt8]) -> [String] {
        var found: [String] = []
        var i = 0
        while i < bytes.count && found.count < 8 {
            let b = bytes[i]
            let context = String(decoding: bytes[max(0, i - 20)..<min(bytes.count, i + 20)], as: UTF8.self).debugDescription
            func hex(_ v: UInt8) -> String { String(v, radix: 16, uppercase: true) }
            if (b < 0x20 && b != 0x0A && b != 0x09) || b == 0x7F {
                found.append("raw 0x\(hex(b)) at byte \(i) near \(context)")
            } else if b == 0xC2, i + 1 < bytes.count, (0x80...0x9F).contains(bytes[i + 1]) {
                found.append("C1 U+00\(hex(bytes[i + 1])) (UTF-8) at byte \(i) near \(context)")
                i += 1
            } else if (0x80...0x9F).contains(b) && !isContinuation(bytes, i) {
                found.append("raw C1 byte 0x\(hex(b)) at byte \(i) near \(context)")
            }
            i += 1
        }
        return found
    }

    /// Whether the byte at `i` continues a valid UTF-8 sequence started before it.
    private static func isContinuation(_ bytes: [UInt8], _ i: Int) -> Bool {
        var start = i - 1
        while start >= 0 && start >= i - 3 && bytes[start] & 0xC0 == 0x80 { start -= 1 }
        guard start >= 0 else { return false }
        let lead = bytes[start]
        let length = lead >= 0xF0 && lead < 0xF8 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 ? 2 : 0
        return length > 0 && i - start < length && lead != 0xC2
    }

    /// Lines that a CI runner would take as an annotation or command (`::error`, `::warning`, …).
    static func forgedAnnotations(in bytes: [UInt8]) -> [String] {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.hasPrefix("::") }
    }
}
