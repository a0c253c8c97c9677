import Foundation

public struct RunOptions: Sendable {
    public var timeout: Double = 10
    public var only: [String] = []
    public var skip: [String] = []
    /// Probes that need the network are `skip` with the reason.
    public var offline = false
    /// Seconds for the whole run: then every unfinished probe is `error` and the report is complete anyway.
    public var deadline: Double?
    /// Probes slower than this many seconds get an info finding `slow-probe`.
    public var slowAfter: Double = 5

    public init(timeout: Double = 10, only: [String] = [], skip: [String] = [], offline: Bool = false,
                deadline: Double? = nil, slowAfter: Double = 5) {
        self.timeout = timeout
        self.only = only
        self.skip = skip
        self.offline = offline
        self.deadline = deadline
        self.slowAfter = slowAfter
    }
}

public struct UnknownProbeSelector: Error, CustomStringConvertible {
    public var selector: String
    public var known: [String]
    public var description: String {
        "no probe matches \"\(selector)\"; known ids: \(known.joined(separator: ", "))"
    }
}

/// The probes' `dependsOn` do not form an order: a probe depends on itself through others, or on a probe that is not
/// in the catalogue. A defect of the catalogue, found before anything runs (a cycle would otherwise hang `doctor`).
public enum ProbeGraphError: Error, Equatable, CustomStringConvertible {
    case cycle([String])
    case unknownDependency(probe: String, dependency: String)

    public var description: String {
        switch self {
        case .cycle(let ids): return "the probes depend on each other in a cycle: \(ids.joined(separator: " -> "))"
        case .unknownDependency(let probe, let dependency): return "\(probe) depends on \(dependency), which is no probe"
        }
    }
}

/// Runs probes concurrently, each on its own thread with its own deadline. A probe waits for the probes it depends
/// on; if one of them is `fail`, `blocked` or `error`, it is `blocked` and not run. A probe that throws or overruns
/// its deadline is `error`; the others still finish. Blocking I/O lives in the facts, so threads (not the Swift
/// concurrency pool, which has two threads on two cores) are the right tool.
public enum Runner {
    /// `docker.` selects the family, `docker.image` one probe; a bare family name (`docker`) works too.
    static func matches(_ id: String, _ selector: String) -> Bool {
        if selector.hasSuffix(".") { return id.hasPrefix(selector) }
        return id == selector || id.hasPrefix(selector + ".")
    }

    /// The probes in an order where each comes after what it depends on: the given order wherever it already is one
    /// (so reports keep the catalogue's order). Throws on a cycle or an unknown dependency.
    public static func ordered(_ probes: [any Probe]) throws -> [any Probe] {
        let index = Dictionary(probes.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        for probe in probes {
            for dep in probe.dependsOn where index[dep] == nil {
                throw ProbeGraphError.unknownDependency(probe: probe.id, dependency: dep)
            }
        }
        var placed = [Bool](repeating: false, count: probes.count)
        var result: [any Probe] = []
        result.reserveCapacity(probes.count)
        while result.count < probes.count {
            // The first probe not yet placed whose dependencies all are (quadratic; the catalogue has ~20 probes).
            guard let next = probes.indices.first(where: { i in
                !placed[i] && probes[i].dependsOn.allSatisfy { placed[index[$0]!] }
            }) else {
                throw ProbeGraphError.cycle(cycle(in: probes, placed: placed, index: index))
            }
            placed[next] = true
            result.append(probes[next])
        }
        return result
    }

    /// A cycle among the probes not placed (each of them waits for another one of them): follow unplaced
    /// dependencies until an id repeats.
    private static func cycle(in probes: [any Probe], placed: [Bool], index: [String: Int]) -> [String] {
        var path: [Int] = []
        var current = placed.firstIndex(of: false)!
        while !path.contains(current) {
            path.append(current)
            current = probes[current].dependsOn.map { index[$0]! }.first { !placed[$0] }!
        }
        return (path.drop { $0 != current } + [current]).map { probes[$0].id }
    }

    public static func select(_ probes: [any Probe], options: RunOptions) throws -> (run: [any Probe], skipped: Set<String>) {
        let probes = try ordered(probes)
        for selector in options.only + options.skip where !probes.contains(where: { matches($0.id, selector) }) {
            throw UnknownProbeSelector(selector: selector, known: probes.map(\.id))
        }
        var wanted = Set(probes.map(\.id))
        if !options.only.isEmpty {
            wanted = Set(probes.filter { p in options.only.contains { matches(p.id, $0) } }.map(\.id))
            // What the selected probes depend on runs too, so that "blocked" keeps its meaning.
            var frontier = Array(wanted)
            while let id = frontier.popLast() {
                for dep in probes.first(where: { $0.id == id })?.dependsOn ?? [] where !wanted.contains(dep) {
                    wanted.insert(dep)
                    frontier.append(dep)
                }
            }
        }
        let skipped = Set(probes.filter { p in options.skip.contains { matches(p.id, $0) } }.map(\.id))
        return (probes.filter { wanted.contains($0.id) }, skipped.intersection(wanted))
    }

    public static func run(_ probes: [any Probe], facts: Facts, options: RunOptions) throws -> [CheckResult] {
        let (selected, skipped) = try select(probes, options: options)
        var slots: [String: ResultSlot] = [:]
        for probe in selected { slots[probe.id] = ResultSlot() }
        let runStart = DispatchTime.now()
        if let deadline = options.deadline {
            let slots = slots
            DispatchQueue.global().asyncAfter(deadline: runStart + deadline) {
                for probe in selected {
                    slots[probe.id]!.fill(CheckResult(
                        id: probe.id, title: probe.title, status: .error,
                        message: "unfinished when the run's --deadline of \(Self.format(deadline)) s passed",
                        durationMs: elapsedMs(since: runStart)))
                }
            }
        }
        for probe in selected {
            let slot = slots[probe.id]!
            if skipped.contains(probe.id) {
                slot.fill(CheckResult(id: probe.id, title: probe.title, status: .skip, message: "skipped (--skip)",
                                      durationMs: 0))
                continue
            }
            if options.offline && probe.needsNetwork {
                slot.fill(CheckResult(id: probe.id, title: probe.title, status: .skip,
                                      message: "skipped (--offline): needs the network", durationMs: 0))
                continue
            }
            let dependencies = probe.dependsOn.compactMap { id in slots[id].map { (id, $0) } }
            Thread.detachNewThread {
                // Dependencies finish (or hit their own deadlines) before this probe's clock starts.
                let blockers = dependencies.filter { $0.1.wait().status.isFailure(strict: false) }.map(\.0)
                if !blockers.isEmpty {
                    slot.fill(CheckResult(id: probe.id, title: probe.title, status: .blocked,
                                          message: "not run: \(blockers.joined(separator: ", ")) did not pass",
                                          durationMs: 0, blockedBy: blockers))
                    return
                }
                let start = DispatchTime.now()
                let timeout = options.timeout
                DispatchQueue.global().asyncAfter(deadline: start + timeout) {
                    slot.fill(CheckResult(id: probe.id, title: probe.title, status: .error,
                                          message: "did not finish within \(Self.format(timeout)) s (--timeout)",
                                          durationMs: timeout * 1000))
                }
                let result: CheckResult
                do {
                    let outcome = try probe.check(facts)
                    result = CheckResult(
                        id: probe.id, title: probe.title, status: outcome.status, message: outcome.message,
                        durationMs: elapsedMs(since: start), findings: outcome.findings,
                        remediation: outcome.findings.first { $0.severity == .fail }?.remediation
                            ?? outcome.findings.first { $0.severity == .warn }?.remediation,
                        fixes: outcome.fixes, details: outcome.details)
                } catch {
                    result = CheckResult(id: probe.id, title: probe.title, status: .error,
                                         message: "the probe failed: \(error)", durationMs: elapsedMs(since: start))
                }
                slot.fill(result)
            }
        }
        return selected.map { slots[$0.id]!.wait() }.map { result in
            guard result.durationMs > options.slowAfter * 1000, result.status != .error else { return result }
            var noted = result
            noted.findings.append(.info("slow-probe", "took \(String(format: "%.1f", result.durationMs / 1000)) s (notice above \(Self.format(options.slowAfter)) s, --slow-after)"))
            return noted
        }
    }

    static func elapsedMs(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1_000_000
    }

    static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }
}

/// Holds one probe's result; the first writer wins (the probe itself, or its deadline).
final class ResultSlot: @unchecked Sendable {
    private let lock = NSLock()
    private let done = DispatchSemaphore(value: 0)
    private var result: CheckResult?

    func fill(_ r: CheckResult) {
        lock.lock()
        defer { lock.unlock() }
        guard result == nil else { return }
        result = r
        done.signal()
    }

    func wait() -> CheckResult {
        done.wait()
        done.signal()   // let every other waiter through too
        lock.lock()
        defer { lock.unlock() }
        return result!
    }
}
