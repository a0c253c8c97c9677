import Foundation
import Testing
@testable import EZMSICore

/// The config parser against Python's own `configparser` (the oracle script drives CPython), on the real samples and
/// on a generated corpus of mutations.
struct ConfigParserDifferentialTests {
    static let corpusSize = 400

    /// Generated once per test run into a temp folder: mut-NNNN.config, sample-*.config, expected.json.
    static let corpus: (dir: String, expected: [String: [String: Any]]) = {
        let dir = FileManager.default.temporaryDirectory.path + "/ezmsi-cfgcorpus-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        let out = try? Subprocess.run("/usr/bin/env", ["python3", Repo.root + "/Tests/Oracles/configparser_oracle.py", "generate",
                                                       dir, "--seed", "1", "--count", String(corpusSize)], timeout: 120)
        let data = FileManager.default.contents(atPath: dir + "/expected.json") ?? Data("{}".utf8)
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: [String: Any]] ?? [:]
        if json.isEmpty { print("oracle failed: \(out?.stderr ?? "no output")") }
        return (dir, json)
    }()

    @Test func corpusIsLargeAndCoversEveryErrorKind() {
        let expected = Self.corpus.expected
        #expect(expected.count >= Self.corpusSize + 7)
        let kinds = Set(expected.values.compactMap { ($0["error"] as? [String: Any])?["type"] as? String })
        for kind in ["MissingSectionHeaderError", "ParsingError", "DuplicateSectionError", "DuplicateOptionError", "UnicodeDecodeError"] {
            #expect(kinds.contains(kind), "corpus lacks \(kind)")
        }
    }

    @Test func swiftParserAgreesWithPythonOnEveryFile() throws {
        var disagreements: [String] = []
        for (name, oracle) in Self.corpus.expected.sorted(by: { $0.key < $1.key }) {
            let bytes = [UInt8](FileManager.default.contents(atPath: Self.corpus.dir + "/" + name) ?? Data())
            let ours = ConfigParser.parse(bytes: bytes, path: name)
            if let problem = Self.compare(ours, oracle) { disagreements.append("\(name): \(problem)") }
        }
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements:\n\(disagreements.prefix(15).joined(separator: "\n"))")
    }

    static func compare(_ ours: ConfigFile, _ oracle: [String: Any]) -> String? {
        if let error = oracle["error"] as? [String: Any] {
            let type = error["type"] as? String ?? "?"
            let line = error["line"] as? Int
            guard let mine = ours.pythonError else { return "Python raises \(type) at \(line ?? -1), we accept the file" }
            if mine.kind != type || (line != nil && mine.line != line) {
                return "Python raises \(type) at \(line ?? -1), we say \(mine.kind) at \(mine.line)"
            }
            return nil
        }
        if let mine = ours.pythonError { return "Python accepts, we say \(mine.kind) at \(mine.line)" }
        func compareOptions(_ section: String, _ mine: [ConfigOption], _ theirs: [[String: Any]]) -> String? {
            if mine.map(\.key) != theirs.map({ $0["key"] as? String ?? "" }) {
                return "[\(section)] keys \(mine.map(\.key)) vs \(theirs.map { $0["key"] as? String ?? "" })"
            }
            for (o, t) in zip(mine, theirs) {
                if o.raw != t["raw"] as? String { return "[\(section)] \(o.key) raw \(o.raw.debugDescription) vs \((t["raw"] as? String ?? "nil").debugDescription)" }
                let value = ours.value(section, o.key)
                switch value {
                case .success(let v)?:
                    if let err = t["interpolationError"] as? String { return "[\(section)] \(o.key): Python \(err), we \(v.debugDescription)" }
                    if v != t["value"] as? String { return "[\(section)] \(o.key) value \(v.debugDescription) vs \(String(describing: t["value"]))" }
                case .failure(let f)?:
                    if f.kind != t["interpolationError"] as? String { return "[\(section)] \(o.key): we \(f.kind), Python \(String(describing: t["interpolationError"]))" }
                case nil:
                    return "[\(section)] \(o.key) missing"
                }
            }
            return nil
        }
        let sections = oracle["sections"] as? [[String: Any]] ?? []
        if ours.sections.map(\.name) != sections.map({ $0["name"] as? String ?? "" }) {
            return "sections \(ours.sections.map(\.name)) vs \(sections.map { $0["name"] as? String ?? "" })"
        }
        if let p = compareOptions("DEFAULT", ours.defaults, oracle["defaults"] as? [[String: Any]] ?? []) { return p }
        for (s, t) in zip(ours.sections, sections) {
            if let p = compareOptions(s.name, s.options, t["options"] as? [[String: Any]] ?? []) { return p }
        }
        return nil
    }

    @Test("every defect of the sample configs listed in openmsistream.md §7 is caught")
    func sampleDefects() throws {
        let samples = Repo.root + "/Tests/Fixtures/samples/ezopenmsistream"   // copies of ../shared/samples
        let dir = TempDir("samples")
        dir.write("openmsi.env", "CONFLUENT_BOOTSTRAP_SERVERS=\nCONFLUENT_USERNAME=\nCONFLUENT_PASSWORD=\n", mode: 0o600)
        _ = dir.mkdir("data")
        // EZ config.config with the recipe's consumer command.
        try FileManager.default.copyItem(atPath: samples + "/config.config", toPath: dir.path + "/config.config")
        var out = try ezmsi(["doctor", "--deployment", dir.path, "--folder", dir.path + "/data", "--format", "json", "--skip", "docker.",
                             "--", "DataFileDownloadDirectory", "data", "--config", "config.config", "--topic_name", "ucsb_indentation_data"])
        var report = try decodeJSON(out.stdout)
        var codes = Self.codes(report)
        #expect(codes.contains("empty-client-id"), "EZ config 1: empty client.id")
        #expect(codes.contains("reread-on-restart"), "EZ config 2: create_new + earliest")
        #expect(codes.contains("credential-empty"), "EZ config 4: empty $CONFLUENT_* values")
        // The same file for an upload program: no [producer].
        out = try ezmsi(["doctor", "--deployment", dir.path, "--folder", dir.path + "/data", "--format", "json", "--skip", "docker.",
                         "--", "DataFileUploadDirectory", "data", "--config", "config.config"])
        report = try decodeJSON(out.stdout)
        #expect(Self.codes(report).contains("section-missing"), "EZ config 3: no [producer]")
        // custom_image/config.config.
        try FileManager.default.removeItem(atPath: dir.path + "/config.config")
        try FileManager.default.copyItem(atPath: samples + "/custom_image/config.config", toPath: dir.path + "/config.config")
        out = try ezmsi(["doctor", "--deployment", dir.path, "--folder", dir.path + "/data", "--format", "json", "--skip", "docker.",
                         "--", "DataFileDownloadDirectory", "data", "--config", "config.config"])
        report = try decodeJSON(out.stdout)
        codes = Self.codes(report)
        #expect(codes.contains("shared-instance-id"), "custom config 1: group.instance.id shared by threads")
        #expect(codes.contains("group-id-overridden"), "custom config 2: group.id UCSB silently replaced")
        #expect(codes.contains("unknown-section"), "custom config 4: [server]")
        // The recipe's tracker.json (nine empty fields) is a valid deployment record.
        try FileManager.default.copyItem(atPath: samples + "/tracker.json", toPath: dir.path + "/tracker.json")
        out = try ezmsi(["doctor", "--deployment", dir.path, "--format", "json", "--skip", "docker."])
        #expect(out.status == 1, "no command given")
        report = try decodeJSON(out.stdout)
        #expect(Self.codes(report).contains("no-command"))
    }

    static func codes(_ report: [String: Any]) -> Set<String> {
        var codes = Set<String>()
        for check in report["checks"] as? [[String: Any]] ?? [] {
            for finding in check["findings"] as? [[String: Any]] ?? [] { if let c = finding["code"] as? String { codes.insert(c) } }
        }
        return codes
    }
}
