import Foundation
import Glibc

/// Folders `ezmsi fix` never changes and the doctor never accepts as a data folder: opening them to the container's
/// user would hand it the host (`/etc`, `/usr`, …), or every user's files (`/home`, a home directory itself).
/// Folders inside `/var`, `/run`, `/home`, `/root`, `/tmp` and inside a home directory are fine (`/var/lib/scans`,
/// `/run/media/ana/disk`, `/home/ana/scans`).
public enum SystemFolders {
    /// The system trees: the folder and everything inside. `/lib*` is every top-level folder whose name starts with lib.
    static let trees = ["/etc", "/usr", "/bin", "/sbin", "/boot", "/dev", "/proc", "/sys"]
    /// Refused themselves; what is inside them is fine.
    static let themselves = ["/", "/var", "/run", "/home", "/root", "/tmp"]

    public struct Refusal: Sendable, Equatable {
        /// The folder after resolving symlinks and `..`.
        public var resolved: String
        public var why: String
    }

    /// nil when `path` (absolute) may be fixed. `homes` are the home directories of the system's users.
    public static func refusal(for path: String, homes: [String]? = nil) -> Refusal? {
        let resolved = resolve(path)
        let shown = resolved == path ? resolved : "\(path) (that is \(resolved))"
        for tree in trees where resolved == tree || resolved.hasPrefix(tree + "/") {
            return Refusal(resolved: resolved, why: "\(shown) is in the system tree \(tree)")
        }
        let top = resolved.split(separator: "/").first.map(String.init) ?? ""
        if top.hasPrefix("lib") {
            return Refusal(resolved: resolved, why: "\(shown) is in the system tree /\(top)")
        }
        if themselves.contains(resolved) {
            return Refusal(resolved: resolved, why: "\(shown) is a system folder; use a folder inside it (e.g. \(resolved == "/" ? "" : resolved)/scans)")
        }
        for home in homes ?? allHomes() where resolve(home) == resolved {
            return Refusal(resolved: resolved, why: "\(shown) is a home directory; use a folder inside it (e.g. \(resolved)/scans)")
        }
        return nil
    }

    /// Symlinks and `..` resolved as the kernel would: `realpath` of the longest existing prefix, the rest lexically.
    public static func resolve(_ path: String) -> String {
        var existing = path
        var rest: [String] = []
        while true {
            if let r = realpath(existing, nil) {
                var out = String(cString: r)
                free(r)
                for c in rest.reversed() {
                    if c == "." || c.isEmpty { continue }
                    if c == ".." {
                        out = (out as NSString).deletingLastPathComponent
                        if out.isEmpty { out = "/" }
                    } else {
                        out = out == "/" ? "/" + c : out + "/" + c
                    }
                }
                return out
            }
            let parent = (existing as NSString).deletingLastPathComponent
            if parent == existing || parent.isEmpty { return path }
            rest.append((existing as NSString).lastPathComponent)
            existing = parent
        }
    }

    /// Every home directory in the user database (`getpwent`), except `/` and ones that do not exist.
    public static func allHomes() -> [String] {
        var homes: [String] = []
        setpwent()
        while let pw = getpwent() {
            guard let dir = pw.pointee.pw_dir else { continue }
            let home = String(cString: dir)
            var st = stat()
            if home != "/" && !home.isEmpty && stat(home, &st) == 0 { homes.append(home) }
        }
        endpwent()
        if let home = ProcessInfo.processInfo.environment["HOME"], home.hasPrefix("/"), home != "/" { homes.append(home) }
        return homes
    }
}
