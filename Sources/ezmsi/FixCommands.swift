import ArgumentParser
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
    @Option(help: "Seconds each probe may take.") var timeout: Double = 60

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
        do { resolved = try deployment.resolve() } catch let e as InputError { inputFailure(e) }
        let facts = Facts(deployment: resolved, environment: ProcessInfo.processInfo.environment, timeout: timeout)
        guard let program = resolved.program, program.folderNeed == .readTreeWriteRoot || program.folderNeed == .writeTree else {
            usageFailure("ezmsi fix needs a folder program (DataFileUploadDirectory or DataFileDownloadDirectory) after --, or in tracker.json")
        }
        guard let folder = FolderGatherer.folderPath(resolved, facts.command.get()) else {
            usageFailure("no folder to fix: pass --folder DIR")
        }
        let identity: IdentityFact
        switch facts.identity.get() {
        case .success(let id): identity = id
        case .failure(let why):
            FileHandle.standardError.write(Data("ezmsi: cannot tell who the container runs as: \(why)\n".utf8))
            throw ExitCode(Exit.failed)
        }
        let out = Output(scrubber: Secrets.scrubber(for: facts))
        let userPlan = "ezmsi command --user \"$(id -u):$(id -g)\" with HOME=\(ProgramTable.imageHome) in the env-file: " +
            "the container then acts as you on the folder; nothing on disk changes, but files it creates belong to you"
        guard yes else {
            // Dry run: every plan is counted by a walk of its own (apply skips this).
            let plans: [FixPlan]
            do {
                plans = try FixPlanKind.allCases.map { try FolderFixer.plan(kind: $0, root: folder, identity: identity.host, need: program.folderNeed) }
            } catch {
                FileHandle.standardError.write(Data("ezmsi: cannot plan a fix for \(folder): \(error)\n".utf8))
                throw ExitCode(Exit.failed)
            }
            let report = Report(folder: folder, identity: identity.host.description, plans: plans, userPlan: userPlan, applied: nil, after: nil)
            if format == .json { out.stdout(JSONRenderer.render(report)); return }
            var text = "ezmsi fix (dry run) — \(folder) for \(identity.host.description)\n"
            for (rank, p) in plans.enumerated() {
                text += "\n\(rank + 1). \(p.kind.rawValue): \(p.entriesToChange) entr\(p.entriesToChange == 1 ? "y" : "ies") to change" +
                    " (\(p.directoriesToChange) folders, \(p.filesToChange) files)\(p.willCreateRoot ? ", creating the folder" : "")\n"
                text += "   trade-off: \(p.tradeOff)\n   privilege: \(p.privilege)\n"
                for c in p.commands { text += "   $ \(c)\n" }
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
        do {
            outcome = try FolderFixer.apply(kind: kind, root: folder, identity: identity.host, need: program.folderNeed, journalDirectory: journalDir)
        } catch {
            FileHandle.standardError.write(Data("ezmsi: the fix stopped: \(error)\n  undo what was done with: ezmsi undo\n".utf8))
            throw ExitCode(Exit.failed)
        }
        if outcome.changed == 0 && outcome.journal.isEmpty {
            if format == .json {
                out.stdout(JSONRenderer.render(Report(folder: folder, identity: identity.host.description, plans: [], userPlan: userPlan,
                                                      applied: outcome, after: nil)))
            } else {
                out.stdout("changed 0 entries: nothing to change, \(identity.host.description) can already use every entry of \(folder)\n")
            }
            return
        }
        // Re-run the probes on the changed folder and report the outcome.
        let (after, _) = try diagnose(resolved, selection: RunOptions(timeout: timeout, only: ["folder.", "identity.", "mounts."]))
        if format == .json {
            out.stdout(JSONRenderer.render(Report(folder: folder, identity: identity.host.description, plans: [], userPlan: userPlan,
                                                  applied: outcome, after: after)))
        } else {
            let head = "changed \(outcome.changed) entr\(outcome.changed == 1 ? "y" : "ies") in \(Int(outcome.durationMs)) ms; journal: \(outcome.journal)\n" +
                "undo with: ezmsi undo \(ShellWords.quote(outcome.journal))\n\n"
            out.stdout(head + HumanRenderer.render(after, color: Terminal.wantsColor(fd: 1, environment: ProcessInfo.processInfo.environment)))
        }
        throw ExitCode(after.summary.exitCode)
    }
}

/// `ezmsi undo [JOURNAL]`: restores exactly what a fix changed.
struct Undo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Undo a fix from its journal (default: the newest).",
        discussion: "Restores each entry's owner, mode and ACLs as they were; entries that changed identity since are skipped and listed.")

    @Argument(help: "The journal `ezmsi fix --yes` printed.") var journal: String?

    func run() throws {
        let directory = FolderFixer.defaultJournalDirectory(environment: ProcessInfo.processInfo.environment)
        guard let path = journal.map({ Paths.absolute($0, base: FileManager.default.currentDirectoryPath) }) ?? FolderFixer.latestJournal(in: directory) else {
            FileHandle.standardError.write(Data("ezmsi: no journal in \(directory): nothing to undo\n".utf8))
            throw ExitCode(Exit.input)
        }
        do {
            let outcome = try FolderFixer.undo(journal: path)
            print("restored \(outcome.restored) entr\(outcome.restored == 1 ? "y" : "ies") from \(path)" +
                  (outcome.removedCreatedRoot ? "; removed the folder the fix had created" : ""))
            for skipped in outcome.skipped { print("  skipped: \(skipped)") }
            if !outcome.skipped.isEmpty { throw ExitCode(Exit.failed) }
        } catch let e as ExitCode {
            throw e
        } catch {
            FileHandle.standardError.write(Data("ezmsi: cannot undo \(path): \(error)\n".utf8))
            throw ExitCode(Exit.input)
        }
    }
}
