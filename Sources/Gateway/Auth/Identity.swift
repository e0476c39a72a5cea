public import JOSE

/// Who a request is, once its token verified: the parts the gateway forwards and logs.
public struct Identity: Sendable {
    public let token: VerifiedToken
    public let userID: String?
    public let role: String?
    public let sessionID: String?
    public let tenantID: String

    init(token: VerifiedToken, tenantClaim: String) {
        self.token = token
        let claims = token.claims
        userID = claims.subject
        role = claims.json["role"]?.string
        sessionID = claims.json["session_id"]?.string
        tenantID = claims[path: tenantClaim]?.string ?? "default"
    }
}
