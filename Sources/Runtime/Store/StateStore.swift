/// The runtime's state surface: users, sessions and refresh tokens behind one protocol, with
/// an embedded SQLite store and a PostgreSQL store for several gateway instances. Every method
/// is one transaction.
public protocol StateStore: Sendable {
    /// Creates tables if they are missing.
    func migrate() async throws

    /// Inserts a user; false when the email is taken.
    func insertUser(_ user: User, passwordHash: String) async throws -> Bool
    /// The user and password hash for an email (case-insensitive).
    func user(email: String) async throws -> (user: User, passwordHash: String)?
    func user(id: String) async throws -> User?
    func users() async throws -> [User]
    /// Sets `disabled`; disabling also revokes the user's sessions. False when no such user.
    func setDisabled(email: String, _ disabled: Bool, at: Double) async throws -> Bool

    /// Stores a validated session and, if given, its first refresh token, in one transaction.
    /// Throws `duplicateSession` for a session id used before. When the user already holds
    /// `limit.maximum` live sessions, `refuse` throws `sessionLimit` and `evict` revokes the
    /// least recently used (smallest `lastSeenAt`) with reason `session_limit`, refresh tokens
    /// and all, in the same transaction; their ids are returned (to publish as revoked).
    /// Creations for one user are serialized, and the new session is stored as the user's most
    /// recent (`lastSeenAt` just after their latest), so the last to commit are the last evicted.
    @discardableResult
    func createSession(_ session: Session, refreshHash: String?, limit: SessionLimit, at: Double) async throws -> [String]
    func session(id: String) async throws -> Session?
    /// Live and revoked sessions of a user (or of a whole tenant when `userID` is nil).
    func sessions(tenantID: String, userID: String?) async throws -> [Session]
    /// Revokes sessions (and their refresh tokens); returns those that were live.
    func revoke(sessionIDs: [String], reason: String, at: Double) async throws -> [String]
    /// All live session ids of a user.
    func liveSessionIDs(userID: String, at: Double) async throws -> [String]

    /// Rotates a refresh token: the presented one is spent and `newHash` becomes current.
    func rotateRefresh(hash: String, newHash: String, at: Double) async throws -> RefreshRotation
}

/// The outcome of presenting a refresh token.
public enum RefreshRotation: Sendable, Equatable {
    /// Spent and replaced; the session continues.
    case rotated(Session)
    /// Already spent: reuse. The whole session has been revoked.
    case reused(Session)
    /// The session is gone (logged out, expired, revoked).
    case sessionEnded
    case unknown
}
