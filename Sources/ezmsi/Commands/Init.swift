import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a deployment folder for one program (never overwrites).",
        discussion: "Writes openmsi.env (0600, keys without values), config.config, tracker.json and .gitignore.")

    @Argument(help: "The folder to create or fill.") var directory: String
    @Option(help: "The OpenMSIStream program, e.g. DataFileUploadDirectory.") var program: String

    func run() throws {
        guard let spec = ProgramTable.program(named: program) else {
            throw CLIError.usage("unknown program \(program); choose one of: \(ProgramTable.all.map(\.name).joined(separator: ", "))")
        }
        let target = Paths.absolute(Paths.expandHome(directory), base: FileManager.default.currentDirectoryPath)
        do {
            let written = try Scaffold.write(program: spec, directory: target)
            let out = Output.beforeFacts
            for path in written { out.stdout("created \(VisibleText.escape(path))\n") }
            out.stdout("next: fill in \(VisibleText.escape(target))/openmsi.env, then run: ezmsi doctor --deployment \(ShellWords.quote(target))\n")
        } catch let e as InputError { throw CLIError.input(e) }
    }
}
