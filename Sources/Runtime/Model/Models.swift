import Foundation

/// A user of the identity side: who can log in, and what their tokens will say.
public struct User: Sendable, Equatable {
    public let id: String
    public let email: String
    public var tenantID: String
    public var role: String
    public var disabled: Bool
    /// JSON objects, as text.
    public var appMetadata: String
    public var userMetadata: String
    public let createdAt: Double
    public var updatedAt: Double
    public var lastSignInAt: Double?

    public init(id: String, email: String, tenantID: String = "default", role: String = "authenticated", disabled: Bool = false,
                appMetadata: String = "{}", userMetadata: String = "{}", createdAt: Double, updatedAt: Double, lastSignInAt: Double? = nil) {
        self.id = id
        self.email = email
        self.tenantID = tenantID
        self.role = role
        self.disabled = disabled
        self.appMetadata = appMetadata
        self.userMetadata = userMetadata
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.lastSignInAt = lastSignInAt
    }
}

/// A runtime session: what a WebSocket or a `session = "required"` route must find.
public struct Session: Sendable, Equatable {
    public let id: String
    public let tenantID: String
    public let userID: String
    /// The execution contract the session runs under (`[runtime] contracts`).
    public let contract: String
    public let createdAt: Double
    public var lastSeenAt: Double
    public let expiresAt: Double
    /// A JSON object, as text.
    public let metadata: String
    public var revokedAt: Double?
    public var revokedReason: String?

    public init(id: String, tenantID: String, userID: String, contract: String, createdAt: Double, lastSeenAt: Double, expiresAt: Double,
                metadata: String = "{}", revokedAt: Double? = nil, revokedReason: String? = nil) {
        self.id = id
        self.tenantID = tenantID
        self.userID = userID
        self.contract = contract
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.expiresAt = expiresAt
        self.metadata = metadata
        self.revokedAt = revokedAt
        self.revokedReason = revokedReason
    }

    public func isLive(at now: Double) -> Bool { revokedAt == nil && expiresAt > now }

    /// A new session's last activity as stored: its own, or just after the user's latest when
    /// that is not earlier (a sign-in that waited while another committed), so the session
    /// created last is the user's most recently used.
    static func lastSeen(_ own: Double, after latest: Double?) -> Double {
        guard let latest, latest >= own, latest.nextUp.isFinite else { return own }
        return latest.nextUp
    }
}

/// What the runtime refuses, with a code clients can act on and a human message: the only
/// error Runtime throws. The state surface and intent validation use the session codes;
/// `AuthService` answers in GoTrue's error codes. Each code is spelled as it goes on the wire
/// (the session API's `error`, `/auth/v1`'s `code`/`error_code`); the HTTP status is the
/// gateway's to choose (`RuntimeError+HTTP.swift`).
public struct RuntimeError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        // Sessions: the state surface and intent validation.

        /// A session id that is live, or was used before.
        case duplicateSession = "duplicate_session"
        /// The user holds the most live sessions allowed, and the limit refuses new ones.
        case sessionLimit = "session_limit"
        /// A session intent that breaks the runtime's rules (user, tenant, id, contract, ttl).
        case invalidIntent = "invalid_intent"
        case notFound = "not_found"
        /// The store itself: unreachable, misconfigured (a bad PostgreSQL URL).
        case storage = "storage"

        // Identity (`AuthService`), in GoTrue's vocabulary.

        case validationFailed = "validation_failed"
        /// A password being set that is too short or too long (`weakPasswordReasons` says which).
        case weakPassword = "weak_password"
        case userAlreadyExists = "user_already_exists"
        /// Wrong password, unknown email or disabled user: one answer for all three.
        case invalidCredentials = "invalid_credentials"
        /// A sign-in limit (per IP or per email) is spent; `retryAfter` says when to come back.
        case overRequestRateLimit = "over_request_rate_limit"
        /// The session limit refused the session a sign-in would create.
        case overSessionLimit = "over_session_limit"
        case refreshTokenNotFound = "refresh_token_not_found"
        case refreshTokenAlreadyUsed = "refresh_token_already_used"
        /// The refresh token's session ended (logout, expiry, revocation).
        case sessionExpired = "session_expired"
        case userNotFound = "user_not_found"
        /// The store failed while answering; its own error is in `detail`.
        case runtimeUnavailable = "runtime_unavailable"
        case unexpectedFailure = "unexpected_failure"
    }

    public let code: Code
    public let message: String
    /// What went wrong inside, for the gateway's log only: never sent to the client.
    public let detail: String?
    /// Whole seconds before trying again is worth it (a rate limit's `Retry-After`).
    public let retryAfter: Int?
    /// GoTrue's `weak_password.reasons` ("length", ...) for a refused password.
    public let weakPasswordReasons: [String]?

    public init(_ code: Code, _ message: String, detail: String? = nil, retryAfter: Int? = nil, weakPasswordReasons: [String]? = nil) {
        self.code = code
        self.message = message
        self.detail = detail
        self.retryAfter = retryAfter
        self.weakPasswordReasons = weakPasswordReasons
    }

    public var description: String { "\(code.rawValue): \(message)" + (detail.map { " (\($0))" } ?? "") }

    /// The store failed under an identity call: `runtime_unavailable` (the client may try
    /// again, as Supabase clients do for 5xx gateway answers), with the store's own error in
    /// the log rather than in the answer.
    public static func storeFailed(_ error: any Error) -> RuntimeError {
        RuntimeError(.runtimeUnavailable, "The session store failed; try again later", detail: "storage: \(String(reflecting: error))")
    }
}

enum IDs {
    /// A lower-case UUID v4.
    static func uuid() -> String { UUID().uuidString.lowercased() }

    static func isUUID(_ s: String) -> Bool {
        s.count == 36 && UUID(uuidString: s) != nil
    }
}
