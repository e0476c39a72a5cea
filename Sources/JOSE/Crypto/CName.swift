import Foundation

/// C strings that live for the whole process. Some libcrypto calls keep the `const char *`
/// they are given (OSSL_DECODER_CTX_new_for_pkey keeps the input type, EVP_PKEY_CTX keeps the
/// key type name); a Swift string's temporary pointer would dangle. Pass these instead.
enum CName {
    nonisolated(unsafe) static let rsa = UnsafePointer(strdup("RSA")!)
    nonisolated(unsafe) static let ec = UnsafePointer(strdup("EC")!)
    nonisolated(unsafe) static let ed25519 = UnsafePointer(strdup("ED25519")!)
    nonisolated(unsafe) static let pem = UnsafePointer(strdup("PEM")!)
    nonisolated(unsafe) static let sha256 = UnsafePointer(strdup("SHA256")!)
    nonisolated(unsafe) static let sha384 = UnsafePointer(strdup("SHA384")!)
    nonisolated(unsafe) static let sha512 = UnsafePointer(strdup("SHA512")!)
    nonisolated(unsafe) static let p256 = UnsafePointer(strdup("prime256v1")!)
    nonisolated(unsafe) static let p384 = UnsafePointer(strdup("secp384r1")!)
    nonisolated(unsafe) static let p521 = UnsafePointer(strdup("secp521r1")!)

    static func keyType(_ name: String) -> UnsafePointer<CChar> {
        switch name { case "RSA": rsa; case "EC": ec; default: ed25519 }
    }

    static func digest(_ alg: Algorithm) -> UnsafePointer<CChar>? {
        switch alg.digestName { case "SHA256": sha256; case "SHA384": sha384; case "SHA512": sha512; default: nil }
    }

    static func curve(_ curve: PKey.Curve) -> UnsafePointer<CChar> {
        switch curve { case .p256: p256; case .p384: p384; case .p521: p521 }
    }
}
