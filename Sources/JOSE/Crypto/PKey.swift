private import COpenSSL
import Foundation
import Synchronization

/// An asymmetric key (RSA, EC P-256/384/521, Ed25519) held by OpenSSL.
///
/// The EVP_PKEY is created once and never changed; OpenSSL allows concurrent verify and sign
/// operations on a shared key. Freed in `deinit`.
final class PKey: @unchecked Sendable {  // immutable EVP_PKEY, read concurrently by design
    enum Kind: Sendable, Equatable {
        case rsa(bits: Int, pssOnly: Bool)
        case ec(curve: Curve)
        case ed25519
    }

    enum Curve: String, Sendable, CaseIterable {
        case p256 = "P-256", p384 = "P-384", p521 = "P-521"
        var opensslName: String {
            switch self { case .p256: "prime256v1"; case .p384: "secp384r1"; case .p521: "secp521r1" }
        }
        var coordinateSize: Int {
            switch self { case .p256: 32; case .p384: 48; case .p521: 66 }
        }
        var algorithm: Algorithm {
            switch self { case .p256: .ES256; case .p384: .ES384; case .p521: .ES512 }
        }
        init?(opensslName: String) {
            switch opensslName {
            case "prime256v1", "P-256", "secp256r1": self = .p256
            case "secp384r1", "P-384": self = .p384
            case "secp521r1", "P-521": self = .p521
            default: return nil
            }
        }
    }

    private static let groupParam = OSSL_PKEY_PARAM_GROUP_NAME
    let raw: OpaquePointer
    let kind: Kind
    let hasPrivate: Bool
    /// Verify contexts already initialised for this key, per algorithm, lent out one call at a
    /// time: setting up an EVP_PKEY_CTX costs about as much as an RSA verify's arithmetic.
    private let idleContexts = Mutex<[Algorithm: [UInt]]>([:])  // EVP_PKEY_CTX addresses
    private static let idleLimit = 32

    /// Takes ownership of `raw`.
    init(taking raw: OpaquePointer) throws(AuthFailure) {
        self.raw = raw
        let id = EVP_PKEY_get_base_id(raw)
        if id == cossl_pkey_rsa() || id == cossl_pkey_rsa_pss() {
            kind = .rsa(bits: Int(EVP_PKEY_get_bits(raw)), pssOnly: id == cossl_pkey_rsa_pss())
            var d: OpaquePointer? = nil
            hasPrivate = EVP_PKEY_get_bn_param(raw, OSSL_PKEY_PARAM_RSA_D, &d) == 1
            BN_clear_free(d)
        } else if id == cossl_pkey_ec() {
            var name = [CChar](repeating: 0, count: 64)
            var length = 0
            guard EVP_PKEY_get_utf8_string_param(raw, Self.groupParam, &name, name.count, &length) == 1,
                  let curve = Curve(opensslName: String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            else {
                EVP_PKEY_free(raw)
                OpenSSLError.clearQueue()
                throw AuthFailure(.keyConfig, "EC key on an unsupported curve (supported: P-256, P-384, P-521)")
            }
            kind = .ec(curve: curve)
            var priv: OpaquePointer? = nil
            hasPrivate = EVP_PKEY_get_bn_param(raw, OSSL_PKEY_PARAM_PRIV_KEY, &priv) == 1
            BN_clear_free(priv)
        } else if id == cossl_pkey_ed25519() {
            kind = .ed25519
            var length = 0
            hasPrivate = EVP_PKEY_get_raw_private_key(raw, nil, &length) == 1
        } else {
            EVP_PKEY_free(raw)
            throw AuthFailure(.keyConfig, "unsupported key type (supported: RSA, EC P-256/384/521, Ed25519)")
        }
        OpenSSLError.clearQueue()
    }

    deinit {
        idleContexts.withLock { pools in pools.values.forEach { $0.forEach { EVP_PKEY_CTX_free(OpaquePointer(bitPattern: $0)) } } }
        EVP_PKEY_free(raw)
    }

    var description: String {
        switch kind {
        case .rsa(let bits, let pss): pss ? "RSA-PSS \(bits)" : "RSA \(bits)"
        case .ec(let curve): "EC \(curve.rawValue)"
        case .ed25519: "OKP Ed25519"
        }
    }

    /// Same public key material.
    func samePublicKey(as other: PKey) -> Bool { EVP_PKEY_eq(raw, other.raw) == 1 }

    // MARK: Verify

    /// Verifies a JWS signature over `message`. A `false` is an answer, not a fault.
    func verify(_ alg: Algorithm, message: UnsafeRawBufferPointer, signature: UnsafeRawBufferPointer) -> Bool {
        defer { OpenSSLError.clearQueue() }
        switch alg.family {
        case .hmac:
            return false
        case .eddsa:
            guard signature.count == 64, let ctx = EVP_MD_CTX_new() else { return false }
            defer { EVP_MD_CTX_free(ctx) }
            guard EVP_DigestVerifyInit_ex(ctx, nil, nil, nil, nil, raw, nil) == 1 else { return false }
            return EVP_DigestVerify(ctx, signature.baseAddress, signature.count, message.baseAddress, message.count) == 1
        case .ecdsa:
            guard case .ec(let curve) = kind, signature.count == 2 * curve.coordinateSize,
                  let der = ECDSASignature.der(fromRaw: signature)
            else { return false }
            return der.withUnsafeBytes { verifyDigest(alg, message: message, signature: $0) }
        case .rsa, .rsaPSS:
            guard case .rsa = kind, signature.count == Int(EVP_PKEY_get_size(raw)) else { return false }
            return verifyDigest(alg, message: message, signature: signature)
        }
    }

    /// Hash, then EVP_PKEY_verify: one digest pass and no per-call method fetch.
    private func verifyDigest(_ alg: Algorithm, message: UnsafeRawBufferPointer, signature: UnsafeRawBufferPointer) -> Bool {
        var digest = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &digest) { d -> Bool in
            let out = d.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let length = Digest.hash(alg, message, into: out)
            guard length == alg.digestSize, let ctx = borrowContext(alg) else { return false }
            let ok = EVP_PKEY_verify(ctx, signature.baseAddress, signature.count, out, length) == 1
            returnContext(ctx, alg)
            return ok
        }
    }

    private func borrowContext(_ alg: Algorithm) -> OpaquePointer? {
        if let idle = idleContexts.withLock({ $0[alg]?.popLast() }) { return OpaquePointer(bitPattern: idle) }
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, raw, nil) else { return nil }
        guard EVP_PKEY_verify_init(ctx) == 1, configure(ctx, alg) else {
            EVP_PKEY_CTX_free(ctx)
            return nil
        }
        return ctx
    }

    private func returnContext(_ ctx: OpaquePointer, _ alg: Algorithm) {
        let address = UInt(bitPattern: Int(bitPattern: ctx))
        let kept = idleContexts.withLock { pools -> Bool in
            guard pools[alg, default: []].count < Self.idleLimit else { return false }
            pools[alg, default: []].append(address)
            return true
        }
        if !kept { EVP_PKEY_CTX_free(ctx) }
    }

    /// Padding and digest parameters for RSA; the digest for ECDSA.
    private func configure(_ ctx: OpaquePointer, _ alg: Algorithm) -> Bool {
        guard let md = Digest.md(for: alg) else { return false }
        switch alg.family {
        case .rsa:
            return EVP_PKEY_CTX_set_rsa_padding(ctx, cossl_rsa_pkcs1_padding()) == 1
                && EVP_PKEY_CTX_set_signature_md(ctx, md) == 1
        case .rsaPSS:
            return EVP_PKEY_CTX_set_rsa_padding(ctx, cossl_rsa_pss_padding()) == 1
                && EVP_PKEY_CTX_set_signature_md(ctx, md) == 1
                && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1
                && EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, cossl_rsa_pss_saltlen_digest()) == 1
        case .ecdsa:
            return EVP_PKEY_CTX_set_signature_md(ctx, md) == 1
        case .hmac, .eddsa:
            return false
        }
    }

    // MARK: Sign

    /// Signs `message` for a JWS: raw r||s for ECDSA, PKCS#1 v1.5 or PSS for RSA.
    func sign(_ alg: Algorithm, message: UnsafeRawBufferPointer) throws(OpenSSLError) -> [UInt8] {
        guard hasPrivate else { throw OpenSSLError(operation: "sign", details: ["the key has no private part"]) }
        defer { OpenSSLError.clearQueue() }
        let ctx = try ossl(EVP_MD_CTX_new(), "EVP_MD_CTX_new")
        defer { EVP_MD_CTX_free(ctx) }
        var pctx: OpaquePointer? = nil
        let rc: Int32 = if let name = CName.digest(alg) {
            EVP_DigestSignInit_ex(ctx, &pctx, name, nil, nil, raw, nil)
        } else {
            EVP_DigestSignInit_ex(ctx, &pctx, nil, nil, nil, raw, nil)
        }
        try ossl(rc, "EVP_DigestSignInit_ex(\(alg.rawValue))")
        if alg.family == .rsa || alg.family == .rsaPSS, let pctx {
            guard configure(pctx, alg) else { throw OpenSSLError.drain("RSA padding for \(alg.rawValue)") }
        }
        var length = 0
        try ossl(EVP_DigestSign(ctx, nil, &length, message.baseAddress, message.count), "EVP_DigestSign(size)")
        var signature = [UInt8](repeating: 0, count: length)
        try ossl(EVP_DigestSign(ctx, &signature, &length, message.baseAddress, message.count), "EVP_DigestSign")
        signature.removeLast(signature.count - length)
        if alg.family == .ecdsa, case .ec(let curve) = kind {
            guard let raw = ECDSASignature.raw(fromDER: signature, coordinateSize: curve.coordinateSize) else {
                throw OpenSSLError(operation: "ECDSA signature conversion", details: [])
            }
            return raw
        }
        return signature
    }
}
