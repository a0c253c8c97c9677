import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

struct Checks: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the probes the doctor runs.")
    @Option(help: "human or json.") var format: OutputFormat = .human

    struct Entry: Encodable {
        var id: String
        var title: String
        var dependsOn: [String]
        var rationale: String
    }

    func run() throws {
        let entries = Catalogue.all.map { Entry(id: $0.id, title: $0.title, dependsOn: $0.dependsOn, rationale: $0.rationale) }
        let out = Output.beforeFacts
        switch format {
        case .json:
            out.stdout(JSONRenderer.render(["schemaVersion": AnyEncodable(Report.schemaVersion), "checks": AnyEncodable(entries)]))
        case .human:
            let width = entries.map(\.id.count).max() ?? 0
            for e in entries {
                let deps = e.dependsOn.isEmpty ? "" : "  (after \(e.dependsOn.joined(separator: ", ")))"
                out.stdout("\(e.id.padding(toLength: width + 2, withPad: " ", startingAt: 0))\(e.title)\(deps)\n")
                out.stdout(String(repeating: " ", count: width + 2) + e.rationale + "\n")
            }
        }
    }
}
