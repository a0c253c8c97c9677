import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

/// `ezmsi fix`: ranked repair plans for the folder (dry run), or `--yes` to apply one with an undo journal.
struct Fix: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show how to make the folder usable by the container (dry run), or apply it with --yes.",
        discussion: """
            Plans, best first: acl (a named-user entry plus a default ACL, ownership unchanged), chown (give the \
            entries to the container's user), user (run the container as you; nothing on disk changes). --yes \
            applies the chosen plan natively, writing a journal first; `ezmsi undo` restores exactly. Symlinks are \
            never followed and the folder's filesystem is never left. A second run changes nothing.
            """)

    @OptionGroup var deployment: DeploymentOptions
    @Option(help: "acl, chown or user.") var plan: PlanChoice = .acl
    @Flag(help: "Apply the plan (default: only show it).") var yes = false
    @Option(help: "human or json.") var format: OutputFormat = .human
    @OptionGroup var probeTimeout: ProbeTimeout
    var timeout: Double { probeTimeout.timeout }

    enum PlanChoice: String, ExpressibleByArgument, CaseIterable { case acl, chown, user }

    struct Report: Encodable {
        var folder: String
        var identity: String
        var plans: [FixPlan]
        var userPlan: String
        var applied: FixOutcome?
        var after: EZMSICore.Report?
    }

    func run() throws {
        let resolved: Deployment
        do { resolved = try deployment.resolve() } catch let e as InputError { throw CLIError.input(e) }
        let facts = Facts(deployment: resolved, environment: ProcessInfo.processInfo.environment, timeout: timeout)
        guard let program = resolved.program, program.folderNeed == .readTreeWriteRoot || program.folderNeed == .writeTree else {
            throw CLIError.usage("ezmsi fix needs a folder program (DataFileUploadDirectory or DataFileDownloadDirectory) after --, or in tracker.json")
        }
        guard let folder = FolderGatherer.folderPath(resolved, facts.command.get()) else {
            throw CLIError.usage("no folder to fix: pass --folder DIR")
        }
        let identity: IdentityFact
        switch facts.identity.get() {
        case .success(let id): identity = id
        case .failure(let why):
            Output(scrubber: Secrets.scrubber(for: facts)).stderr("ezmsi: cannot tell who the container runs as: \(VisibleText.escapeEachLine(why.description))\n")
            throw CLIError.failed
        }
        let out = Output(scrubber: Secrets.scrubber(for: facts))
        let userPlan = "ezmsi command --user \"$(id -u):$(id -g)\" with HOME=\(ProgramTable.imageHome) in the env-file: " +
            "the container then acts as you on the folder; nothing on disk changes, but files it creates belong to you"
        guard yes else {
            // Dry run: every plan is counted by a walk of its own (apply skips this).
            let plans: [FixPlan]
            do {
                plans = try FixPlanKind.allCases.map { try FolderFixer.plan(kind: $0, root: folder, identity: identity.host, need: program.folderNeed) }
            } catch let e as FixError {
                out.stderr("ezmsi: cannot plan a fix for \(VisibleText.escape(folder)): \(VisibleText.escape(e.description))\n")
                throw e.isRefusal ? CLIError.refused : CLIError.failed
            }
            let report = Report(folder: folder, identity: identity.host.description, plans: plans, userPlan: userPlan, applied: nil, after: nil)
            if format == .json { out.stdout(JSONRenderer.render(report)); return }
            var text = "ezmsi fix (dry run) — \(VisibleText.escape(folder)) for \(identity.host.description)\n"
            for (rank, p) in plans.enumerated() {
                text += "\n\(rank + 1). \(p.kind.rawValue): \(p.entriesToChange) entr\(p.entriesToChange == 1 ? "y" : "ies") to change" +
                    " (\(p.directoriesToChange) folders, \(p.filesToChange) files)\(p.willCreateRoot ? ", creating the folder" : "")\n"
                text += "   trade-off: \(p.tradeOff)\n   privilege: \(VisibleText.escape(p.privilege))\n"
                if p.refusedCount > 0 {
                    text += "   not changed, on purpose (\(p.refusedCount)):\n"
                    for r in p.refused { text += "     \(VisibleText.escape(r))\n" }
                }
                for c in p.commands { text += "   $ \(VisibleText.escape(c))\n" }
            }
            text += "\n\(plans.count + 1). user: \(userPlan)\n"
            let best = plans.first { $0.kind.rawValue == plan.rawValue } ?? plans[0]
            text += best.entriesToChange == 0 && !best.willCreateRoot ? "\nNothing to change.\n"
                : "\nApply with: ezmsi fix --plan \(plan.rawValue) --yes   (undo with: ezmsi undo)\n"
            out.stdout(text)
            return
        }
        guard plan != .user else {
            out.stdout("The user plan changes nothing on disk: \(userPlan)\n")
            return
        }
        let kind = FixPlanKind(rawValue: plan.rawValue)!
        let journalDir = FolderFixer.defaultJournalDirectory(environment: ProcessInfo.processInfo.environment)
        let outcome: FixOutcome
        let auditAfter: TreeAudit?
        do {
            var options = FixOptions()
            options.auditAfter = FolderGatherer.auditOptions
            (outcome, auditAfter) = try FolderFixer.applyAndAudit(kind: kind, root: folder, identity: identity.host,
                                                                  need: program.folderNeed, journalDirectory: journalDir,
                                                                  options: options)
        } catch let stopped as FixStopped {
            var text = "ezmsi: the fix stopped: \(VisibleText.escape(stopped.reason))\n"
            if let j = stopped.journal { text += "  undo what was done with: ezmsi undo \(ShellWords.quote(j))\n" }
            out.stderr(text)
            throw CLIError.failed
        } catch let e as FixError {
            out.stderr("ezmsi: \(VisibleText.escape(e.description))\n")
            throw e.isRefusal ? CLIError.refused : CLIError.failed
        }
        let skippedText = Self.skippedLines(outcome)
        if outcome.changed == 0 && outcome.journal.isEmpty && skippedText.isEmpty {
            if format == .json {
                out.stdout(JSONRenderer.render(Report(folder: folder, identity: identity.host.description, plans: [], userPlan: userPlan,
                                                      applied: outcome, after: nil)))
            } else {
                out.stdout("changed 0 entries: nothing to change, \(identity.host.description) can already use every entry of \(VisibleText.escape(folder))\n")
            }
            return
        }
        // Re-run the probes on the changed folder and report the outcome: they say whether what was left unchanged
        // (refused, replaced, failed) still keeps the container from working.
        // When every change landed, the folder probes judge the folder as the fix's own walk left it (no second walk).
        let (after, _) = try diagnose(resolved, selection: RunOptions(timeout: timeout, only: ["folder.", "identity.", "mounts."])) { facts in
            if let auditAfter { facts.folder.set(.audited(path: folder, auditAfter)) }
        }
        if format == .json {
            out.stdout(JSONRenderer.render(Report(folder: folder, identity: identity.host.description, plans: [], userPlan: userPlan,
                                                  applied: outcome, after: after)))
        } else {
            var head = "changed \(outcome.changed) entr\(outcome.changed == 1 ? "y" : "ies") in \(Int(outcome.durationMs)) ms"
            head += outcome.journal.isEmpty ? "\n" : "; journal: \(outcome.journal)\n"
            head += skippedText
            if !outcome.journal.isEmpty { head += "undo with: ezmsi undo \(ShellWords.quote(outcome.journal))\n" }
            out.stdout(head + "\n" + HumanRenderer.render(after, color: Terminal.wantsColor(fd: 1, environment: ProcessInfo.processInfo.environment)))
        }
        throw CLIError.exit(after.summary.exitCode)
    }

    /// What the fix did not change and why (names shown with control characters visible).
    static func skippedLines(_ o: FixOutcome) -> String {
        var text = ""
        func section(_ title: String, _ count: Int, _ examples: [String]) {
            guard count > 0 else { return }
            text += "\(title) (\(count)):\n"
            for e in examples { text += "  \(VisibleText.escape(e))\n" }
            if count > examples.count { text += "  … and \(count - examples.count) more\n" }
        }
        section("not changed, on purpose", o.refusedCount, o.refused)
        section("skipped: not the object judged any more", o.replacedCount, o.replaced)
        section("failed", o.failedCount, o.failures)
        section("not readable", o.unscannableCount, o.unscannable)
        return text
    }
}
