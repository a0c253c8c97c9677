import EZMSICore
import Foundation

/// `--prove`: a throwaway container with the same image, user and mounts performs the program's operations; its
/// result stands beside the static verdict, and a disagreement is an error (of ezmsi's model, or of the setup).
public struct FolderProve: Probe {
    public let id = "folder.prove"
    public let title = "Proof by a real container (--prove)"
    public let rationale = "The static verdict is a model of the kernel; --prove asks the kernel itself, through the same container setup."
    public let dependsOn = ["docker.image"]
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("not requested", expect: .skip) {
                let facts = ExampleFacts.make()
                facts.proof.set(.notRequested)
                return facts
            },
            ProbeExample("container agrees: usable", expect: .pass) {
                let facts = ExampleFacts.make(folderFact: ExampleFacts.auditedFolder(need: .writeTree) { chown($0, 1000, 1000) })
                facts.proof.set(.ran(verdict: "OK", durationMs: 300))
                return facts
            },
            ProbeExample("container disagrees", expect: .error, code: "prove-disagrees") {
                let facts = ExampleFacts.make(folderFact: ExampleFacts.auditedFolder(need: .writeTree) { chown($0, 1000, 1000) })
                facts.proof.set(.ran(verdict: "FAIL create .", durationMs: 300))
                return facts
            },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        switch facts.proof.get() {
        case .notRequested:
            return .skip("not requested (ezmsi doctor --prove)")
        case .notPossible(let why):
            return .skip("cannot prove: \(why)")
        case .failed(let why):
            return ProbeOutcome("the proving container did not run", findings: [.fail("prove-failed", why)])
        case let .ran(verdict, ms):
            guard case let .audited(_, audit) = facts.folder.get() else { return .skip("no static verdict to compare") }
            let staticUsable = audit.unusable.isEmpty
            let realUsable = verdict == "OK"
            let staticText = staticUsable ? "usable" : "not usable (\(audit.unusableEntries) entries)"
            if staticUsable == realUsable {
                return ProbeOutcome("a real container agrees: \(realUsable ? "usable" : verdict) (\(Int(ms)) ms)",
                                    details: ["static": staticText, "container": verdict])
            }
            let finding = Finding.fail("prove-disagrees", "ezmsi judged the folder \(staticText), but the container says: \(verdict)",
                                       evidence: Evidence(expected: staticText, actual: verdict),
                                       fix: Remediation("Please report this with `ezmsi doctor --prove --format json` attached"))
            // A disagreement means the static model is wrong for this setup: that is an error, not a verdict.
            var outcome = ProbeOutcome("static verdict and container disagree", findings: [finding], details: ["static": staticText, "container": verdict])
            outcome.forcedStatus = .error
            return outcome
        }
    }
}
