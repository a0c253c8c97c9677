// swift-tools-version:6.0
import PackageDescription

// Dependencies are deliberately few:
// - swift-argument-parser: the CLI (help text, subcommands, usage errors with exit code 2).
// - libacl (system library, Debian libacl1-dev): POSIX ACLs for the folder-permission probes.
// - OpenSSL (system library, Debian libssl-dev): the TLS handshake and SASL/SCRAM of the broker probes.
// - swift-crypto: SHA-256 (docker's context-store names, the salted file stamps of tracker.json) and PBKDF2 (the
//   support bundle's slow, salted fingerprints of secrets); vetted code instead of a hand-written hash.
// Everything else (Engine API over the unix socket, env-file and configparser re-implementations) is ours,
// because each must match a reference implementation byte for byte and is tested against it.
let package = Package(
    name: "ezmsi",
    products: [
        .executable(name: "ezmsi", targets: ["ezmsi"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        .systemLibrary(
            name: "CACL",
            path: "Sources/CACL",
            providers: [.apt(["libacl1-dev"]), .yum(["libacl-devel"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            path: "Sources/COpenSSL",
            providers: [.apt(["libssl-dev"]), .yum(["openssl-devel"])]
        ),
        // The runner, models, parsers, Docker client, program table, reporters and hand-off.
        .target(
            name: "EZMSICore",
            dependencies: [
                "CACL", "COpenSSL",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            path: "Sources/EZMSICore"
        ),
        // One probe per file. Adding a probe = adding a file here and one line in Catalogue.swift.
        .target(name: "EZMSIChecks", dependencies: ["EZMSICore"], path: "checks"),
        .executableTarget(
            name: "ezmsi",
            dependencies: [
                "EZMSICore", "EZMSIChecks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/ezmsi"
        ),
        .testTarget(
            name: "EZMSITests",
            dependencies: ["EZMSICore", "EZMSIChecks", "ezmsi"],
            path: "Tests/EZMSITests"
        ),
    ],
    swiftLanguageModes: [.v5]
)
