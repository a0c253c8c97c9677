import Foundation
import Testing
@testable import EZMSICore

/// The env-file parser against the real `docker run --env-file` (a container printing its environment).
struct EnvFileDifferentialTests {
    static let corpusDir = Repo.root + "/Tests/Fixtures/envfiles"
    static let files: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: corpusDir)) ?? [])
        .filter { $0.hasSuffix(".env") }.sorted()
    static let hostEnv = ["EZMSI_HOST_SET": "hostvalue"]
    /// Variables the image or runtime sets by itself; compared only when the file sets them.
    static let runtimeKeys: Set<String> = ["PATH", "HOSTNAME", "HOME", "TZ"]

    @Test func corpusIsLarge() { #expect(Self.files.count >= 40) }

    @Test("parser == docker", .enabled(if: TestDocker.available), arguments: files)
    func agreesWithDocker(_ name: String) throws {
        let path = Self.corpusDir + "/" + name
        let bytes = [UInt8](FileManager.default.contents(atPath: path) ?? Data())
        let ours = EnvFileParser.parse(bytes: bytes, path: path)
        let docker = try TestDocker.run(["run", "--rm", "--network", "none", "--env-file", path, "--entrypoint", "/bin/cat",
                                         TestDocker.image, "/proc/self/environ"],
                                        extraEnv: Self.hostEnv.merging(["EZMSI_HOST_UNSET": ""]) { a, _ in a }
                                            .filter { $0.key != "EZMSI_HOST_UNSET" })
        if docker.status == 125 {
            // docker refuses the file (or runc refuses a value): we must refuse it too, with the same line.
            if docker.stderr.contains("invalid env file") {
                let error = try #require(ours.error, "\(name): docker refuses (\(docker.stderr.prefix(120))), we accept")
                #expect(docker.stderr.contains(error.dockerMessage), "\(name): docker says \(docker.stderr.prefix(200)); we say \(error.dockerMessage)")
            } else {
                #expect(ours.entries.contains { $0.value?.unicodeScalars.contains("\u{0}") == true },
                        "\(name): container failed to start: \(docker.stderr.prefix(200))")
            }
            return
        }
        #expect(docker.status == 0, "\(name): docker exited \(docker.status): \(docker.stderr)")
        #expect(ours.error == nil, "\(name): we refuse (\(ours.error?.dockerMessage ?? "")), docker accepts")
        var theirs: [String: String] = [:]
        for item in docker.stdout.split(separator: "\0", omittingEmptySubsequences: true) {
            let s = String(item)
            guard let eq = s.firstIndex(of: "=") else { continue }
            theirs[String(s[..<eq])] = String(s[s.index(after: eq)...])
        }
        var mine = ours.resolved(host: Self.hostEnv)
        for key in Self.runtimeKeys where mine[key] == nil { theirs[key] = nil }
        for key in Self.runtimeKeys where mine[key] != nil && theirs[key] == nil { mine[key] = nil }
        #expect(mine == theirs, "\(name): ours \(mine) vs docker \(theirs)")
    }
}
