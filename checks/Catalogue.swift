import EZMSICore

/// Every probe, in the order reports list them. A new probe is one file in checks/ plus one line here; the test
/// `CatalogueTests` fails if a probe file is not listed.
public enum Catalogue {
    public static let all: [any Probe] = [
        DockerCLI(),
        DockerDaemon(),
        DockerImage(),
        EnvFileProbe(),
        EnvCredentials(),
        EnvComposeSemantics(),
        ConfigSyntax(),
        ConfigKeys(),
        CommandProgram(),
        IdentityAlignment(),
        FolderAccess(),
        FolderTree(),
        MountsReadable(),
        BrokerReachable(),
        BrokerKafka(),
        CustomImageLint(),
        FolderProve(),
        TrackerRecord(),
    ]
}
