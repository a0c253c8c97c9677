import Foundation
import Glibc
import Testing
@testable import EZMSICore

/// Fixed-seed fuzzing in CI (the long libFuzzer runs are `Fuzz/run`, outside CI): mutated journals never crash the
/// reader and a refused journal changes nothing; random bytes never crash the env-file and config readers.
@Suite(.serialized) struct FuzzTests {
    /// A small deterministic generator (SplitMix64), so a failure names its seed and replays.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func mutate(_ bytes: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        var b = bytes
        let rounds = Int.random(in: 1...3, using: &rng)
        for _ in 0..<rounds where !b.isEmpty {
            let at = Int.random(in: 0..<b.count, using: &rng)
            switch Int.random(in: 0..<8, using: &rng) {
            case 0: b[at] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
            case 1: b[at] = [UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "\""), UInt8(ascii: ","), 0x0A, 0x30, 0x39, 0x00].randomElement(using: &rng)!
            case 2: b.removeSubrange(at..<min(b.count, at + Int.random(in: 1...40, using: &rng)))
            case 3: b.removeSubrange(at...)  // truncated
            case 4: b.insert(contentsOf: Array("{\"in\":0,\"name\":\"x\"}\n".utf8), at: at)
            case 5:
                // Swap two lines.
                var lines = b.split(separator: 0x0A, omittingEmptySubsequences: false)
                if lines.count > 2 {
                    let i = Int.random(in: 1..<lines.count, using: &rng), j = Int.random(in: 1..<lines.count, using: &rng)
                    lines.swapAt(i, j)
                    b = Array(lines.joined(separator: [0x0A]))
                }
            case 6:
                // Change a number.
                if let k = b[at...].firstIndex(where: { (0x30...0x39).contains($0) }) { b[k] = UInt8(0x30 + Int.random(in: 0...9, using: &rng)) }
            default:
                // Duplicate a line.
                var lines = b.split(separator: 0x0A, omittingEmptySubsequences: false)
                if lines.count > 1 {
                    let i = Int.random(in: 0..<lines.count, using: &rng)
                    lines.insert(lines[i], at: i)
                    b = Array(lines.joined(separator: [0x0A]))
                }
            }
        }
        return b
    }

    static func makeTree(_ s: TempDir) throws -> String {
        let root = s.dir("tree", mode: 0o750)
        try PermShell.sh("""
            set -e
            cd \(PermShell.quote(root))
            mkdir -p a/b c && : > a/f && : > a/b/g && : > c/h && : > "$(printf 'odd\\377name')" && chmod 640 a/f a/b/g c/h
            setfacl -m u:1001:r-- c/h
            """)
        return root
    }

    @Test(.enabled(if: PermShell.isRoot)) func mutatedJournalsNeverCrashAndRefusalsChangeNothing() throws {
        let s = TempDir("fuzz-journal")
        var root = try Self.makeTree(s)
        let journals = s.path + "/journals"
        var outcome = try FolderFixer.apply(kind: .acl, root: root, identity: FolderFixerTests.openmsi, need: .readTreeWriteRoot,
                                            journalDirectory: journals)
        var valid = Array(try Data(contentsOf: URL(fileURLWithPath: outcome.journal)))
        var fixedDump = try FolderFixerTests.dump(root)
        let seeds = Int(ProcessInfo.processInfo.environment["EZMSI_FUZZ_SEEDS"] ?? "") ?? 200
        var refused = 0, accepted = 0
        for seed in 0..<seeds {
            var rng = SplitMix(state: UInt64(seed))
            let bytes = Self.mutate(valid, &rng)
            let path = journals + "/fix-fuzz-\(seed).jsonl"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            do {
                _ = try FolderFixer.undo(journal: path)
                accepted += 1
                // A mutation that is still a valid journal may restore something: start again from a fixed tree.
                try PermShell.sh("rm -rf \(PermShell.quote(root))")
                root = try Self.makeTree(s)
                outcome = try FolderFixer.apply(kind: .acl, root: root, identity: FolderFixerTests.openmsi,
                                                need: .readTreeWriteRoot, journalDirectory: journals)
                valid = Array(try Data(contentsOf: URL(fileURLWithPath: outcome.journal)))
                fixedDump = try FolderFixerTests.dump(root)
            } catch let e as FixError {
                refused += 1
                _ = e  // refused (damaged, untrusted, or names a root that is not the fixed one): must change nothing
                #expect(try FolderFixerTests.dump(root) == fixedDump, "seed \(seed): a refused journal changed the tree")
            }
            unlink(path)
        }
        #expect(refused > seeds / 2, "most mutations are refused (\(refused) of \(seeds); \(accepted) accepted)")
    }

    @Test func randomBytesNeverCrashTheEnvFileAndConfigReaders() {
        let seeds = Int(ProcessInfo.processInfo.environment["EZMSI_FUZZ_SEEDS"] ?? "") ?? 20000
        let seedCorpus: [[UInt8]] = [Array(ExampleFacts.goodEnv.utf8), Array(ExampleFacts.goodProducerConfig.utf8),
                                     Array("[broker]\nkey = $A ${B} %(c)s\n\tcontinued\n;comment\n".utf8)]
        for seed in 0..<seeds {
            var rng = SplitMix(state: UInt64(seed) &* 7919)
            var bytes = Self.mutate(seedCorpus[seed % seedCorpus.count], &rng)
            if seed % 5 == 0 { bytes += (0..<Int.random(in: 0...512, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) } }
            _ = EnvFileParser.parse(bytes: bytes, path: "fuzz.env")
            _ = ConfigParser.parse(bytes: bytes, path: "fuzz.config")
            _ = ComposeEnvFileParser.parse(bytes: bytes, path: "fuzz.env", environment: [:])
        }
    }
}
