/// A token whose signature checked out with a key from the ring and whose claims passed the
/// policy at the time of verification.
///
/// A class, so the verified-token cache hands out one reference instead of copying fields.
public final class VerifiedToken: Sendable {
    public let header: JWSHeader
    public let claims: Claims
    /// The key that verified the signature.
    public let key: JWTKey
    public var algorithm: Algorithm { header.algorithm }

    init(header: JWSHeader, claims: Claims, key: JWTKey) {
        self.header = header
        self.claims = claims
        self.key = key
    }
}

/// A compact JWS whose signature checked out; the payload is not interpreted (it need not be
/// JSON). This is what the JWS layer of RFC 7515 guarantees, and all it guarantees.
public struct VerifiedSignature: Sendable {
    public let header: JWSHeader
    public let payload: [UInt8]
    public let key: JWTKey
}
