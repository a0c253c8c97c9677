import Crypto
import _CryptoExtras

/// Hashes and key derivation, all from swift-crypto (BoringSSL underneath): never a hand-written primitive.
public enum Digests {
    /// SHA-256 as 64 lowercase hex digits: docker's context-store directory names, the salted file stamps of
    /// tracker.json. Never applied to a secret on its own (see `slowFingerprint`).
    public static func sha256Hex(_ bytes: [UInt8]) -> String { hex(SHA256.hash(data: bytes)) }

    /// PBKDF2-HMAC-SHA256 rounds of the support bundle's fingerprints: deliberately slow (OWASP's 2023 advice for
    /// PBKDF2-HMAC-SHA256, and swift-crypto's minimum), so that testing guesses against a fingerprint costs what
    /// testing them against a password hash costs.
    public static let pbkdf2Rounds = 210_000

    /// Bytes of a fingerprint: 16 (128 bits) is plenty to tell values apart.
    public static let fingerprintBytes = 16

    /// PBKDF2-HMAC-SHA256(value, salt, `pbkdf2Rounds`) as hex: a fingerprint that lets two values in one bundle be
    /// compared without showing them.
    public static func slowFingerprint(_ value: String, salt: [UInt8]) -> String {
        // Cannot throw: the rounds are at swift-crypto's minimum and the output length is fixed.
        let key = try! KDF.Insecure.PBKDF2.deriveKey(from: Array(value.utf8), salt: salt, using: .sha256,
                                                       outputByteCount: fingerprintBytes, rounds: pbkdf2Rounds)
        return key.withUnsafeBytes { hex($0) }
    }

    /// PBKDF2-HMAC-SHA256(bytes, salt, `pbkdf2Rounds`), 32 bytes as hex: the stamp of a file that holds secrets.
    public static func slowDigest(_ bytes: [UInt8], salt: [UInt8]) -> String {
        // Cannot throw: the rounds are at swift-crypto's minimum and the output length is fixed.
        let key = try! KDF.Insecure.PBKDF2.deriveKey(from: bytes, salt: salt, using: .sha256, outputByteCount: 32,
                                                       rounds: pbkdf2Rounds)
        return key.withUnsafeBytes { hex($0) }
    }

    /// Lowercase hex, two digits a byte.
    public static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
