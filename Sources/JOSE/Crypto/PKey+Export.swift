private import COpenSSL

extension PKey {
    /// Ed25519 raw public key bytes.
    var rawPublicKey: [UInt8] {
        var length = 0
        guard EVP_PKEY_get_raw_public_key(raw, nil, &length) == 1 else { return [] }
        var out = [UInt8](repeating: 0, count: length)
        _ = EVP_PKEY_get_raw_public_key(raw, &out, &length)
        return out
    }

    private func bignum(_ name: String, padTo: Int? = nil) -> [UInt8] {
        var bn: OpaquePointer? = nil
        guard EVP_PKEY_get_bn_param(raw, name, &bn) == 1, let bn else { return [] }
        defer { BN_free(bn) }
        let size = padTo ?? Int((BN_num_bits(bn) + 7) / 8)
        var out = [UInt8](repeating: 0, count: size)
        _ = BN_bn2binpad(bn, &out, Int32(size))
        return out
    }

    /// The public JWK members (RFC 7518 section 6, RFC 8037), base64url-encoded.
    var publicJWKMembers: [(String, JSONValue)] {
        switch kind {
        case .rsa:
            return [("kty", .string("RSA")),
                    ("n", .string(Base64URL.encode(bignum(OSSL_PKEY_PARAM_RSA_N)))),
                    ("e", .string(Base64URL.encode(bignum(OSSL_PKEY_PARAM_RSA_E))))]
        case .ec(let curve):
            return [("kty", .string("EC")), ("crv", .string(curve.rawValue)),
                    ("x", .string(Base64URL.encode(bignum(OSSL_PKEY_PARAM_EC_PUB_X, padTo: curve.coordinateSize)))),
                    ("y", .string(Base64URL.encode(bignum(OSSL_PKEY_PARAM_EC_PUB_Y, padTo: curve.coordinateSize))))]
        case .ed25519:
            return [("kty", .string("OKP")), ("crv", .string("Ed25519")), ("x", .string(Base64URL.encode(rawPublicKey)))]
        }
    }

    /// PEM text: PKCS#8 for a private key, SPKI for the public key.
    func pem(includingPrivate: Bool) throws(OpenSSLError) -> String {
        let bio = try ossl(BIO_new(BIO_s_mem()), "BIO_new")
        defer { BIO_free(bio) }
        if includingPrivate {
            try ossl(PEM_write_bio_PrivateKey(bio, raw, nil, nil, 0, nil, nil), "PEM_write_bio_PrivateKey")
        } else {
            try ossl(PEM_write_bio_PUBKEY(bio, raw), "PEM_write_bio_PUBKEY")
        }
        var pointer: UnsafeMutablePointer<CChar>? = nil
        let length = cossl_bio_get_mem(bio, &pointer)
        guard let pointer, length > 0 else { throw OpenSSLError(operation: "PEM export", details: []) }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }
}
