private import COpenSSL

/// JWS carries ECDSA signatures as fixed-length r||s (RFC 7518 section 3.4); OpenSSL speaks DER.
enum ECDSASignature {
    /// r||s (each exactly half the input) to a DER ECDSA-Sig-Value.
    static func der(fromRaw raw: UnsafeRawBufferPointer) -> [UInt8]? {
        let half = raw.count / 2
        guard half > 0, let sig = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(sig) }
        let base = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
        guard let r = BN_bin2bn(base, Int32(half), nil) else { return nil }
        guard let s = BN_bin2bn(base + half, Int32(half), nil) else { BN_free(r); return nil }
        guard ECDSA_SIG_set0(sig, r, s) == 1 else { BN_free(r); BN_free(s); return nil }
        let length = i2d_ECDSA_SIG(sig, nil)
        guard length > 0 else { return nil }
        var out = [UInt8](repeating: 0, count: Int(length))
        let written = out.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var p: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return i2d_ECDSA_SIG(sig, &p)
        }
        return written == length ? out : nil
    }

    /// DER ECDSA-Sig-Value to r||s, each left-padded to `coordinateSize`.
    static func raw(fromDER der: [UInt8], coordinateSize: Int) -> [UInt8]? {
        let sig: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var p: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &p, buffer.count)
        }
        guard let sig else { return nil }
        defer { ECDSA_SIG_free(sig) }
        var out = [UInt8](repeating: 0, count: 2 * coordinateSize)
        let ok = out.withUnsafeMutableBufferPointer { buffer -> Bool in
            BN_bn2binpad(ECDSA_SIG_get0_r(sig), buffer.baseAddress, Int32(coordinateSize)) == coordinateSize
                && BN_bn2binpad(ECDSA_SIG_get0_s(sig), buffer.baseAddress! + coordinateSize, Int32(coordinateSize)) == coordinateSize
        }
        return ok ? out : nil
    }
}
