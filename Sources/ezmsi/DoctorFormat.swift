import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

/// `ezmsi doctor --format`: every format is rendered from the same `Report` (README, "Formats").
enum DoctorFormat: String, ExpressibleByArgument, CaseIterable {
    case human, json, junit, markdown, sarif, github

    /// The report in this format, secrets cut out of the report before encoding (escaping would hide them from the
    /// output scrub). The caller writes it through `Output`, which scrubs the text again.
    func render(_ unscrubbed: Report, scrubber: Secrets.Scrubber,
                environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let report = scrubber.scrub(unscrubbed)
        switch self {
        case .human: return HumanRenderer.render(report, color: Terminal.wantsColor(fd: 1, environment: environment))
        case .json: return JSONRenderer.render(report)
        case .junit: return JUnitRenderer.render(report)
        case .markdown: return MarkdownRenderer.render(report)
        case .sarif:
            let rules = Catalogue.all.map { ProbeRule(id: $0.id, title: $0.title, rationale: $0.rationale, dependsOn: $0.dependsOn) }
            return SARIFRenderer.render(report, rules: rules)
        case .github: return GitHubRenderer.render(report, workspace: environment["GITHUB_WORKSPACE"])
        }
    }
}
