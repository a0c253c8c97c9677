import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show whether the deployment `ezmsi run` recorded is running, and whether anything drifted.",
        discussion: """
            Reads the record in tracker.json; shows the container's state, since when, restart count, exit code and \
            last log lines (secrets scrubbed), and whether the image, config or env-file changed since the start. \
            Exit status: 0 running as recorded, 1 not running or drifted, 3 no record.
            """)

    @OptionGroup var deployment: DeploymentOptions
    @Option(help: "human or json.") var format: OutputFormat = .human
    @Option(help: "How many log lines to show.") var lines: Int = 10

    func validate() throws {
        guard (0...10_000).contains(lines) else { throw ValidationError("--lines must be between 0 and 10000") }
    }

    func run() throws {
        let resolved: Deployment
        do { resolved = try deployment.resolve() } catch let e as InputError { throw CLIError.input(e) }
        let trackerPath = resolved.directory + "/tracker.json"
        let tracker: Tracker?
        do { tracker = try Tracker.load(trackerPath) } catch let e as InputError { throw CLIError.input(e) }
        guard let record = tracker?.record else {
            throw CLIError.input(InputError(file: trackerPath, line: nil, message: "no deployment is recorded here",
                                    fix: "start it with `ezmsi run` (it records what it started in tracker.json)"))
        }
        let facts = Facts(deployment: resolved, environment: ProcessInfo.processInfo.environment)
        var out = Output(scrubber: Secrets.scrubber(for: facts))
        guard let path = facts.dockerCLI.get().path else {
            out.stderr("ezmsi: the docker CLI is not on PATH\n")
            throw CLIError.failed
        }
        let docker = DockerCLIClient(path: path, environment: facts.environment)
        var status: DeploymentStatus
        do {
            let container = try record.containerID.flatMap { try docker.container($0) } ?? docker.container(record.containerName)
            // The record masks secret arguments (the Girder API key), but the program may print them: the
            // container's own arguments say what to cut out.
            out = Output(scrubber: out.scrubber.adding(Secrets.secretArguments(container?.command ?? [])))
            let logs = try container.map { try docker.logs($0.id, count: lines) } ?? []
            status = DeploymentStatus.evaluate(record: record, container: container,
                                               currentImageID: try docker.image(record.image)?.id, logs: logs)
        } catch {
            out.stderr("ezmsi: \(VisibleText.escape(String(describing: error)))\n")   // docker's words, shown visibly
            throw CLIError.failed
        }
        // Log lines are the container's own words: secrets (also base64- or URL-encoded) are cut out before JSON
        // escaping could hide them from the output scrub.
        status.logs = status.logs.map(out.scrubber.scrub)
        switch format {
        case .json: out.stdout(JSONRenderer.render(status))
        case .human:
            out.stdout(status.renderHuman(color: Terminal.wantsColor(fd: 1, environment: ProcessInfo.processInfo.environment)))
        }
        throw CLIError.exit(status.exitCode)
    }
}
