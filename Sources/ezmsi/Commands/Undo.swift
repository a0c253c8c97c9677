import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

/// `ezmsi undo [JOURNAL]`: restores exactly what a fix changed.
struct Undo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Undo a fix from its journal (default: the newest fix of the deployment's folder).",
        discussion: """
            Restores each entry's owner, mode and ACLs as they were; entries that are not the journaled object any \
            more are skipped and listed. With the deployment flags of the fix (or --folder), the newest fix of that \
            folder is undone. A journal that someone else could have written, or a damaged one, is refused (exit 3) \
            and nothing changes; an undo that could not restore everything exits 1, lists what is left, and can be \
            run again.
            """)

    @Argument(help: "The journal `ezmsi fix --yes` printed.") var journal: String?
    @OptionGroup var deployment: DeploymentOptions
    @Flag(help: "List the journals (folder, time, entries, state).") var list = false
    @Flag(name: .customLong("dry-run"), help: "Show what would be restored; change nothing.") var dryRun = false
    @Flag(name: .customLong("accept-cut"), help: "The fix was killed while writing its journal: accept its cut last batch (never acted on).")
    var acceptCut = false
    @Option(help: "human or json.") var format: OutputFormat = .human

    func run() throws {
        let out = Output(scrubber: Secrets.Scrubber(secrets: []))
        let directory = FolderFixer.defaultJournalDirectory(environment: ProcessInfo.processInfo.environment)
        let summaries = FolderFixer.listJournals(in: directory)
        if list {
            if format == .json { out.stdout(JSONRenderer.render(summaries)); return }
            if summaries.isEmpty { out.stdout("no journals in \(VisibleText.escape(directory))\n"); return }
            var text = ""
            for s in summaries {
                text += "\(s.startedAt)  \(s.state.rawValue)  \(s.records) entr\(s.records == 1 ? "y" : "ies")  \(VisibleText.escape(s.root))\n"
                text += "    \(VisibleText.escape(s.journal))" + (s.problem.map { "  (\(VisibleText.escape($0)))" } ?? "") + "\n"
            }
            out.stdout(text)
            return
        }
        let path = try choose(summaries, directory: directory, out: out)
        let outcome: UndoOutcome
        do {
            outcome = try FolderFixer.undo(journal: path, dryRun: dryRun, acceptCut: acceptCut)
        } catch let e as FixError {
            out.stderr("ezmsi: cannot undo \(VisibleText.escape(path)): \(VisibleText.escape(e.description))\n")
            throw CLIError.refused
        }
        if format == .json {
            out.stdout(JSONRenderer.render(outcome))
        } else {
            var text: String
            if outcome.alreadyUndone {
                text = "\(VisibleText.escape(path)) was undone before: nothing to do\n"
            } else {
                let verb = dryRun ? "would restore" : "restored"
                let entries = outcome.restored == 1 ? "entry" : "entries"
                text = "\(verb) \(outcome.restored) \(entries) of \(VisibleText.escape(outcome.root)) from \(VisibleText.escape(path))"
                if outcome.alreadyOriginal > 0 { text += " (\(outcome.alreadyOriginal) already as journaled)" }
                if outcome.removedCreatedRoot { text += "; removed the folder the fix had created" }
                text += "\n"
            }
            if outcome.interrupted && !outcome.alreadyUndone {
                text += "  the fix did not finish (killed or stopped): restored what its journal records\n"
            }
            for s in outcome.skipped { text += "  skipped: \(VisibleText.escape(s))\n" }
            for l in outcome.left { text += "  not restored: \(VisibleText.escape(l))\n" }
            for u in outcome.untestable { text += "  could not test: \(u)\n" }
            if !outcome.left.isEmpty {
                text += "\(outcome.left.count) entr\(outcome.left.count == 1 ? "y is" : "ies are") left; the journal stays open: run the same ezmsi undo again\n"
            }
            out.stdout(text)
        }
        if !outcome.left.isEmpty { throw CLIError.failed }
    }

    /// The journal to undo: the argument; else the newest fix of the deployment's folder; else the only folder with
    /// open journals (asked on a terminal when there are several).
    private func choose(_ summaries: [JournalSummary], directory: String, out: Output) throws -> String {
        if let journal { return Paths.absolute(journal, base: FileManager.default.currentDirectoryPath) }
        let open = summaries.filter { $0.state == .open || $0.state == .interrupted }
        let refused = summaries.filter { $0.state == .refused }.count
        let refusedNote = refused == 0 ? "" : "; \(refused) journal\(refused == 1 ? " is" : "s are") refused (ezmsi undo --list says why)"
        var folder: String?
        if deployment.folder != nil || deployment.deployment != nil || !deployment.command.isEmpty {
            let resolved: Deployment
            do { resolved = try deployment.resolve() } catch let e as InputError { throw CLIError.input(e) }
            let facts = Facts(deployment: resolved, environment: ProcessInfo.processInfo.environment, timeout: 10)
            folder = FolderGatherer.folderPath(resolved, facts.command.get()).map { FolderFixer.absolutePath($0) }
        }
        if let folder {
            guard let newest = open.filter({ $0.root == folder }).max(by: { $0.startedAt < $1.startedAt }) else {
                out.stderr("ezmsi: no open fix journal for \(VisibleText.escape(folder)) in \(VisibleText.escape(directory))\(refusedNote) (ezmsi undo --list shows them)\n")
                throw CLIError.refused
            }
            return newest.journal
        }
        let folders = Array(Set(open.map(\.root))).sorted()
        if folders.isEmpty {
            out.stderr("ezmsi: no open fix journal in \(VisibleText.escape(directory)): nothing to undo\(refusedNote)\n")
            throw CLIError.refused
        }
        func newest(_ f: String) -> String { open.filter { $0.root == f }.max(by: { $0.startedAt < $1.startedAt })!.journal }
        if folders.count == 1 { return newest(folders[0]) }
        var text = "open fix journals exist for \(folders.count) folders:\n"
        for (k, f) in folders.enumerated() { text += "  \(k + 1). \(VisibleText.escape(f))\n" }
        guard isatty(0) == 1 && isatty(1) == 1 else {
            out.stderr(text + "name one: ezmsi undo --folder DIR (or the journal's path)\n")
            throw CLIError.usage(nil)
        }
        out.stdout(text + "which one? ")
        guard let answer = readLine(), let k = Int(answer.trimmingCharacters(in: .whitespaces)), k >= 1, k <= folders.count else {
            out.stderr("ezmsi: no folder chosen; nothing changed\n")
            throw CLIError.usage(nil)
        }
        return newest(folders[k - 1])
    }
}
