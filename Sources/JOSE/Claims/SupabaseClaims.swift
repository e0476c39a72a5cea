/// A typed view of the claims Supabase Auth puts in its access tokens: `sub`, `role`,
/// `session_id`, `aal`, `is_anonymous`, `email`, `phone`, `app_metadata`, `user_metadata`, `amr`.
///
/// The view reads; it does not require. Routes decide which of these they need.
public struct SupabaseClaims: Sendable {
    public let claims: Claims

    public var userID: String? { claims.subject }
    public var role: String? { claims.json["role"]?.string }
    public var sessionID: String? { claims.json["session_id"]?.string }
    public var assuranceLevel: String? { claims.json["aal"]?.string }
    public var isAnonymous: Bool { claims.json["is_anonymous"]?.bool ?? false }
    public var email: String? { claims.json["email"]?.string }
    public var phone: String? { claims.json["phone"]?.string }
    public var appMetadata: JSONNode? { claims.json["app_metadata"] }
    public var userMetadata: JSONNode? { claims.json["user_metadata"] }
    /// Authentication methods, e.g. `password`, `otp`.
    public var methods: [String] {
        claims.json["amr"]?.array?.compactMap { $0["method"]?.string ?? $0.string } ?? []
    }

    /// Checks the shape Supabase guarantees: string `sub`, `role`, `session_id`, `aal`
    /// (aal1/aal2) and boolean `is_anonymous` where present.
    public func validate() throws(AuthFailure) {
        for name in ["role", "session_id", "aal", "email", "phone"] {
            if let node = claims.json[name], node.string == nil {
                throw AuthFailure(.invalidClaim, "\"\(name)\" must be a string")
            }
        }
        if let aal = assuranceLevel, aal != "aal1", aal != "aal2" {
            throw AuthFailure(.invalidClaim, "\"aal\" must be aal1 or aal2, not \"\(aal)\"")
        }
        if let node = claims.json["is_anonymous"], node.bool == nil {
            throw AuthFailure(.invalidClaim, "\"is_anonymous\" must be a boolean")
        }
        for name in ["app_metadata", "user_metadata"] {
            if let node = claims.json[name], node.kind != .object {
                throw AuthFailure(.invalidClaim, "\"\(name)\" must be an object")
            }
        }
    }
}
