import Foundation

/// The fix plans as the doctor lists them (the exact entry counts come from `ezmsi fix`, which walks the tree).
public enum FolderFixes {
    public static func describe(_ inode: InodeSecurity) -> String {
        "owner \(inode.uid):\(inode.gid), mode \(String(inode.mode & 0o7777, radix: 8))" + (inode.acl.map { ", ACL \($0.text)" } ?? ", no ACL")
    }

    /// Ranked: ACL grant (ownership unchanged), chown, run as the host user.
    public static func actions(_ facts: Facts) -> [FixAction] {
        guard case .success(let id) = facts.identity.get(), let folder = FolderGatherer.folderPath(facts.deployment, facts.command.get()) else {
            return []
        }
        let q = ShellWords.quote(folder)
        let uid = id.host.uid, gid = id.host.gid
        let write = facts.deployment.program?.folderNeed == .writeTree
        let bits = write ? "rwX" : "rX"
        return [
            FixAction(id: "acl", title: "Grant uid \(uid) by ACL (named entry + default ACL so new files inherit; ownership unchanged)",
                      commands: ["ezmsi fix --plan acl --yes", "# equivalent: setfacl -R -m u:\(uid):\(bits),d:u:\(uid):\(bits) \(q)"],
                      privilege: "owner of the entries, or root"),
            FixAction(id: "chown", title: "Give the folder to the container's user (you may lose access)",
                      commands: ["ezmsi fix --plan chown --yes", "# equivalent: chown -R \(uid):\(gid) \(q)"],
                      privilege: "root"),
            FixAction(id: "user", title: "Run the container as your own user (nothing on disk changes)",
                      commands: ["ezmsi command --user \"$(id -u):$(id -g)\"", "# and add HOME=\(ProgramTable.imageHome) to the env-file"],
                      privilege: "none"),
        ]
    }
}
