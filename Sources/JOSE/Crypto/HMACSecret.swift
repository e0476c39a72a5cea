private import COpenSSL

/// An HMAC key: the secret bytes and, per digest, a keyed EVP_MAC context that each call
/// duplicates (so the secret is set up once, and the shared contexts are only read).
final class HMACSecret: @unchecked Sendable {  // the keyed base contexts are never used directly, only duplicated
    let bytes: [UInt8]
    private let mac: OpaquePointer
    private let keyed: [Int: OpaquePointer]  // digest size -> EVP_MAC_CTX

    private static let paramKey = OSSL_MAC_PARAM_DIGEST
    nonisolated(unsafe) private static let hmac: OpaquePointer = EVP_MAC_fetch(nil, "HMAC", nil)!

    init(_ bytes: [UInt8]) throws(OpenSSLError) {
        self.bytes = bytes
        mac = Self.hmac
        var keyed: [Int: OpaquePointer] = [:]
        for (size, name) in [(32, "SHA256"), (48, "SHA384"), (64, "SHA512")] {
            let ctx = try ossl(EVP_MAC_CTX_new(mac), "EVP_MAC_CTX_new")
            let rc = Self.paramKey.withCString { key in
                name.withCString { digest -> Int32 in
                    var params = [
                        OSSL_PARAM_construct_utf8_string(key, UnsafeMutablePointer(mutating: digest), 0),
                        OSSL_PARAM_construct_end(),
                    ]
                    return bytes.withUnsafeBufferPointer { EVP_MAC_init(ctx, $0.baseAddress, $0.count, &params) }
                }
            }
            if rc != 1 {
                EVP_MAC_CTX_free(ctx)
                for c in keyed.values { EVP_MAC_CTX_free(c) }
                throw OpenSSLError.drain("HMAC-\(name) key setup")
            }
            keyed[size] = ctx
        }
        self.keyed = keyed
    }

    deinit { for ctx in keyed.values { EVP_MAC_CTX_free(ctx) } }

    /// HMAC of `message` with the algorithm's digest.
    func mac(_ alg: Algorithm, _ message: UnsafeRawBufferPointer) throws(OpenSSLError) -> [UInt8] {
        guard let base = keyed[alg.digestSize], let ctx = EVP_MAC_CTX_dup(base) else {
            throw OpenSSLError.drain("EVP_MAC_CTX_dup")
        }
        defer { EVP_MAC_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: 64)
        var length = 0
        try ossl(EVP_MAC_update(ctx, message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count), "EVP_MAC_update")
        try ossl(EVP_MAC_final(ctx, &out, &length, out.count), "EVP_MAC_final")
        return Array(out.prefix(length))
    }

    /// Checks a MAC in constant time.
    func verify(_ alg: Algorithm, _ message: UnsafeRawBufferPointer, _ tag: UnsafeRawBufferPointer) -> Bool {
        guard tag.count == alg.digestSize, let expected = try? mac(alg, message) else { return false }
        return expected.withUnsafeBytes { CRYPTO_memcmp($0.baseAddress, tag.baseAddress, tag.count) == 0 }
    }
}
