/// A JWS signature algorithm this gateway verifies and signs (RFC 7518, RFC 8037).
/// `none` is not one of them and never will be.
public enum Algorithm: String, Sendable, CaseIterable, Hashable {
    case HS256, HS384, HS512
    case RS256, RS384, RS512
    case PS256, PS384, PS512
    case ES256, ES384, ES512
    case EdDSA

    /// The family of key an algorithm needs.
    public enum Family: Sendable { case hmac, rsa, rsaPSS, ecdsa, eddsa }

    public var family: Family {
        switch self {
        case .HS256, .HS384, .HS512: .hmac
        case .RS256, .RS384, .RS512: .rsa
        case .PS256, .PS384, .PS512: .rsaPSS
        case .ES256, .ES384, .ES512: .ecdsa
        case .EdDSA: .eddsa
        }
    }

    /// The digest name OpenSSL knows, or nil for EdDSA (which hashes internally).
    public var digestName: String? {
        switch self {
        case .HS256, .RS256, .PS256, .ES256: "SHA256"
        case .HS384, .RS384, .PS384, .ES384: "SHA384"
        case .HS512, .RS512, .PS512, .ES512: "SHA512"
        case .EdDSA: nil
        }
    }

    /// Digest output size in bytes (also the minimum HMAC key size, RFC 7518 section 3.2).
    public var digestSize: Int {
        switch self {
        case .HS256, .RS256, .PS256, .ES256: 32
        case .HS384, .RS384, .PS384, .ES384: 48
        case .HS512, .RS512, .PS512, .ES512: 64
        case .EdDSA: 64
        }
    }

    /// Parses a header or JWK `alg`, with the reason when it is not accepted.
    public static func parse(_ name: String) throws(AuthFailure) -> Algorithm {
        if let alg = Algorithm(rawValue: name) { return alg }
        if name.lowercased() == "none" {
            throw AuthFailure(.unsupportedAlg, "alg \"\(name)\" (unsigned tokens) is never accepted")
        }
        throw AuthFailure(.unsupportedAlg, "alg \"\(name)\" is not supported (accepted: \(Algorithm.allCases.map(\.rawValue).joined(separator: ", ")))")
    }
}
