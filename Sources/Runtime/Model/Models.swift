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

/// What the runtime refuses, with a code clients can act on.
public struct RuntimeError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case duplicateSession = "duplicate_session"
        case sessionLimit = "session_limit"
        case invalidIntent = "invalid_intent"
        case notFound = "not_found"
        case storage = "storage"
    }

    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) { self.code = code; self.message = message }
    public var description: String { "\(code.rawValue): \(message)" }
}

enum IDs {
    /// A lower-case UUID v4.
    static func uuid() -> String { UUID().uuidString.lowercased() }

    static func isUUID(_ s: String) -> Bool {
        s.count == 36 && UUID(uuidString: s) != nil
    }
}
