import EZMSICore
import Foundation

/// The optional `custom_image/` folder (Dockerfile + startup script), linted by `CustomImageLinter`.
public struct CustomImageLint: Probe {
    public let id = "custom_image.lint"
    public let title = "Custom image Dockerfile and startup script"
    public let rationale = """
        EZOpenMSIStream's custom image sample builds, but its ARG is empty after FROM, its ENTRYPOINT is shell form \
        (sh is PID 1, docker stop ends in SIGKILL), its script has `#/bin/bash` and no exec, and its consumer joins a \
        new group at every start; each shows up only after deployment.
        """
    public let dependsOn: [String] = []
    public init() {}

    public var examples: [ProbeExample] {
        [
            ProbeExample("no custom_image folder", expect: .pass) { ExampleFacts.make() },
            ProbeExample("pinned base, exec-form ENTRYPOINT, exec in the script", expect: .pass) {
                Self.exampleFacts(dockerfile: Self.goodDockerfile, script: Self.goodScript)
            },
            ProbeExample("EZOpenMSIStream sample: shell-form ENTRYPOINT", expect: .fail, code: "entrypoint-shell-form") {
                Self.exampleFacts(
                    dockerfile: "FROM openmsi/openmsistream@sha256:\(Self.digest)\nCOPY startup-script.sh .\nENTRYPOINT . ./startup-script.sh\n",
                    script: Self.goodScript)
            },
            ProbeExample("ARG before FROM used after it", expect: .fail, code: "arg-before-from-unscoped") {
                Self.exampleFacts(dockerfile: "ARG ROOT=/home/openmsi\n" + Self.goodDockerfile.replacingOccurrences(
                    of: "COPY", with: "WORKDIR ${ROOT}\nCOPY", options: [], range: nil), script: Self.goodScript)
            },
            ProbeExample("base image by tag", expect: .warn, code: "from-unpinned") {
                Self.exampleFacts(dockerfile: Self.goodDockerfile.replacingOccurrences(of: "@sha256:\(Self.digest)", with: ":latest"),
                                  script: Self.goodScript)
            },
            ProbeExample("script without exec", expect: .fail, code: "script-no-exec") {
                Self.exampleFacts(dockerfile: Self.goodDockerfile, script: Self.goodScript.replacingOccurrences(of: "exec ", with: ""))
            },
            ProbeExample("script with #/bin/bash", expect: .fail, code: "script-shebang-missing") {
                Self.exampleFacts(dockerfile: Self.goodDockerfile, script: "#/bin/bash" + Self.goodScript.dropFirst("#!/bin/bash".count))
            },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        let contents: CustomImageFolder
        switch facts.customImage.get() {
        case .absent(let folder): return ProbeOutcome("no custom image folder (\(folder) is optional; the official image is used)")
        case .present(let c): contents = c
        }
        let folder = contents.path
        let issues = CustomImageLinter.lint(contents)
        let findings = issues.map { issue in
            Finding(issue.severity, issue.code, issue.message, location: Location(file: issue.file, line: issue.line),
                    remediation: Remediation(issue.fix, commands: issue.commands))
        }
        let summary = issues.isEmpty
            ? "\(folder): Dockerfile and startup script look right"
            : "\(folder): \(issues.count) problem\(issues.count == 1 ? "" : "s") in the Dockerfile or startup script"
        return ProbeOutcome(summary, findings: findings, details: ["folder": folder])
    }

    // MARK: examples

    static let digest = String(repeating: "0123456789abcdef", count: 4)
    static let goodDockerfile = """
        FROM openmsi/openmsistream@sha256:\(digest)
        COPY --chown=openmsi:openmsi config.config /home/openmsi/config.config
        COPY --chown=openmsi:openmsi startup-script.sh /home/openmsi/startup-script.sh
        ENTRYPOINT ["/home/openmsi/startup-script.sh"]

        """
    static let goodScript = """
        #!/bin/bash
        set -euo pipefail
        cd /home/openmsi
        exec DataFileUploadDirectory data --config config.config --topic_name "xrd" "$@"

        """

    /// A deployment whose custom_image/ holds these files (script mode 0755), in memory.
    static func exampleFacts(dockerfile: String, script: String) -> Facts {
        let files: [String: (String, UInt32)] = [
            "Dockerfile": (dockerfile, 0o644), "startup-script.sh": (script, 0o755),
            "config.config": (ExampleFacts.goodProducerConfig, 0o644),
        ]
        return ExampleFacts.make(customImage: .memory(path: "/lab/deploy/" + CustomImageLinter.folderName, files))
    }
}
