import Foundation
import Glibc
import Testing
@testable import EZMSICore

@Suite(.serialized) struct PermissionsIdentityTests {
    static let passwd = """
        root:x:0:0:root:/root:/bin/bash
        nobody:x:65534:65534:nobody:/nonexistent:/bin/false
        openmsi:x:1000:1000:OpenMSI user:/home/openmsi:/bin/bash
        analyst:x:1500:1500::/home/analyst:/bin/sh

        """
    static let group = """
        root:x:0:
        sudo:x:27:openmsi
        openmsi:x:1000:
        data:x:3000:analyst,openmsi
        nogroup:x:65534:
        """

    func resolve(_ spec: String, groupAdd: [String] = []) throws -> ContainerIdentity {
        try IdentityResolver.resolve(spec: spec, passwd: Self.passwd, group: Self.group, groupAdd: groupAdd)
    }

    @Test func userSpecsResolveLikeDocker() throws {
        let image = try resolve("openmsi")
        #expect(image.uid == 1000 && image.gid == 1000 && image.groups == [27, 3000])
        #expect(image.home == "/home/openmsi" && image.userName == "openmsi" && !image.bypassesDAC)

        let root = try resolve("")
        #expect(root.uid == 0 && root.gid == 0 && root.bypassesDAC && root.home == "/root")

        // A numeric uid with an entry takes that entry's gid, home and supplementary groups.
        let numeric = try resolve("1000")
        #expect(numeric.gid == 1000 && numeric.groups == [27, 3000] && numeric.userName == "openmsi")

        // Numeric ids need not exist: gid 0, HOME /.
        let unknown = try resolve("1234")
        #expect(unknown.uid == 1234 && unknown.gid == 0 && unknown.groups.isEmpty && unknown.home == "/")
        let pair = try resolve("1234:5678")
        #expect(pair.uid == 1234 && pair.gid == 5678 && pair.groups.isEmpty)

        // user:group sets the gid and drops the supplementary groups (runc's GetExecUser).
        let explicit = try resolve("openmsi:data")
        #expect(explicit.uid == 1000 && explicit.gid == 3000 && explicit.groups.isEmpty)
        let explicitNumeric = try resolve("analyst:27")
        #expect(explicitNumeric.uid == 1500 && explicitNumeric.gid == 27 && explicitNumeric.groups.isEmpty)

        // --group-add by name or number.
        let added = try resolve("1234:5678", groupAdd: ["sudo", "4242"])
        #expect(added.groups == [27, 4242])

        #expect(throws: IdentityError.noSuchUser("nosuchuser")) { try resolve("nosuchuser") }
        #expect(IdentityError.noSuchUser("nosuchuser").description
                == "unable to find user nosuchuser: no matching entries in passwd file")
        #expect(throws: IdentityError.noSuchGroup("nosuchgroup")) { try resolve("openmsi:nosuchgroup") }
        #expect(throws: IdentityError.noSuchGroup("staff")) { try resolve("1000", groupAdd: ["staff"]) }

        // No /etc/passwd in the image: names fail, numbers work, "" is root.
        #expect(throws: IdentityError.noSuchUser("openmsi")) {
            try IdentityResolver.resolve(spec: "openmsi", passwd: nil, group: nil)
        }
        #expect(try IdentityResolver.resolve(spec: "1000:1000", passwd: nil, group: nil).uid == 1000)
        #expect(try IdentityResolver.resolve(spec: "", passwd: nil, group: nil).uid == 0)
    }

    @Test func usernsRemapAndRootlessMapToHostIDs() throws {
        let subuid = "alice:100000:65536\ndockremap:231072:65536\n1001:300000:1000\n"
        let subgid = "alice:100000:65536\ndockremap:231072:65536\n"
        let remap = try IDMapping.usernsRemap(user: "default", subuid: subuid, subgid: subgid)
        let openmsi = ContainerIdentity(uid: 1000, gid: 1000, groups: [27], source: "image user")
        let host = try remap.hostIdentity(openmsi)
        #expect(host.uid == 232072 && host.gid == 232072 && host.groups == [231099])
        #expect(host.source.contains("userns-remap"))
        #expect(try remap.hostUID(0) == 231072)
        #expect(throws: IdentityError.self) { try remap.hostUID(70000) }
        #expect(remap.uids.container(231072 + 5) == 5)

        // Lines keyed by the numeric uid win over the name.
        let byID = try IDMapping.usernsRemap(user: "bob", userID: 1001, subuid: subuid, subgid: "bob:5000:100\n")
        #expect(try byID.hostUID(1) == 300001)

        // Several ranges are concatenated in start order.
        let multi = try IDMapping.usernsRemap(user: "r", subuid: "r:500000:10\nr:400000:10\n", subgid: "r:1:5\n")
        #expect(try multi.hostUID(0) == 400000 && multi.hostUID(10) == 500000)

        let rootless = try IDMapping.rootless(hostUID: 1000, hostGID: 1000, user: "alice", subuid: subuid, subgid: subgid)
        #expect(try rootless.hostUID(0) == 1000)
        #expect(try rootless.hostUID(1) == 100000)
        #expect(try rootless.hostIdentity(openmsi).uid == 100999)
        let mappedRoot = try rootless.hostIdentity(ContainerIdentity(uid: 0, gid: 0))
        #expect(mappedRoot.uid == 1000 && mappedRoot.bypassesDAC)
        #expect(mappedRoot.bypassScope?.covers(uid: 1000, gid: 1000) == true)
        #expect(mappedRoot.bypassScope?.covers(uid: 0, gid: 0) == false)

        #expect(throws: IdentityError.noSubordinateRange(file: "/etc/subuid", user: "carol")) {
            try IDMapping.rootless(hostUID: 1002, hostGID: 1002, user: "carol", subuid: subuid, subgid: subgid)
        }
        #expect(try IDMapping.identity.hostIdentity(openmsi) == openmsi)
    }

    @Test func tarReaderTakesTheFirstRegularFile() throws {
        let scratch = TempDir("tar")
        scratch.file("passwd", content: Self.passwd)
        // A pax header first (long mtime precision), like docker's archives may have.
        try PermShell.sh("cd \(scratch.path) && tar --format=pax -cf a.tar passwd && tar --format=gnu -cf g.tar passwd")
        for name in ["a.tar", "g.tar"] {
            let bytes = [UInt8](FileManager.default.contents(atPath: scratch.path + "/" + name)!)
            #expect(try Tar.firstFile(bytes).map { String(decoding: $0, as: UTF8.self) } == Self.passwd)
        }
        #expect(try Tar.firstFile([UInt8](repeating: 0, count: 1024)) == nil)
        var corrupt = [UInt8](FileManager.default.contents(atPath: scratch.path + "/g.tar")!)
        corrupt[10] ^= 0xFF
        #expect(throws: ImageUserFilesError.self) { try Tar.firstFile(corrupt) }
    }

    /// The real image, read without running it; the second load comes from the cache.
    @Test(.enabled(if: TestDocker.available)) func readsUsersOutOfTheRealImageAndCaches() throws {
        let inspect = try TestDocker.run(["image", "inspect", "--format", "{{.Id}}|{{.Config.User}}", TestDocker.image])
        try #require(inspect.status == 0, "\(inspect.stderr)")
        let fields = inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|", omittingEmptySubsequences: false)
        let imageID = String(fields[0])
        let configUser = fields.count > 1 ? String(fields[1]) : ""
        let cache = TempDir("cache")
        let dir = ImageUserGatherer.cacheDirectory(environment: ["XDG_CACHE_HOME": cache.path])!
        #expect(dir == cache.path + "/ezmsi/images")

        let before = try TestDocker.run(["ps", "-a", "-q", "--filter", "label=ezmsi.purpose=read-image-users"])
        let first = try ImageUserGatherer.load(imageID: imageID, docker: TestDocker.cli, environment: TestDocker.environment,
                                               cacheDirectory: dir)
        #expect(!first.cached)
        #expect(first.files.passwd?.contains("openmsi:x:1000:1000:") == true)
        let after = try TestDocker.run(["ps", "-a", "-q", "--filter", "label=ezmsi.purpose=read-image-users"])
        #expect(after.stdout == before.stdout, "the helper container is removed")
        let hex = imageID.replacingOccurrences(of: "sha256:", with: "")
        #expect(FileManager.default.fileExists(atPath: dir + "/\(hex).json"))

        let second = try ImageUserGatherer.load(imageID: imageID, docker: "/nonexistent/docker", environment: [:],
                                                cacheDirectory: dir)
        #expect(second.cached && second.files == first.files)

        let identity = try first.files.resolve(spec: configUser)
        #expect(configUser == "openmsi")
        #expect(identity.uid == 1000 && identity.gid == 1000 && identity.groups == [27])
        #expect(identity.home == "/home/openmsi")
        #expect(throws: IdentityError.noSuchUser("nosuchuser")) { try first.files.resolve(spec: "nosuchuser") }

        // The same answer docker gives when it really runs the image as that user.
        let real = try TestDocker.run(["run", "--rm", "--network", "none", "--entrypoint", "id", TestDocker.image])
        if real.status == 0 {
            #expect(real.stdout.contains("uid=1000") && real.stdout.contains("27"))
        }
    }
}
