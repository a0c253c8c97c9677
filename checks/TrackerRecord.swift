import EZMSICore
import Foundation

/// tracker.json as the deployment record support staff read: the recipe's nine fields present and consistent with
/// what actually runs.
public struct TrackerRecord: Probe {
    public let id = "tracker.record"
    public let title = "Deployment record (tracker.json)"
    public let rationale = """
        tracker.json is how a lab knows what runs where and whom to call. A record whose type, target folder or \
        container disagree with the real deployment sends support to the wrong place; a malformed contact e-mail \
        reaches no one.
        """
    public let dependsOn: [String] = []
    public init() {}

    public var examples: [ProbeExample] {
        let good = ["type": "consumer", "service_name": "openmsi/openmsistream:latest", "service_local_location": "/lab/deploy",
                    "service_local_target_folder": "/srv/scans", "installation_notes": "", "primary_contact_name": "Ada",
                    "primary_contact_email": "ada@lab.example.org", "machine_metadata": "", "code_metadata": ""]
        func with(_ changes: [String: String?]) -> @Sendable () -> Facts {
            var recipe = good
            for (k, v) in changes { recipe[k] = v }
            let fixed = recipe
            return {
                let facts = ExampleFacts.make()
                facts.tracker.set(Tracker(targetFolder: fixed["service_local_target_folder"], recipe: fixed))
                return facts
            }
        }
        return [
            ProbeExample("complete and consistent record", expect: .pass, facts: with([:])),
            ProbeExample("no tracker.json yet", expect: .pass) { ExampleFacts.make() },
            ProbeExample("type says Producer for a downloader", expect: .warn, code: "type-mismatch", facts: with(["type": "Producer"])),
            ProbeExample("recipe's DataFileStreamProcessor label for a consumer", expect: .warn, code: "type-mismatch",
                         facts: with(["type": "DataFileStreamProcessor"])),
            ProbeExample("malformed contact e-mail", expect: .warn, code: "contact-email-malformed",
                         facts: with(["primary_contact_email": "ada at lab"])),
            ProbeExample("target folder is not the mounted folder", expect: .warn, code: "target-folder-mismatch",
                         facts: with(["service_local_target_folder": "/srv/other"])),
            ProbeExample("a recipe field removed", expect: .warn, code: "recipe-field-missing",
                         facts: with(["machine_metadata": nil])),
        ]
    }

    /// The words a tracker's `type` may use for each role: ezmsi's role name and the recipe's own labels.
    static let typeWords: [ProgramRole: Set<String>] = [
        .producer: ["producer"],
        .consumer: ["consumer"],
        .processor: ["processor", "datafilestreamprocessor", "streamprocessor"],
        .tool: ["tool"],
        .service: ["service"],
    ]

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        guard let tracker = facts.tracker.get() else {
            return ProbeOutcome("no tracker.json: `ezmsi run` writes one with what it started", findings: [])
        }
        let d = facts.deployment
        let file = d.trackerPath ?? d.directory + "/tracker.json"
        var findings: [Finding] = []
        let missing = Tracker.recipeFields.filter { tracker.recipe[$0] == nil }
        if !missing.isEmpty {
            findings.append(.warn("recipe-field-missing", "the recipe's fields \(missing.joined(separator: ", ")) are missing",
                                  at: Location(file: file),
                                  fix: Remediation("Add them (an empty string is fine until known); support tools read all nine")))
        }
        if let type = tracker.recipe["type"]?.trimmingCharacters(in: .whitespaces), !type.isEmpty, let program = d.program {
            let word = type.lowercased()
            let fits = word == program.name.lowercased() || (Self.typeWords[program.role] ?? []).contains(word)
            if !fits {
                findings.append(.warn("type-mismatch", "type is \"\(type)\" but \(program.name) is a \(program.role.rawValue)",
                                      at: Location(file: file),
                                      fix: Remediation("Set \"type\": \"\(program.role.rawValue)\"")))
            }
        }
        if let target = tracker.recipe["service_local_target_folder"], !target.isEmpty,
           let used = FolderGatherer.folderPath(d, facts.command.get()) {
            let recorded = Paths.absolute(Paths.expandHome(target), base: d.directory)
            if recorded != used {
                findings.append(.warn("target-folder-mismatch",
                                      "service_local_target_folder is \(recorded), but the program works in \(used)",
                                      at: Location(file: file),
                                      fix: Remediation("Set \"service_local_target_folder\": \"\(used)\" (or mount the recorded folder)")))
            }
        }
        if let email = tracker.recipe["primary_contact_email"]?.trimmingCharacters(in: .whitespaces), !email.isEmpty,
           email.range(of: #"^[^@\s<>(),;:"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"#, options: .regularExpression) == nil {
            findings.append(.warn("contact-email-malformed", "primary_contact_email \"\(email)\" is not an e-mail address",
                                  at: Location(file: file), fix: Remediation("Write it as name@institution.example")))
        }
        if let record = tracker.record, record.containerName != d.containerName {
            findings.append(.warn("record-container-mismatch",
                                  "the recorded deployment runs as container \(record.containerName), this one is named \(d.containerName)",
                                  at: Location(file: file),
                                  fix: Remediation("Use --name \(record.containerName), or start this one with `ezmsi run` to record it")))
        }
        let summary = findings.isEmpty ? "tracker.json is complete and matches the deployment" : "tracker.json disagrees with the deployment"
        return ProbeOutcome(summary, findings: findings)
    }
}
