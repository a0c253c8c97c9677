import Foundation
import Testing

/// Rules of the code base that keep it one a newcomer can take over (issue 10), checked on the sources themselves.
struct HouseRulesTests {
    private static func swiftFiles(under folders: [String]) -> [(path: String, text: String)] {
        var result: [(String, String)] = []
        for folder in folders {
            let base = Repo.root + "/" + folder
            guard let walker = FileManager.default.enumerator(atPath: base) else { continue }
            while let rel = walker.nextObject() as? String {
                guard rel.hasSuffix(".swift") else { continue }
                let path = folder + "/" + rel
                if let text = try? String(contentsOfFile: Repo.root + "/" + path, encoding: .utf8) { result.append((path, text)) }
            }
        }
        return result.sorted { $0.0 < $1.0 }
    }

    /// Commands throw typed errors (`CLIError`); only the entry point exits, with the documented codes.
    @Test func onlyTheEntryPointExits() throws {
        let call = try Regex(#"(^|[^.\w])(Foundation\.|Glibc\.)?exit\("#)
        var offenders: [String] = []
        for (path, text) in Self.swiftFiles(under: ["Sources", "checks"]) where path != "Sources/ezmsi/main.swift" {
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let code = line.trimmingCharacters(in: .whitespaces)
                if code.hasPrefix("//") || code.hasPrefix("case exit(") { continue }
                if line.contains(call) { offenders.append("\(path):\(n + 1): \(code)") }
            }
        }
        #expect(offenders.isEmpty, "exit() outside Sources/ezmsi/main.swift:\n\(offenders.joined(separator: "\n"))")
        #expect(Self.swiftFiles(under: ["Sources/ezmsi"]).count > 10, "the sources were found")
    }

    /// One `--timeout`, with one default, shared by every command that runs probes.
    @Test func oneTimeoutOption() {
        let declarations = Self.swiftFiles(under: ["Sources/ezmsi"]).flatMap { file in
            file.text.split(separator: "\n").filter { $0.contains("var timeout: Double =") }.map { "\(file.path): \($0)" }
        }
        #expect(declarations.count == 1 && declarations[0].hasPrefix("Sources/ezmsi/Options/"), "\(declarations)")
    }

    /// Every byte the CLI prints goes through `Output`, whose scrubber is the last line of defence for secrets.
    @Test func everyWriteGoesThroughOutput() {
        let writes = ["print(", "FileHandle.standardOutput", "FileHandle.standardError", "fputs(", "putchar("]
        var offenders: [String] = []
        for (path, text) in Self.swiftFiles(under: ["Sources/ezmsi"]) where path != "Sources/ezmsi/Support/Output.swift" {
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where writes.contains(where: { line.contains($0) }) && !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                offenders.append("\(path):\(n + 1): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        #expect(offenders.isEmpty, "writes that bypass Output:\n\(offenders.joined(separator: "\n"))")
    }
}
