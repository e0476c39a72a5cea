/// What a token's registered claims must satisfy: time window with leeway, issuer, audience
/// and claims that must be present.
public struct ClaimPolicy: Sendable {
    /// `exp` must be present (true by default).
    public var requireExpiration: Bool
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    public var leeway: Double
    /// Accepted issuers; empty accepts any (and does not require `iss`).
    public var issuers: [String]
    /// Accepted audiences; a token passes when any of its `aud` values is one. Empty skips.
    public var audiences: [String]
    /// Claims (dotted paths) that must be present.
    public var requiredClaims: [String]

    public init(requireExpiration: Bool = true, leeway: Double = 60, issuers: [String] = [],
                audiences: [String] = [], requiredClaims: [String] = []) {
        self.requireExpiration = requireExpiration
        self.leeway = leeway
        self.issuers = issuers
        self.audiences = audiences
        self.requiredClaims = requiredClaims
    }

    /// Checks `claims` at time `now` (seconds since 1970), with the first reason to refuse.
    public func validate(_ claims: Claims, now: Double) throws(AuthFailure) {
        if let exp = claims.expiration {
            if now >= exp + leeway { throw Self.expiry(exp: exp, now: now) }
        } else if requireExpiration {
            throw AuthFailure(.missingClaim, "token has no \"exp\"")
        }
        if let nbf = claims.notBefore, now + leeway < nbf {
            throw AuthFailure(.notYetValid, "token is not valid for another \(Self.ago(nbf - now)) (nbf \(Self.utc(nbf)))")
        }
        if let iat = claims.issuedAt, now + leeway < iat {
            throw AuthFailure(.notYetValid, "token was issued in the future (iat \(Self.utc(iat)), \(Self.ago(iat - now)) ahead)")
        }
        if !issuers.isEmpty {
            guard let iss = claims.issuer else { throw AuthFailure(.missingClaim, "token has no \"iss\"") }
            guard issuers.contains(iss) else {
                throw AuthFailure(.wrongIssuer, "issuer \"\(iss)\" is not accepted (expected \(issuers.map { "\"\($0)\"" }.joined(separator: " or ")))")
            }
        }
        if !audiences.isEmpty {
            guard claims.json["aud"] != nil else { throw AuthFailure(.missingClaim, "token has no \"aud\"") }
            guard claims.audience.contains(where: audiences.contains) else {
                throw AuthFailure(.wrongAudience, "audience \(claims.audience) does not include \(audiences.map { "\"\($0)\"" }.joined(separator: " or "))")
            }
        }
        for path in requiredClaims where claims[path: path] == nil {
            throw AuthFailure(.missingClaim, "token has no \"\(path)\"")
        }
    }

    /// The refusal of a token whose `exp` has passed.
    static func expiry(exp: Double, now: Double) -> AuthFailure {
        AuthFailure(.expired, "token expired \(ago(now - exp)) ago (exp \(utc(exp)))")
    }

    /// "3m 12s", "2h 5m", "4d 1h".
    static func ago(_ seconds: Double) -> String { Duration.describe(seconds) }
    static func utc(_ seconds: Double) -> String { Timestamp.utc(seconds) }
}
