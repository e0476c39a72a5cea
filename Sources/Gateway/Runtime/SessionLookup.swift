import JOSE

typealias AuthFailureReasonAndMessage = (AuthFailure.Reason, String)


/// What the runtime knows of a session named by a token's `session_id`.
public enum SessionStatus: Sendable, Equatable {
    case active(userID: String, tenantID: String, expiresAt: Double?)
    case revoked
    case notFound
}

/// The gateway's view of the runtime: look the token's session up. Backed by the runtime's
/// store (`RuntimeSessions`); a remote runtime client would be another conformance.
public protocol SessionLookup: Sendable {
    func status(of sessionID: String, for identity: Identity) async throws -> SessionStatus
}

extension SessionStatus {
    /// Checks the session against the identity: it must exist, be live, and belong to the
    /// token's user and tenant.
    func check(_ identity: Identity, now: Double) -> AuthFailureReasonAndMessage? {
        switch self {
        case .notFound: return (.sessionNotFound, "session \"\(identity.sessionID ?? "")\" does not exist in the runtime")
        case .revoked: return (.sessionRevoked, "session \"\(identity.sessionID ?? "")\" was revoked")
        case .active(let user, let tenant, let expiresAt):
            if user != identity.userID { return (.sessionNotFound, "session belongs to another user") }
            if tenant != identity.tenantID { return (.sessionNotFound, "session belongs to another tenant") }
            if let expiresAt, expiresAt <= now { return (.sessionRevoked, "session expired") }
            return nil
        }
    }
}
