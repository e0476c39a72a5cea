private import COpenSSL
import Foundation

extension PKey {
    /// The JWK members of an RSA key, big-endian unsigned bytes each (RFC 7518 section 6.3).
    struct RSAComponents {
        var n: [UInt8], e: [UInt8]
        var d: [UInt8]? = nil, p: [UInt8]? = nil, q: [UInt8]? = nil
        var dp: [UInt8]? = nil, dq: [UInt8]? = nil, qi: [UInt8]? = nil
    }

    static func rsa(_ c: RSAComponents) throws(AuthFailure) -> PKey {
        let params = ParamBuilder()
        params.bignum(OSSL_PKEY_PARAM_RSA_N, c.n)
        params.bignum(OSSL_PKEY_PARAM_RSA_E, c.e)
        if let d = c.d {
            params.bignum(OSSL_PKEY_PARAM_RSA_D, d)
            if let p = c.p, let q = c.q, let dp = c.dp, let dq = c.dq, let qi = c.qi {
                params.bignum("rsa-factor1", p)
                params.bignum("rsa-factor2", q)
                params.bignum("rsa-exponent1", dp)
                params.bignum("rsa-exponent2", dq)
                params.bignum("rsa-coefficient1", qi)
            }
        }
        return try fromData("RSA", params, isPrivate: c.d != nil)
    }

    static func ec(curve: Curve, x: [UInt8], y: [UInt8], d: [UInt8]?) throws(AuthFailure) -> PKey {
        let size = curve.coordinateSize
        guard x.count == size, y.count == size else {
            throw AuthFailure(.keyConfig, "EC \(curve.rawValue) coordinates must be exactly \(size) bytes (x is \(x.count), y is \(y.count))")
        }
        if let d, d.count != size { throw AuthFailure(.keyConfig, "EC \(curve.rawValue) private key \"d\" must be exactly \(size) bytes, not \(d.count)") }
        let params = ParamBuilder()
        params.utf8(OSSL_PKEY_PARAM_GROUP_NAME, curve.opensslName)
        params.octets(OSSL_PKEY_PARAM_PUB_KEY, [0x04] + x + y)
        if let d { params.bignum(OSSL_PKEY_PARAM_PRIV_KEY, d) }
        return try fromData("EC", params, isPrivate: d != nil)
    }

    static func ed25519(x: [UInt8], d: [UInt8]?) throws(AuthFailure) -> PKey {
        guard x.count == 32 else { throw AuthFailure(.keyConfig, "Ed25519 public key \"x\" must be 32 bytes, not \(x.count)") }
        let raw: OpaquePointer?
        if let d {
            guard d.count == 32 else { throw AuthFailure(.keyConfig, "Ed25519 private key \"d\" must be 32 bytes, not \(d.count)") }
            raw = EVP_PKEY_new_raw_private_key_ex(nil, CName.ed25519, nil, d, 32)
        } else {
            raw = EVP_PKEY_new_raw_public_key_ex(nil, CName.ed25519, nil, x, 32)
        }
        guard let raw else { throw AuthFailure(.keyConfig, "Ed25519 key rejected: \(OpenSSLError.drain("import"))") }
        let key = try PKey(taking: raw)
        if d != nil, key.rawPublicKey != x { throw AuthFailure(.keyConfig, "Ed25519 \"x\" does not match the private key \"d\"") }
        return key
    }

    private static func fromData(_ type: String, _ builder: ParamBuilder, isPrivate: Bool) throws(AuthFailure) -> PKey {
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, CName.keyType(type), nil) else { throw AuthFailure(.cryptoFailure, "\(type) unavailable in OpenSSL") }
        defer { EVP_PKEY_CTX_free(ctx) }
        let selection = isPrivate ? cossl_pkey_keypair() : cossl_pkey_public_key()
        let pkey = try builder.withParams { params throws(AuthFailure) -> OpaquePointer in
            var pkey: OpaquePointer? = nil
            guard EVP_PKEY_fromdata_init(ctx) == 1, EVP_PKEY_fromdata(ctx, &pkey, selection, params) == 1, let pkey else {
                throw AuthFailure(.keyConfig, "\(type) key rejected: \(OpenSSLError.drain("EVP_PKEY_fromdata"))")
            }
            return pkey
        }
        let key = try PKey(taking: pkey)
        try key.check(isPrivate: isPrivate)
        return key
    }

    /// Refuses points off the curve and private keys that do not match their public part.
    func check(isPrivate: Bool) throws(AuthFailure) {
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, raw, nil) else { throw AuthFailure(.cryptoFailure, "key check unavailable") }
        defer { EVP_PKEY_CTX_free(ctx) }
        let ok = isPrivate ? EVP_PKEY_pairwise_check(ctx) : EVP_PKEY_public_check(ctx)
        if ok != 1 {
            throw AuthFailure(.keyConfig, isPrivate ? "private key does not match its public key" : "public key is not valid (\(OpenSSLError.drain("check")))")
        }
    }

    /// Reads the first key in PEM text: SPKI public keys, PKCS#8 or traditional (EC, RSA)
    /// private keys, PKCS#1 RSA public keys, or the public key of an X.509 certificate.
    static func pem(_ text: [UInt8]) throws(AuthFailure) -> PKey {
        let string = String(decoding: text, as: UTF8.self)
        guard string.contains("-----BEGIN ") else { throw AuthFailure(.keyConfig, "no PEM block (-----BEGIN ...-----) found") }
        if string.contains("ENCRYPTED") { throw AuthFailure(.keyConfig, "encrypted PEM keys are not supported; store the key unencrypted with 0600 permissions") }
        if string.contains("-----BEGIN CERTIFICATE-----") {
            let bio = text.withUnsafeBytes { cossl_bio_mem($0.baseAddress, Int32($0.count)) }
            defer { BIO_free(bio) }
            guard let cert = PEM_read_bio_X509(bio, nil, nil, nil) else { throw AuthFailure(.keyConfig, "certificate unreadable: \(OpenSSLError.drain("PEM_read_bio_X509"))") }
            defer { X509_free(cert) }
            guard let pkey = X509_get_pubkey(cert) else { throw AuthFailure(.keyConfig, "certificate has no usable public key") }
            return try PKey(taking: pkey)
        }
        for selection in [cossl_pkey_keypair(), cossl_pkey_public_key()] {
            var pkey: OpaquePointer? = nil
            guard let dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, CName.pem, nil, nil, selection, nil, nil) else { continue }
            defer { OSSL_DECODER_CTX_free(dctx) }
            let ok = text.withUnsafeBufferPointer { buffer -> Int32 in
                var data: UnsafePointer<UInt8>? = buffer.baseAddress
                var length = buffer.count
                return OSSL_DECODER_from_data(dctx, &data, &length)
            }
            if ok == 1, let pkey {
                OpenSSLError.clearQueue()
                let key = try PKey(taking: pkey)
                if key.hasPrivate { try key.check(isPrivate: true) }
                return key
            }
        }
        throw AuthFailure(.keyConfig, "PEM holds no readable key: \(OpenSSLError.drain("OSSL_DECODER_from_data"))")
    }

    /// A new key for `alg`: P-256/384/521, RSA 2048 (or `rsaBits`), Ed25519.
    static func generate(for alg: Algorithm, rsaBits: Int = 2048) throws(AuthFailure) -> PKey {
        let type: String
        switch alg.family {
        case .rsa, .rsaPSS: type = "RSA"
        case .ecdsa: type = "EC"
        case .eddsa: type = "ED25519"
        case .hmac: throw AuthFailure(.keyConfig, "HMAC keys are secrets, not key pairs")
        }
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, CName.keyType(type), nil), EVP_PKEY_keygen_init(ctx) == 1 else {
            throw AuthFailure(.cryptoFailure, "key generation unavailable: \(OpenSSLError.drain("keygen"))")
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        switch alg {
        case .ES256: _ = EVP_PKEY_CTX_set_group_name(ctx, CName.curve(.p256))
        case .ES384: _ = EVP_PKEY_CTX_set_group_name(ctx, CName.curve(.p384))
        case .ES512: _ = EVP_PKEY_CTX_set_group_name(ctx, CName.curve(.p521))
        case _ where type == "RSA": _ = EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, Int32(rsaBits))
        default: break
        }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_generate(ctx, &pkey) == 1, let pkey else {
            throw AuthFailure(.cryptoFailure, "key generation failed: \(OpenSSLError.drain("EVP_PKEY_generate"))")
        }
        return try PKey(taking: pkey)
    }
}

/// Random bytes from OpenSSL's CSPRNG.
public func secureRandomBytes(_ count: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    precondition(RAND_bytes(&bytes, Int32(count)) == 1, "OpenSSL RAND_bytes failed")
    return bytes
}
