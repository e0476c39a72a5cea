public import JOSE

/// Who a request is, once its token verified: the parts the gateway forwards and logs.
public struct Identity: Sendable {
    public let token: VerifiedToken
    public let userID: String?
    public let role: String?
    public let sessionID: String?
    public let tenantID: String
    /// The first forwarded claim whose value a header cannot carry as it is (a control
    /// character: CR or LF would end the header line and start another), else nil.
    public let unforwardableClaim: String?

    init(token: VerifiedToken, tenantClaim: String) {
        self.token = token
        let claims = token.claims
        userID = claims.subject
        role = claims.json["role"]?.string
        sessionID = claims.json["session_id"]?.string
        tenantID = claims[path: tenantClaim]?.string ?? "default"
        let forwarded: [(String, String?)] = [("sub", userID), ("role", role), ("session_id", sessionID), (tenantClaim, tenantID)]
        unforwardableClaim = forwarded.first { _, value in
            value?.utf8.contains { $0 < 0x20 || $0 == 0x7F } ?? false
        }?.0
    }
}
