import Foundation

/// `ezmsi doctor --format sarif`: SARIF 2.1.0 for code-scanning dashboards (GitHub code scanning, GitLab, VS Code).
///
/// One run: `tool.driver` is ezmsi with the probe catalogue as `rules` (shortDescription = title, fullDescription =
/// rationale); each warn/fail/info finding is a result (`ruleId` = probe id, level error/warning/note, the file as a
/// `file://` URI and `region.startLine` when known); a probe that is `error` or `blocked` without findings is a result
/// too. Acknowledged findings carry an accepted external `suppressions` entry. Durations: `properties.durationMs` on
/// each result, and every probe's status and duration in `invocations[0].properties.probes`. Validated against the
/// official SARIF 2.1.0 schema by the tests.
public enum SARIFRenderer {
    public static let schemaURI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

    public static func render(_ unescaped: Report, rules catalogue: [ProbeRule]) -> String {
        // Texts are shown visibly (VisibleText); artifact URIs are built from the exact paths (percent-encoding is
        // already unambiguous).
        let report = unescaped.visible()
        var rules = catalogue
        for check in report.checks where !rules.contains(where: { $0.id == check.id }) {
            rules.append(ProbeRule(id: check.id, title: check.title, rationale: check.title))
        }
        let ruleIndex = Dictionary(rules.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })

        var results: [Result] = []
        var notifications: [Notification] = []
        for (check, exact) in zip(report.checks, unescaped.checks) {
            let index = ruleIndex[check.id]
            let probeProperties: [String: JSONValue] = ["status": .string(check.status.rawValue), "durationMs": .number(check.durationMs)]
            for (finding, exactFinding) in zip(check.findings, exact.findings) {
                var level: String
                switch finding.severity {
                case .fail: level = "error"
                case .warn: level = report.summary.strict ? "error" : "warning"
                case .info: level = "note"
                }
                var properties = probeProperties
                properties["code"] = .string(finding.code)
                if let e = finding.evidence {
                    if let x = e.expected { properties["expected"] = .string(x) }
                    if let a = e.actual { properties["actual"] = .string(a) }
                }
                if let r = finding.remediation, !r.commands.isEmpty {
                    properties["commands"] = .array(r.commands.map(JSONValue.string))
                }
                var suppressions: [Suppression]?
                if let ack = finding.acknowledgement, !ack.expired, finding.severity != .info {
                    // SARIF's own word for an accepted finding: an external suppression, with its justification.
                    suppressions = [Suppression(kind: "external", status: "accepted", justification: ack.reason,
                                                location: exactFinding.acknowledgement.map { location($0.source) },
                                                properties: ["owner": .string(ack.owner), "expires": .string(ack.expires)])]
                } else if let ack = finding.acknowledgement {
                    properties["acknowledgementExpired"] = .string(ack.expires)
                }
                var text = finding.message
                if let r = finding.remediation, finding.severity != .info { text += " Fix: \(r.text)" }
                results.append(Result(ruleId: check.id, ruleIndex: index, level: level, message: Message(text: text),
                                      locations: exactFinding.location.map { [location($0)] }, suppressions: suppressions,
                                      properties: properties))
            }
            if check.findings.allSatisfy({ $0.severity == .info }), check.status == .error || check.status == .blocked {
                let text = check.status == .blocked && !check.blockedBy.isEmpty
                    ? "Not checked: blocked by \(check.blockedBy.joined(separator: ", ")). \(check.message)" : check.message
                results.append(Result(ruleId: check.id, ruleIndex: index, level: check.status == .error ? "error" : "note",
                                      message: Message(text: text), locations: nil, suppressions: nil, properties: probeProperties))
            }
            if check.status == .error {
                notifications.append(Notification(level: "error", message: Message(text: "\(check.id): \(check.message)"),
                                                   associatedRule: Reference(id: check.id, index: index)))
            }
        }

        let probes: [JSONValue] = report.checks.map {
            .object(["id": .string($0.id), "status": .string($0.status.rawValue), "durationMs": .number($0.durationMs)])
        }
        var invocation = Invocation(executionSuccessful: true, exitCode: Int(report.summary.exitCode), startTimeUtc: report.startedAt,
                                    endTimeUtc: nil, toolExecutionNotifications: notifications.isEmpty ? nil : notifications,
                                    properties: ["durationMs": .number(report.durationMs), "strict": .bool(report.summary.strict),
                                                 "status": .string(report.summary.status.rawValue), "probes": .array(probes)])
        if let start = Self.parseDate(report.startedAt) {
            invocation.endTimeUtc = Self.formatDate(start.addingTimeInterval(report.durationMs / 1000))
        }
        let driver = Driver(name: "ezmsi", version: report.tool.version, semanticVersion: report.tool.version,
                            rules: rules.map {
                                Rule(id: $0.id, name: $0.id, shortDescription: Message(text: $0.title),
                                     fullDescription: Message(text: $0.rationale),
                                     properties: $0.dependsOn.isEmpty ? nil : ["dependsOn": .array($0.dependsOn.map(JSONValue.string))])
                            })
        let d = report.deployment
        let run = Run(tool: Tool(driver: driver), invocations: [invocation], results: results,
                      properties: ["deployment": .string(d.directory), "image": .string(d.image),
                                   "command": .array(d.command.map(JSONValue.string)),
                                   "counts": .object(report.summary.counts.mapValues { .number(Double($0)) })])
        return JSONRenderer.render(Log(schema: schemaURI, version: "2.1.0", runs: [run]))
    }

    /// A path as a SARIF artifact URI: absolute paths become `file://` URIs, relative ones relative references; both
    /// percent-encoded (RFC 3986).
    static func uri(_ path: String) -> String {
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)..<Unicode.Scalar(128)))
        allowed.insert(charactersIn: "-._~/!$&'()*+,;=:@")
        let encoded = path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path
        if path.hasPrefix("/") { return "file://" + encoded }
        // A relative reference whose first segment holds a colon would read as a scheme.
        if let first = encoded.split(separator: "/").first, first.contains(":") { return "./" + encoded }
        return encoded
    }

    static func location(_ loc: EZMSICore.Location) -> SARIFLocation {
        SARIFLocation(physicalLocation: PhysicalLocation(artifactLocation: ArtifactLocation(uri: uri(loc.file)),
                                                         region: loc.line.flatMap { $0 >= 1 ? Region(startLine: $0) : nil }))
    }

    static func parseDate(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s) ?? ISO8601DateFormatter().date(from: s)
    }

    static func formatDate(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: d)
    }

    // The subset of the SARIF object model ezmsi writes.
    struct Log: Encodable {
        var schema: String
        var version: String
        var runs: [Run]
        enum CodingKeys: String, CodingKey { case schema = "$schema", version, runs }
    }
    struct Run: Encodable {
        var tool: Tool
        var invocations: [Invocation]
        var results: [Result]
        var properties: [String: JSONValue]
    }
    struct Tool: Encodable { var driver: Driver }
    struct Driver: Encodable {
        var name: String
        var version: String
        var semanticVersion: String
        var rules: [Rule]
    }
    struct Rule: Encodable {
        var id: String
        var name: String
        var shortDescription: Message
        var fullDescription: Message
        var properties: [String: JSONValue]?
    }
    struct Message: Encodable { var text: String }
    struct Result: Encodable {
        var ruleId: String
        var ruleIndex: Int?
        var level: String
        var message: Message
        var locations: [SARIFLocation]?
        var suppressions: [Suppression]?
        var properties: [String: JSONValue]
    }
    struct SARIFLocation: Encodable { var physicalLocation: PhysicalLocation }
    struct PhysicalLocation: Encodable {
        var artifactLocation: ArtifactLocation
        var region: Region?
    }
    struct ArtifactLocation: Encodable { var uri: String }
    struct Region: Encodable { var startLine: Int }
    struct Suppression: Encodable {
        var kind: String
        var status: String
        var justification: String
        var location: SARIFLocation?
        var properties: [String: JSONValue]?
    }
    struct Invocation: Encodable {
        var executionSuccessful: Bool
        var exitCode: Int
        var startTimeUtc: String
        var endTimeUtc: String?
        var toolExecutionNotifications: [Notification]?
        var properties: [String: JSONValue]
    }
    struct Notification: Encodable {
        var level: String
        var message: Message
        var associatedRule: Reference
    }
    struct Reference: Encodable {
        var id: String
        var index: Int?
    }
}

/// A JSON value for property bags.
indirect enum JSONValue: Encodable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .number(let n): if n == n.rounded(), abs(n) < 1e15 { try c.encode(Int(n)) } else { try c.encode(n) }
        case .bool(let b): try c.encode(b)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}
