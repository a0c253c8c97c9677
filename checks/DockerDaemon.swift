import EZMSICore

/// The daemon the docker CLI would use is reachable, and by whom: the cause of a failure is named from connect(2).
public struct DockerDaemon: Probe {
    public let id = "docker.daemon"
    public let title = "Docker daemon reachable"
    public let rationale = """
        The CLI resolves DOCKER_HOST, DOCKER_CONTEXT and the current context before falling back to \
        /var/run/docker.sock; a lab often talks to another daemon than it thinks, or cannot open the socket.
        """
    public let dependsOn: [String] = []
    public init() {}

    public var examples: [ProbeExample] {
        let ep = DockerEndpoint(host: "unix:///var/run/docker.sock", context: "default", source: "default")
        return [
            ProbeExample("daemon answers", expect: .pass) { ExampleFacts.make() },
            ProbeExample("daemon down (no socket)", expect: .fail, code: "daemon-not-running") {
                ExampleFacts.make(engine: .unreachable(ep, reason: "no socket", cause: .noSocket, access: nil))
            },
            ProbeExample("added to the docker group but not logged in again", expect: .fail, code: "docker-group-relogin") {
                ExampleFacts.make(engine: .unreachable(ep, reason: "denied", cause: .permissionDenied, access: SocketAccess(
                    socketGroupID: 999, socketGroupName: "docker", userName: "lab", listedInGroup: true, processHasGroup: false)))
            },
            ProbeExample("not in the docker group", expect: .fail, code: "docker-group-missing") {
                ExampleFacts.make(engine: .unreachable(ep, reason: "denied", cause: .permissionDenied, access: SocketAccess(
                    socketGroupID: 999, socketGroupName: "docker", userName: "lab", listedInGroup: false, processHasGroup: false)))
            },
        ]
    }

    public func check(_ facts: Facts) throws -> ProbeOutcome {
        switch facts.engine.get() {
        case let .reachable(ep, info):
            var findings: [Finding] = []
            if info.rootless {
                findings.append(.info("rootless", "rootless Docker: container uid 0 is your host uid; uid n>0 is subuid start + n − 1"))
            }
            if info.usernsRemap {
                findings.append(.info("userns-remap", "userns-remap: container uids are shifted by the remap user's /etc/subuid range"))
            }
            if info.selinux {
                findings.append(.info("selinux", "SELinux support is on: bind mounts need the :z option (the hand-off adds it)"))
            }
            var details = ["endpoint": ep.host, "context": ep.context, "resolvedFrom": ep.source,
                           "serverVersion": info.serverVersion, "apiVersion": info.apiVersion,
                           "securityOptions": info.securityOptions.joined(separator: " ")]
            if let root = info.dockerRootDir { details["dockerRootDir"] = root }
            if !info.components.isEmpty { details["components"] = info.components.joined(separator: ", ") }
            return ProbeOutcome("Docker Engine \(info.serverVersion) (API \(info.apiVersion)) at \(ep.host) — \(describe(ep))",
                                findings: findings, details: details)
        case let .unreachable(ep, reason, cause, access):
            let where_ = ep.map { " at \($0.host) (\(describe($0)))" } ?? ""
            return ProbeOutcome("cannot reach the Docker daemon\(where_)", findings: [finding(ep, reason, cause, access)],
                                details: ep.map { ["endpoint": $0.host, "context": $0.context, "resolvedFrom": $0.source] } ?? [:])
        }
    }

    private func describe(_ ep: DockerEndpoint) -> String {
        ep.source == "default" ? "the default socket" : "context \(ep.context), chosen by \(ep.source)"
    }

    private func finding(_ ep: DockerEndpoint?, _ reason: String, _ cause: EngineFailureCause, _ access: SocketAccess?) -> Finding {
        let viaEnv = ep?.source == "DOCKER_HOST" ? " (DOCKER_HOST points there; unset it to use the default socket)" : ""
        switch cause {
        case .badEndpoint:
            return .fail("docker-endpoint-invalid", reason, fix: Remediation(
                "Select an existing context or unset the variable that names a missing one",
                commands: ["docker context ls", "docker context use default", "unset DOCKER_CONTEXT"]))
        case .noSocket:
            return .fail("daemon-not-running", reason + viaEnv, fix: Remediation(
                "Start the Docker daemon", commands: ["sudo systemctl start docker", "sudo systemctl enable docker"]))
        case .staleSocket:
            return .fail("daemon-stale-socket", reason + viaEnv, fix: Remediation(
                "The daemon stopped and left its socket behind: restart it", commands: ["sudo systemctl restart docker"]))
        case .permissionDenied:
            let group = access?.socketGroupName ?? "docker"
            if let access, access.listedInGroup, !access.processHasGroup {
                return .fail("docker-group-relogin",
                             "\(access.userName ?? "you") were added to the \(group) group, but this login session started before that",
                             evidence: Evidence(expected: "group \(group) (gid \(access.socketGroupID)) in this process", actual: "missing"),
                             fix: Remediation("Log out and back in (or start a shell with the new group)",
                                              commands: ["newgrp \(group)"]))
            }
            return .fail("docker-group-missing", "permission denied on the Docker socket: you are not in the \(group) group",
                         evidence: access.map { Evidence(expected: "member of \($0.socketGroupName ?? "gid \($0.socketGroupID)")",
                                                         actual: "\($0.userName ?? "this user") is not") },
                         fix: Remediation("Add yourself to the group (this grants root-equivalent access), then log in again",
                                          commands: ["sudo usermod -aG \(group) \"$USER\"", "newgrp \(group)"]))
        case .timeout:
            return .fail("daemon-timeout", reason, fix: Remediation(
                "The daemon is hung or overloaded: look at its log and restart it",
                commands: ["sudo journalctl -u docker --since -10min", "sudo systemctl restart docker"]))
        case .noCLI:
            return .fail("daemon-needs-cli", reason, fix: Remediation("Install the docker client to reach non-socket endpoints"))
        case .other:
            return .fail("daemon-unreachable", reason, fix: Remediation("Check that the daemon runs", commands: ["docker info"]))
        }
    }
}
