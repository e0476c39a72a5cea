import JOSE
import Runtime

/// Session lookups against the runtime's store. With `[runtime] unknown_sessions = "create"`,
/// a valid token (from a trusted external project) whose session is unknown gets one, through
/// the same intent validation as any other session.
final class RuntimeSessions: SessionLookup {
    let store: any StateStore
    let createUnknown: Bool
    let validator: IntentValidator
    let contract: String
    let sessionTTL: Double
    let cache: SessionCache
    let events: SessionEvents

    init(store: any StateStore, createUnknown: Bool, validator: IntentValidator, contract: String, sessionTTL: Double, cache: SessionCache,
         events: SessionEvents) {
        self.store = store
        self.cache = cache
        self.events = events
        self.createUnknown = createUnknown
        self.validator = validator
        self.contract = contract
        self.sessionTTL = sessionTTL
    }

    /// How long a lookup may take before the request is answered 503.
    static let timeout = 3.0

    func status(of sessionID: String, for identity: Identity) async throws -> SessionStatus {
        try await withDeadline(seconds: Self.timeout) { try await self.lookUp(sessionID, for: identity) }
    }

    private func lookUp(_ sessionID: String, for identity: Identity) async throws -> SessionStatus {
        let now = Timestamp.now()
        if let session = try await cache.session(id: sessionID, store: store, now: now) {
            if session.revokedAt != nil { return .revoked }
            return .active(userID: session.userID, tenantID: session.tenantID, expiresAt: session.expiresAt)
        }
        guard createUnknown, let userID = identity.userID else { return .notFound }
        let ttl = min(sessionTTL, max(60, (identity.token.claims.expiration ?? now + sessionTTL) - now))
        let intent = SessionIntent(id: sessionID, tenantID: identity.tenantID, userID: userID, contract: contract, ttl: ttl)
        do {
            try validator.validate(intent, userID: userID, tenantID: identity.tenantID)
            let ended = try await store.createSession(Session(id: intent.id, tenantID: intent.tenantID, userID: intent.userID, contract: intent.contract,
                                                              createdAt: now, lastSeenAt: now, expiresAt: now + ttl),
                                                      refreshHash: nil, limit: validator.sessionLimit, at: now)
            for id in ended { events.publish(.revoked(sessionID: id, reason: SessionLimit.revocationReason)) }
        } catch let error as RuntimeError where error.code == .duplicateSession {
            // Another request created it first; read it back.
            return try await lookUp(sessionID, for: identity)
        } catch is RuntimeError {
            return .notFound
        }
        return .active(userID: userID, tenantID: identity.tenantID, expiresAt: now + ttl)
    }
}
