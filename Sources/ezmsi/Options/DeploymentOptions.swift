import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

/// Where the deployment comes from. Flags beat tracker.json, which beats the defaults.
struct DeploymentOptions: ParsableArguments {
    @Option(name: .customLong("deployment"), help: "Deployment folder (default: the current folder).")
    var deployment: String?
    @Option(name: .customLong("env-file"), help: "Env-file with the broker credentials (default: openmsi.env there).")
    var envFile: String?
    @Option(help: "Config file (default: config.config there).")
    var config: String?
    @Option(help: "Host data folder, mounted at /home/openmsi/data (tracker.json: service_local_target_folder).")
    var folder: String?
    @Option(help: "Image (default: openmsi/openmsistream:latest).")
    var image: String?
    @Option(help: "Container user, as for docker run --user (default: the image's).")
    var user: String?
    @Option(name: .customLong("mount"), help: "Extra bind mount HOST:CONTAINER[:ro]; repeatable.")
    var mounts: [String] = []
    @Option(help: "Container name (default: ezmsi-<deployment folder name>).")
    var name: String?
    @Option(help: "Docker network, e.g. host for a broker on this machine (tracker.json: network).")
    var network: String?
    @Option(help: "Restart policy of the daemon form: no, always, unless-stopped (default), on-failure[:N].")
    var restart: String?
    @Option(name: .customLong("tz"), help: "TZ inside the container, e.g. Europe/Berlin (tracker.json: tz).")
    var timezone: String?
    @Argument(parsing: .postTerminator, help: "The OpenMSIStream command, after --.")
    var command: [String] = []

    func resolve() throws -> Deployment {
        var flags = DeploymentFlags()
        flags.deployment = deployment
        flags.envFile = envFile
        flags.config = config
        flags.folder = folder
        flags.image = image
        flags.user = user
        flags.mounts = mounts
        flags.name = name
        flags.network = network
        flags.restart = restart
        flags.timezone = timezone
        flags.command = command
        return try DeploymentResolver.resolve(flags, cwd: FileManager.default.currentDirectoryPath)
    }
}
