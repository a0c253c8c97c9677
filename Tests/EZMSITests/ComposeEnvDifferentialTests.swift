import Foundation
import Testing
@testable import EZMSICore

/// The real docker-compose (1.29, `docker-compose config`), run by Tests/Oracles/compose_env_oracle.py.
enum ComposeOracle {
    static let script = Repo.root + "/Tests/Oracles/compose_env_oracle.py"
    static let dockerCorpus = Repo.root + "/Tests/Fixtures/envfiles"
    static let composeCorpus = Repo.root + "/Tests/Fixtures/compose-envfiles"

    static func envFiles(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".env") }.sorted()
            .map { dir + "/" + $0 }
    }
    /// Both corpora; file names are unique across them (`NN-…` and `cNN-…`).
    static let files: [String] = envFiles(dockerCorpus) + envFiles(composeCorpus)
    static let names: [String] = files.map { ($0 as NSString).lastPathComponent }

    static let composeBinary: String? = {
        let env = ProcessInfo.processInfo.environment
        if let path = Subprocess.which("docker-compose", path: env["PATH"]) { return path }
        return FileManager.default.isExecutableFile(atPath: "/usr/bin/docker-compose") ? "/usr/bin/docker-compose" : nil
    }()
    static var installed: Bool { composeBinary != nil }
    /// Runs when docker-compose is installed; with EZMSI_REQUIRE_DOCKER=1 it runs (and fails) without it.
    static var enabled: Bool { installed || TestDocker.required }

    struct Answer {
        var exit: Int
        var env: [String: String?]?
        var warnings: [Int]
        var error: String?
    }

    static func runOracle(_ args: [String]) throws -> ProcessOutput {
        var env = ProcessInfo.processInfo.environment
        if let host = TestDocker.host { env["DOCKER_HOST"] = host }
        if let binary = composeBinary {
            env["PATH"] = (binary as NSString).deletingLastPathComponent + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        }
        let python = Subprocess.which("python3", path: env["PATH"]) ?? "/usr/bin/python3"
        return try Subprocess.run(python, [script] + args, environment: env, timeout: 900)
    }

    /// The environment docker-compose ran with: the Swift parser gets the same one.
    static let environment: Result<[String: String], TestFailure> = {
        do {
            let out = try runOracle(["--print-env"])
            guard out.status == 0, let object = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: String]
            else { return .failure(TestFailure("oracle --print-env failed: \(out.stderr)")) }
            return .success(object)
        } catch {
            return .failure(TestFailure("cannot run the oracle: \(error)"))
        }
    }()

    /// One oracle run over every file (docker-compose once per file, 4 at a time).
    static let answers: Result<[String: Answer], TestFailure> = {
        guard installed else {
            return .failure(TestFailure("docker-compose is not installed (apt-get install docker-compose); EZMSI_REQUIRE_DOCKER=1 requires it"))
        }
        do {
            let out = try runOracle(["--basename", "--jobs", "4"] + files)
            guard out.status == 0, let object = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
            else { return .failure(TestFailure("oracle failed (\(out.status)): \(out.stderr.suffix(800))")) }
            var answers: [String: Answer] = [:]
            for (name, raw) in object {
                guard let r = raw as? [String: Any] else { continue }
                var env: [String: String?]?
                if let e = r["env"] as? [String: Any] {
                    env = e.mapValues { $0 as? String }
                }
                answers[name] = Answer(exit: r["exit"] as? Int ?? -1, env: env, warnings: r["warnings"] as? [Int] ?? [],
                                       error: r["error"] as? String)
            }
            return .success(answers)
        } catch {
            return .failure(TestFailure("cannot run the oracle: \(error)"))
        }
    }()

    static func ours(_ path: String, environment: [String: String]) -> ComposeEnvFile {
        let bytes = [UInt8](FileManager.default.contents(atPath: path) ?? Data())
        return ComposeEnvFileParser.parse(bytes: bytes, path: path, environment: environment)
    }

    /// Differences between our parse and compose's answer (empty when they agree).
    static func differences(_ ours: ComposeEnvFile, _ theirs: Answer, environment: [String: String]) -> [String] {
        var out: [String] = []
        if let error = theirs.error {
            if let mine = ours.error {
                if mine.message != error { out.append("compose says \(error); we say \(mine.message)") }
            } else {
                out.append("compose refuses (\(error)), we accept")
            }
            return out
        }
        if theirs.exit != 0 { out.append("compose exited \(theirs.exit)") }
        if let mine = ours.error { out.append("we refuse (\(mine.message)), compose accepts") }
        let mine = ours.environment(host: environment)
        let expected = theirs.env ?? [:]
        for key in Set(mine.keys).union(expected.keys).sorted() where mine[key] != expected[key] {
            func show(_ v: String??) -> String { v.map { $0.map { "\($0.debugDescription)" } ?? "null" } ?? "absent" }
            out.append("\(key.debugDescription): ours \(show(mine[key])), compose \(show(expected[key]))")
        }
        let lines = ours.skipped.map(\.line)
        if lines != theirs.warnings { out.append("skipped lines: ours \(lines), compose warns about \(theirs.warnings)") }
        return out
    }
}

struct ComposeEnvDifferentialTests {
    @Test func corpusIsLarge() {
        #expect(ComposeOracle.envFiles(ComposeOracle.dockerCorpus).count >= 60)
        #expect(ComposeOracle.envFiles(ComposeOracle.composeCorpus).count >= 60)
        #expect(Set(ComposeOracle.names).count == ComposeOracle.names.count, "file names must be unique across corpora")
    }

    @Test("parser == docker-compose", .enabled(if: ComposeOracle.enabled, "docker-compose is not installed"),
          arguments: ComposeOracle.files)
    func agreesWithCompose(_ path: String) throws {
        let environment = try ComposeOracle.environment.get()
        let answers = try ComposeOracle.answers.get()
        let name = (path as NSString).lastPathComponent
        let theirs = try #require(answers[name], "no oracle answer for \(name)")
        let diffs = ComposeOracle.differences(ComposeOracle.ours(path, environment: environment), theirs, environment: environment)
        #expect(diffs.isEmpty, "\(name): \(diffs.joined(separator: "; "))")
    }

    /// One line with the totals, for the log.
    @Test(.enabled(if: ComposeOracle.enabled, "docker-compose is not installed"))
    func agreementSummary() throws {
        let environment = try ComposeOracle.environment.get()
        let answers = try ComposeOracle.answers.get()
        var files = 0, agreeing = 0, keys = 0, errors = 0, skips = 0
        for path in ComposeOracle.files {
            guard let theirs = answers[(path as NSString).lastPathComponent] else { continue }
            files += 1
            let ours = ComposeOracle.ours(path, environment: environment)
            if ComposeOracle.differences(ours, theirs, environment: environment).isEmpty {
                agreeing += 1
                keys += theirs.env?.count ?? 0
                errors += theirs.error == nil ? 0 : 1
                skips += theirs.warnings.count
            }
        }
        print("compose differential: \(agreeing)/\(files) files agree with docker-compose config " +
              "(\(keys) variables, \(errors) refused files, \(skips) skipped statements)")
        #expect(files == ComposeOracle.files.count)
        #expect(agreeing == files)
    }

    @Test func parserBasics() {
        let env = ["V": "fromenv", "E": ""]
        func values(_ text: String) -> [String: String?] {
            ComposeEnvFileParser.parse(bytes: Array(text.utf8), path: "t", environment: env).values
        }
        #expect(values("PW=\"a b\" # c\n") == ["PW": "a b"])
        #expect(values("A=x # c\nB=x#c\nC= #c\n") == ["A": "x", "B": "x#c", "C": "#c"])
        #expect(values("A=${V}\nB=$V\nC=${U:-d}\nD=${E:-d}\nF=$${V}\n") == ["A": "fromenv", "B": "$V", "C": "d", "D": "", "F": "$fromenv"])
        let bare: String? = nil
        #expect(values("export A = 1\nB\n") == ["A": "1", "B": bare])
        let file = ComposeEnvFileParser.parse(bytes: Array("A=1\n\n\nBAD LINE\nB=\"x\ny\"\nC=2\n".utf8), path: "t", environment: [:])
        #expect(file.skipped == [ComposeEnvSkip(line: 2, statementLine: 4)])
        #expect(file.lastEntry("B")?.multiline == true)
        #expect(file.lastEntry("C")?.line == 7)
        let bad = ComposeEnvFileParser.parse(bytes: [0x41, 0x3D, 0xFF, 0x0A], path: "t", environment: [:])
        #expect(bad.error?.message == "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 2: invalid start byte")
    }
}
