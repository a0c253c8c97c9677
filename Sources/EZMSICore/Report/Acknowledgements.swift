import Foundation

/// Findings a site has accepted, from `acknowledgements.json` in the deployment folder:
///
///     {
///       "acknowledgements": [
///         { "probe": "env.file", "finding": "quoted-value",
///           "reason": "the broker password really starts with a quote", "owner": "ada@lab.example.org",
///           "expires": "2027-03-31" }
///       ]
///     }
///
/// `probe` is one exact probe id and `finding` (optional) one finding code of it: there is no wildcard and no
/// "ignore all". Every entry needs a reason, an owner and an expiry date at most a year ahead. An acknowledged finding
/// stays in the report, marked, and no longer fails the run; once expired, it fails the run again and says so.
public struct Acknowledgements: Sendable {
    public struct Entry: Sendable, Equatable {
        public var probe: String
        public var finding: String?
        public var reason: String
        public var owner: String
        /// `YYYY-MM-DD`, inclusive.
        public var expires: String
        public var line: Int
    }

    public static let fileName = "acknowledgements.json"
    /// Longest acceptance: a finding accepted "for now" must come back for review.
    public static let maximumDays = 366

    public var path: String
    public var entries: [Entry]

    /// nil when the file does not exist; `InputError` (file, line, fix) when it is unusable.
    public static func load(_ path: String, knownProbes: [String], today: Date = Date()) throws -> Acknowledgements? {
        let bytes: [UInt8]
        switch FileReading.read(path) {
        case .success(let snap): bytes = snap.bytes
        case .failure(.missing): return nil
        case .failure(let problem):
            throw InputError(file: path, line: nil, message: problem.description, fix: "make it a readable JSON file, or remove it")
        }
        let document: OrderedJSON
        do { document = try OrderedJSON.parse(bytes) } catch let e as OrderedJSON.SyntaxError {
            throw InputError(file: path, line: e.line, message: "not valid JSON",
                             fix: "correct the syntax (`python3 -m json.tool \(fileName)` shows the spot)")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard case .array(let items)? = document["acknowledgements"] else {
            throw InputError(file: path, line: 1, message: "expected an object with a list \"acknowledgements\"",
                             fix: "write {\"acknowledgements\": [{\"probe\": …, \"reason\": …, \"owner\": …, \"expires\": \"YYYY-MM-DD\"}]}")
        }
        // Lines of the entries, in order: each entry's "probe" key (good enough to point at the right entry).
        var probeLines: [Int] = []
        var lineNumber = 1
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.contains("\"probe\"") { probeLines.append(lineNumber) }
            lineNumber += 1
        }
        var entries: [Entry] = []
        for (index, item) in items.enumerated() {
            let line = index < probeLines.count ? probeLines[index] : 1
            func fail(_ message: String, _ fix: String) -> InputError {
                InputError(file: path, line: line, message: "acknowledgement \(index + 1): \(message)", fix: fix)
            }
            guard case .object = item else { throw fail("must be an object", "write {\"probe\": …, \"reason\": …, \"owner\": …, \"expires\": …}") }
            func field(_ key: String) throws -> String? {
                guard let value = item[key] else { return nil }
                if case .null = value { return nil }
                guard let s = value.stringValue else { throw fail("\"\(key)\" must be a string", "write \"\(key)\": \"…\"") }
                let trimmed = s.trimmingCharacters(in: .whitespaces)
                return trimmed.isEmpty ? nil : trimmed
            }
            guard let probe = try field("probe") else {
                throw fail("\"probe\" is missing", "name one probe id, e.g. \"env.file\" (`ezmsi checks` lists them)")
            }
            guard knownProbes.contains(probe) else {
                throw fail("no probe is called \"\(probe)\" (there are no wildcards or prefixes)",
                           "name one probe id exactly; `ezmsi checks` lists them")
            }
            let finding = try field("finding")
            guard let reason = try field("reason") else { throw fail("\"reason\" is missing", "say why the finding is accepted") }
            guard let owner = try field("owner") else { throw fail("\"owner\" is missing", "name who accepted it (a person or a team address)") }
            guard let expires = try field("expires"), let date = Self.day(expires) else {
                throw fail("\"expires\" must be a date YYYY-MM-DD", "write e.g. \"expires\": \"\(Self.format(today.addingTimeInterval(90 * 86_400)))\"")
            }
            if date.timeIntervalSince(today) > Double(maximumDays) * 86_400 {
                throw fail("\"expires\" is more than \(maximumDays) days ahead", "accept it for at most a year, then review it")
            }
            let known = Set(["probe", "finding", "reason", "owner", "expires"])
            if case .object(let pairs) = item, let extra = pairs.first(where: { !known.contains($0.0) }) {
                throw fail("unknown field \"\(extra.0)\"", "use only probe, finding, reason, owner, expires")
            }
            entries.append(Entry(probe: probe, finding: finding, reason: reason, owner: owner, expires: expires, line: line))
        }
        return Acknowledgements(path: path, entries: entries)
    }

    static func day(_ text: String) -> Date? {
        guard text.range(of: #"^\d{4}-\d{2}-\d{2}$"#, options: .regularExpression) != nil else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        guard let date = formatter.date(from: text), formatter.string(from: date) == text else { return nil }
        return date
    }

    static func format(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter.string(from: date)
    }

    /// Whether the entry still holds on `today` (through the whole expiry day, UTC).
    func holds(_ entry: Entry, today: Date) -> Bool {
        guard let day = Self.day(entry.expires) else { return false }
        return today < day.addingTimeInterval(86_400)
    }

    /// Marks the findings the entries cover and recomputes each check's status: a check whose warn/fail findings
    /// are all acknowledged is `acknowledged`; an expired acknowledgement adds a failing finding.
    public func apply(to checks: [CheckResult], today: Date = Date()) -> (checks: [CheckResult], unused: [Entry]) {
        var used = Set<Int>()
        let result = checks.map { check -> CheckResult in
            guard check.status == .warn || check.status == .fail else { return check }
            var check = check
            var expiredNotes: [Finding] = []
            for i in check.findings.indices where check.findings[i].severity != .info {
                let code = check.findings[i].code
                guard let index = entries.firstIndex(where: { $0.probe == check.id && ($0.finding == nil || $0.finding == code) }) else {
                    continue
                }
                used.insert(index)
                let entry = entries[index]
                let valid = holds(entry, today: today)
                check.findings[i].acknowledgement = AcknowledgementNote(
                    reason: entry.reason, owner: entry.owner, expires: entry.expires, expired: !valid,
                    source: Location(file: path, line: entry.line))
                if !valid {
                    expiredNotes.append(.fail(
                        "acknowledgement-expired",
                        "the acknowledgement of \(code) by \(entry.owner) expired on \(entry.expires) (\(entry.reason))",
                        at: Location(file: path, line: entry.line),
                        fix: Remediation("Fix the finding, or review it and move \"expires\" forward (at most a year)")))
                }
            }
            check.findings += expiredNotes
            let open = check.findings.filter { $0.acknowledgement == nil || $0.acknowledgement?.expired == true }
            let worst = open.map(\.severity.status).max() ?? .pass
            let anyAcknowledged = check.findings.contains { $0.acknowledgement?.expired == false }
            check.status = worst == .pass && anyAcknowledged ? .acknowledged : worst
            check.remediation = open.first { $0.severity == .fail }?.remediation ?? open.first { $0.severity == .warn }?.remediation
            return check
        }
        let unused = entries.enumerated().filter { !used.contains($0.offset) }.map(\.element)
        return (result, unused)
    }
}
