import Foundation
import Glibc
@testable import EZMSICore


enum PermShell {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], timeout: Double = 120) throws -> Output {
        let out = try Subprocess.run(executable, arguments, timeout: timeout)
        return Output(status: out.status, stdout: out.stdout, stderr: out.stderr)
    }

    /// Runs a shell command as root; throws on failure.
    @discardableResult
    static func sh(_ script: String) throws -> String {
        let out = try run("/bin/sh", ["-c", script])
        guard out.status == 0 else {
            throw PermTestError("sh failed (\(out.status)): \(script.prefix(300))\n\(out.stderr)")
        }
        return out.stdout
    }

    /// Runs a shell script as another identity through setpriv (we are root).
    static func asIdentity(_ id: ContainerIdentity, script: String) throws -> Output {
        var args = ["--reuid=\(id.uid)", "--regid=\(id.gid)"]
        if id.groups.isEmpty {
            args.append("--clear-groups")
        } else {
            args.append("--groups=" + id.groups.map(String.init).joined(separator: ","))
        }
        args += ["--", "/bin/sh", "-c", script]
        return try run("/usr/bin/setpriv", args)
    }

    static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    static var isRoot: Bool { geteuid() == 0 }
}

struct PermTestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// SplitMix64: a deterministic generator so a failing case can be reproduced from its index.
struct PermRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    mutating func perm() -> Perm { Perm(rawValue: UInt16.random(in: 0...7, using: &self)) }
    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &self)] }
}

