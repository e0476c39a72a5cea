private import COpenSSL

/// Message digests fetched once from the default provider; EVP_MD objects are shared freely.
enum Digest {
    nonisolated(unsafe) static let sha256: OpaquePointer = EVP_MD_fetch(nil, "SHA256", nil)!
    nonisolated(unsafe) static let sha384: OpaquePointer = EVP_MD_fetch(nil, "SHA384", nil)!
    nonisolated(unsafe) static let sha512: OpaquePointer = EVP_MD_fetch(nil, "SHA512", nil)!

    static func md(for alg: Algorithm) -> OpaquePointer? {
        if alg == .EdDSA { return nil }
        switch alg.digestSize {
        case 32: return sha256
        case 48: return sha384
        default: return sha512
        }
    }

    /// Hashes `message` with the algorithm's digest into `out` (at least 64 bytes); returns the length.
    static func hash(_ alg: Algorithm, _ message: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>) -> Int {
        var length: UInt32 = 0
        guard EVP_Digest(message.baseAddress, message.count, out, &length, md(for: alg), nil) == 1 else { return 0 }
        return Int(length)
    }
}
