import Foundation
import Testing
@testable import EZMSIChecks
@testable import EZMSICore

/// Every probe's own examples (like SwiftLint's triggering/non-triggering examples), run through the real runner.
struct ProbeExampleTests {
    static let cases: [(String, ProbeExample)] = Catalogue.all.flatMap { p in p.examples.map { (p.id, $0) } }

    @Test("each probe example gives its expected status", arguments: cases.indices)
    func example(_ index: Int) throws {
        let (id, example) = Self.cases[index]
        let probe = try #require(Catalogue.all.first { $0.id == id })
        let facts = example.facts()
        let outcome = try probe.check(facts)
        #expect(outcome.status == example.expected, "\(id): \(example.name): got \(outcome.status) \(outcome.findings.map(\.code))")
        // An example gives every fact its probe reads: none is gathered from this machine.
        #expect(facts.unprovided.isEmpty, "\(id): \(example.name): reads facts it does not give: \(facts.unprovided)")
        if let code = example.expectedCode {
            #expect(outcome.findings.contains { $0.code == code }, "\(id): \(example.name): no finding \(code) in \(outcome.findings.map(\.code))")
        }
    }

    /// Example facts never fall back to this machine: a fact an example does not give reads as not gathered and is
    /// named (the test above fails with that name).
    @Test func factsAnExampleDoesNotGiveAreNamedNotGathered() {
        let facts = ExampleFacts.make()
        #expect(facts.unprovided.isEmpty)
        let reach = facts.brokerReach.get()
        if case .failure(let why) = reach.settings { #expect(why.reason.contains("brokerReach")) } else { Issue.record("\(reach)") }
        _ = facts.brokerReach.get()
        if case .notPossible(let why) = facts.proof.get() { #expect(why.contains("proof")) } else { Issue.record("proof") }
        #expect(facts.unprovided == ["brokerReach", "proof"])
        #expect(Facts(deployment: facts.deployment, environment: [:]).unprovided.isEmpty, "live facts gather")
    }

    @Test func everyProbeHasPassingAndTriggeringExamples() {
        for probe in Catalogue.all {
            #expect(probe.examples.contains { $0.expected == .pass }, "\(probe.id) has no passing example")
            #expect(probe.examples.contains { $0.expected != .pass }, "\(probe.id) has no triggering example")
        }
    }

    @Test func catalogueListsEveryProbeFileOnce() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Repo.root + "/checks").filter { $0.hasSuffix(".swift") }
        var declared: [String] = []
        for file in files {
            let text = try String(contentsOfFile: Repo.root + "/checks/" + file, encoding: .utf8)
            for line in text.split(separator: "\n") where line.hasPrefix("public struct ") && line.contains(": Probe") {
                declared.append(String(line.dropFirst("public struct ".count).prefix { $0 != ":" }))
            }
        }
        let listed = Catalogue.all.map { String(describing: type(of: $0)) }
        #expect(Set(declared) == Set(listed), "checks/ declares \(declared.sorted()) but Catalogue lists \(listed.sorted())")
        #expect(Set(Catalogue.all.map(\.id)).count == Catalogue.all.count, "duplicate probe ids")
        for probe in Catalogue.all {
            for dep in probe.dependsOn { #expect(Catalogue.all.contains { $0.id == dep }, "\(probe.id) depends on unknown \(dep)") }
        }
        // No cycle, and the catalogue lists each probe after what it depends on (the reports keep its order).
        #expect(try Runner.ordered(Catalogue.all).map(\.id) == Catalogue.all.map(\.id))
    }
}
