private import COpenSSL
import Foundation

/// Password hashes with scrypt (OpenSSL EVP_PBE_scrypt), in a self-describing text form:
/// `$scrypt$ln=15,r=8,p=1$<salt b64url>$<hash b64url>`. Verification reads the cost from the
/// stored hash, so the cost can rise without invalidating old hashes.
public enum PasswordHash {
    public struct Cost: Sendable, Equatable {
        /// log2 of N.
        public var logN: Int
        public var r: Int
        public var p: Int
        public init(logN: Int, r: Int, p: Int) { self.logN = logN; self.r = r; self.p = p }
        /// N = 2^15, r = 8, p = 1: 32 MiB and tens of milliseconds per hash (OWASP's scrypt floor
        /// is N = 2^17 with r = 8, p = 1; raise `[runtime] password_cost` in production).
        public static let standard = Cost(logN: 15, r: 8, p: 1)
        /// For tests only.
        public static let fast = Cost(logN: 10, r: 8, p: 1)
    }

    /// Hashes a password with a fresh 16-byte salt; `crypto_failure` when scrypt fails (a cost
    /// beyond its memory limit, or OpenSSL itself).
    public static func hash(_ password: String, cost: Cost = .standard) throws(AuthFailure) -> String {
        let salt = secureRandomBytes(16)
        let derived = try scrypt(Array(password.utf8), salt: salt, cost: cost)
        return "$scrypt$ln=\(cost.logN),r=\(cost.r),p=\(cost.p)$\(Base64URL.encode(salt))$\(Base64URL.encode(derived))"
    }

    /// Checks a password against a stored hash in constant time; false for any malformed hash.
    public static func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: true)
        guard parts.count == 4, parts[0] == "scrypt" else { return false }
        var values: [String: Int] = [:]
        for item in parts[1].split(separator: ",") {
            let kv = item.split(separator: "=")
            guard kv.count == 2, let v = Int(kv[1]) else { return false }
            values[String(kv[0])] = v
        }
        guard let logN = values["ln"], let r = values["r"], let p = values["p"], (1...22).contains(logN), (1...32).contains(r), (1...16).contains(p),
              let salt = Base64URL.decode(parts[2]), let expected = Base64URL.decode(parts[3]), expected.count == 32,
              let derived = try? scrypt(Array(password.utf8), salt: salt, cost: Cost(logN: logN, r: r, p: p))
        else { return false }
        return CRYPTO_memcmp(derived, expected, 32) == 0
    }

    private static func scrypt(_ password: [UInt8], salt: [UInt8], cost: Cost) throws(AuthFailure) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let n = UInt64(1) << UInt64(cost.logN)
        let maxMemory = UInt64(128 * cost.r) * (n + UInt64(cost.p) + 2) + 1024 * 1024
        let rc = password.withUnsafeBufferPointer { pw in
            salt.withUnsafeBufferPointer { s in
                EVP_PBE_scrypt(pw.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, pw.count,
                               s.baseAddress, s.count, n, UInt64(cost.r), UInt64(cost.p), maxMemory, &out, out.count)
            }
        }
        guard rc == 1 else { throw AuthFailure(.cryptoFailure, "scrypt failed: \(OpenSSLError.drain("EVP_PBE_scrypt"))") }
        return out
    }
}

/// SHA-256 of bytes, for storing opaque tokens by their hash.
public enum SHA256 {
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = bytes.withUnsafeBytes { EVP_Digest($0.baseAddress, $0.count, &out, &length, Digest.sha256, nil) }
        return out
    }

    /// Hex of the SHA-256 of a string's UTF-8.
    public static func hex(_ text: String) -> String {
        hash(Array(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
