// libFuzzer entry point for the readers that take input from outside: the fix journal (what `ezmsi undo` reads
// before it changes anything), the env-file and the config. Built by Fuzz/run with the EZMSICore sources into one
// module (so the internal journal reader is reachable); never part of the package build.
import Foundation
import Glibc

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    switch ProcessInfo.processInfo.environment["EZMSI_FUZZ_TARGET"] ?? "journal" {
    case "envfile":
        _ = EnvFileParser.parse(bytes: bytes, path: "fuzz.env")
        _ = ComposeEnvFileParser.parse(bytes: bytes, path: "fuzz.env", environment: [:])
    case "config":
        _ = ConfigParser.parse(bytes: bytes, path: "fuzz.config")
    default:
        // The journal reader works on a descriptor: an anonymous memory file holds the input.
        #if arch(x86_64)
        let memfdCreate = 319
        #else
        let memfdCreate = 279
        #endif
        let fd = Int32("journal".withCString { Xattr.syscall6(memfdCreate, Int(bitPattern: $0), 0, 0, 0, 0, 0) })
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        _ = try? JournalContents.read(fd: fd, path: "fuzz.jsonl")
    }
    return 0
}
