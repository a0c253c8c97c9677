import Foundation
import Testing
@testable import EZMSICore

private struct FakeProbe: Probe {
    var id: String
    var title = "fake"
    var rationale = "test"
    var dependsOn: [String] = []
    var examples: [ProbeExample] = []
    var body: @Sendable () throws -> ProbeOutcome

    func check(_ facts: Facts) throws -> ProbeOutcome { try body() }
}

private struct Boom: Error {}

struct RunnerTests {
    let facts = ExampleFacts.make()

    @Test func dependencyFailureBlocksDependents() throws {
        let probes: [any Probe] = [
            FakeProbe(id: "a.one") { ProbeOutcome("bad", findings: [.fail("x", "x")]) },
            FakeProbe(id: "a.two", dependsOn: ["a.one"]) { ProbeOutcome("never") },
            FakeProbe(id: "a.three", dependsOn: ["a.two"]) { ProbeOutcome("never") },
            FakeProbe(id: "b.warned") { ProbeOutcome("meh", findings: [.warn("w", "w")]) },
            FakeProbe(id: "b.after-warn", dependsOn: ["b.warned"]) { ProbeOutcome("ok") },
        ]
        let results = try Runner.run(probes, facts: facts, options: RunOptions())
        let byID = Dictionary(uniqueKeysWithValues: results.map { ($0.id, $0) })
        #expect(byID["a.one"]?.status == .fail)
        #expect(byID["a.two"]?.status == .blocked)
        #expect(byID["a.two"]?.blockedBy == ["a.one"])
        #expect(byID["a.three"]?.status == .blocked)
        #expect(byID["a.three"]?.blockedBy == ["a.two"])
        #expect(byID["b.after-warn"]?.status == .pass, "a warning does not block")
    }

    @Test func throwingAndHangingProbesAreErrorsAndOthersFinish() throws {
        let probes: [any Probe] = [
            FakeProbe(id: "x.throws") { throw Boom() },
            FakeProbe(id: "x.hangs") { Thread.sleep(forTimeInterval: 30); return ProbeOutcome("late") },
            FakeProbe(id: "x.fine") { ProbeOutcome("fine") },
        ]
        let start = Date()
        let results = try Runner.run(probes, facts: facts, options: RunOptions(timeout: 0.5))
        #expect(Date().timeIntervalSince(start) < 5)
        let byID = Dictionary(uniqueKeysWithValues: results.map { ($0.id, $0) })
        #expect(byID["x.throws"]?.status == .error)
        #expect(byID["x.hangs"]?.status == .error)
        #expect(byID["x.hangs"]?.message.contains("did not finish") == true)
        #expect(byID["x.fine"]?.status == .pass)
    }

    @Test func probesRunConcurrently() throws {
        let probes: [any Probe] = (0..<6).map { i in
            FakeProbe(id: "c.p\(i)") { Thread.sleep(forTimeInterval: 0.3); return ProbeOutcome("ok") }
        }
        let start = Date()
        _ = try Runner.run(probes, facts: facts, options: RunOptions())
        #expect(Date().timeIntervalSince(start) < 1.2, "six 0.3 s probes should overlap")
    }

    @Test func onlyAndSkipSelectByIdOrPrefix() throws {
        let probes: [any Probe] = [
            FakeProbe(id: "docker.daemon") { ProbeOutcome("d") },
            FakeProbe(id: "docker.image", dependsOn: ["docker.daemon"]) { ProbeOutcome("i") },
            FakeProbe(id: "env.file") { ProbeOutcome("e") },
        ]
        let only = try Runner.select(probes, options: RunOptions(only: ["docker.image"]))
        #expect(only.run.map(\.id) == ["docker.daemon", "docker.image"], "dependencies run too")
        let family = try Runner.select(probes, options: RunOptions(only: ["docker."]))
        #expect(family.run.map(\.id) == ["docker.daemon", "docker.image"])
        let skipped = try Runner.run(probes, facts: facts, options: RunOptions(skip: ["env"]))
        #expect(skipped.first { $0.id == "env.file" }?.status == .skip)
        #expect(throws: UnknownProbeSelector.self) { try Runner.select(probes, options: RunOptions(only: ["nope"])) }
    }

    /// A cycle in `dependsOn` would hang the run (each probe waits for the other): it is refused before anything runs,
    /// naming the cycle; so is a dependency on no probe. Probes come after what they depend on, in the given order
    /// wherever it already is one.
    @Test func dependencyCyclesAndUnknownDependenciesAreRefused() throws {
        let cyclic: [any Probe] = [
            FakeProbe(id: "a.free") { ProbeOutcome("ok") },
            FakeProbe(id: "b.one", dependsOn: ["a.free", "b.three"]) { ProbeOutcome("never") },
            FakeProbe(id: "b.two", dependsOn: ["b.one"]) { ProbeOutcome("never") },
            FakeProbe(id: "b.three", dependsOn: ["b.two"]) { ProbeOutcome("never") },
        ]
        #expect(throws: ProbeGraphError.cycle(["b.one", "b.three", "b.two", "b.one"])) { try Runner.ordered(cyclic) }
        let start = Date()
        #expect(throws: ProbeGraphError.self) { try Runner.run(cyclic, facts: facts, options: RunOptions()) }
        #expect(Date().timeIntervalSince(start) < 2, "refused at once, not hung")
        let selfish: [any Probe] = [FakeProbe(id: "s.self", dependsOn: ["s.self"]) { ProbeOutcome("never") }]
        #expect(throws: ProbeGraphError.cycle(["s.self", "s.self"])) { try Runner.ordered(selfish) }
        let dangling: [any Probe] = [FakeProbe(id: "d.one", dependsOn: ["d.missing"]) { ProbeOutcome("never") }]
        #expect(throws: ProbeGraphError.unknownDependency(probe: "d.one", dependency: "d.missing")) {
            try Runner.ordered(dangling)
        }
        let backwards: [any Probe] = [
            FakeProbe(id: "z.late", dependsOn: ["z.early"]) { ProbeOutcome("ok") },
            FakeProbe(id: "y.other") { ProbeOutcome("ok") },
            FakeProbe(id: "z.early") { ProbeOutcome("ok") },
        ]
        #expect(try Runner.ordered(backwards).map(\.id) == ["y.other", "z.early", "z.late"])
    }
}
