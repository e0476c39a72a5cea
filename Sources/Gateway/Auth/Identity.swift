public import JOSE

/// Who a request is, once its token verified: the parts the gateway forwards and logs.
public struct Identity: Sendable {
    public let token: VerifiedToken
    public let userID: String?
    public let role: String?
    public let sessionID: String?
    public let tenantID: String
    /// Why a forwarded claim cannot be forwarded as it is, else nil: a value of the wrong type
    /// (a header would carry something else than the token says, or nothing), or a control
    /// character (CR or LF would end the header line and start another).
    public let unforwardable: String?

    init(token: VerifiedToken, tenantClaim: String) {
        self.token = token
        let claims = token.claims
        var problem: String? = nil
        /// A claim forwarded as text: a string, or absent.
        func text(_ name: String, _ node: JSONNode?) -> String? {
            guard let node, !node.isNull else { return nil }
            if let value = node.string { return value }
            problem = problem ?? "claim \(name) is not a string"
            return nil
        }
        userID = claims.subject
        role = text("role", claims.json["role"])
        sessionID = text("session_id", claims.json["session_id"])
        // The tenant: a string, or an integer forwarded as its decimal text; absent is "default".
        if let node = claims[path: tenantClaim], !node.isNull {
            if let value = node.string {
                tenantID = value
            } else if let value = node.integer {
                tenantID = String(value)
            } else {
                tenantID = "default"
                problem = problem ?? "claim \(tenantClaim) is not a string or an integer"
            }
        } else {
            tenantID = "default"
        }
        let forwarded: [(String, String?)] = [("sub", userID), ("role", role), ("session_id", sessionID), (tenantClaim, tenantID)]
        if problem == nil, let claim = forwarded.first(where: { _, value in value?.utf8.contains { $0 < 0x20 || $0 == 0x7F } ?? false })?.0 {
            problem = "claim \(claim) holds a control character and cannot be forwarded as a header"
        }
        unforwardable = problem
    }
}
