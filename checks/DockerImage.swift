import EZMSICore

/// The image is present locally, and what it will run as.
public struct DockerImage: Probe {
    public let id = "docker.image"
    public let title = "Image present"
    public let rationale = "`docker run` of a missing image pulls it (or fails offline); the recipe's `openmsi/image` never existed."
    public let dependsOn = ["docker.daemon"]
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("official image present", expect: .pass) { ExampleFacts.make() },
            ProbeExample("image not pulled", expect: .fail, code: "image-missing") {
                ExampleFacts.make(image: .missing("openmsi/openmsistream:latest"))
            },
            ProbeExample("the recipe's nonexistent name", expect: .fail, code: "image-name-typo") {
                ExampleFacts.make(image: .missing("openmsi/image"), imageName: "openmsi/image")
            },
        ]
    }

    /// `openmsi/image`, `docker.io/openmsi/image:tag`, … → true.
    static func isRecipeTypo(_ reference: String) -> Bool {
        var name = reference
        if let at = name.firstIndex(of: "@") { name = String(name[..<at]) }
        if let colon = name.lastIndex(of: ":"), !name[colon...].contains("/") { name = String(name[..<colon]) }
        for prefix in ["docker.io/", "index.docker.io/"] where name.hasPrefix(prefix) { name.removeFirst(prefix.count) }
        return name == "openmsi/image"
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        let reference = facts.deployment.image
        if Self.isRecipeTypo(reference) {
            return ProbeOutcome("\(reference) does not exist", findings: [.fail(
                "image-name-typo", "`openmsi/image` (from the EZOpenMSIStream README's daemon example) is not a published image",
                evidence: Evidence(expected: "openmsi/openmsistream", actual: reference),
                fix: Remediation("Use the official image", commands: ["ezmsi doctor --image openmsi/openmsistream:latest"]))])
        }
        switch facts.image.get() {
        case .missing:
            return ProbeOutcome("\(reference) is not present locally", findings: [.fail(
                "image-missing", "the image \(reference) has not been pulled",
                fix: Remediation("Pull it (needs access to Docker Hub)", commands: ["docker pull \(reference)"]))],
                fixes: [FixAction(id: "docker-pull", title: "Pull \(reference)", commands: ["docker pull \(reference)"],
                                  privilege: "docker group")])
        case .unknown(let why):
            return ProbeOutcome("cannot inspect \(reference)", findings: [.fail("image-inspect-failed", why)])
        case .present(let info):
            let digest = info.repoDigests.first ?? "none (built or imported locally)"
            let user = info.user.isEmpty ? "root (no USER)" : info.user
            let entrypoint = info.entrypoint.isEmpty ? "none" : "[" + info.entrypoint.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
            var findings: [Finding] = []
            if info.user.isEmpty || info.user == "root" || info.user == "0" {
                findings.append(.warn("image-runs-as-root", "the image runs as root: files it writes on the host will be owned by root",
                                      fix: Remediation("Run as the image's intended user with --user, or use the official image")))
            }
            return ProbeOutcome("\(reference) present (\(String(info.id.prefix(19))))", findings: findings, details: [
                "id": info.id, "digest": digest, "user": user, "workingDir": info.workingDir, "entrypoint": entrypoint,
            ])
        }
    }
}
