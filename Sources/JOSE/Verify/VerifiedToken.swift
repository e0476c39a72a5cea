import Synchronization

/// A token whose signature checked out with a key from the ring and whose claims passed the
/// policy at the time of verification.
///
/// A class, so the verified-token cache hands out one reference instead of copying fields.
public final class VerifiedToken: Sendable {
    public let header: JWSHeader
    public let claims: Claims
    /// The key that verified the signature.
    public let key: JWTKey
    /// The token's payload part as sent (base64url of exactly the JSON that was signed), for
    /// forwarding the verified claims without serializing them again.
    public let payloadSegment: String
    public var algorithm: Algorithm { header.algorithm }

    /// What a caller derived from this token, kept with it so a cached token is read once.
    private let memo = Mutex<(key: String, value: any Sendable)?>(nil)

    init(header: JWSHeader, claims: Claims, key: JWTKey, payloadSegment: String) {
        self.header = header
        self.claims = claims
        self.key = key
        self.payloadSegment = payloadSegment
    }

    /// `make()` the first time (per `key`, which names how the value was derived), the kept
    /// value afterwards. Claims never change, so neither does a value derived from them alone.
    public func memoized<T: Sendable>(key: String, _ make: () -> T) -> T {
        if let kept = memo.withLock({ $0 }), kept.key == key, let value = kept.value as? T { return value }
        let value = make()
        memo.withLock { $0 = (key, value) }
        return value
    }
}

/// A compact JWS whose signature checked out; the payload is not interpreted (it need not be
/// JSON). This is what the JWS layer of RFC 7515 guarantees, and all it guarantees.
public struct VerifiedSignature: Sendable {
    public let header: JWSHeader
    public let payload: [UInt8]
    public let key: JWTKey
    /// The payload part as it appeared in the token (base64url).
    public let payloadSegment: String
}
