import Foundation
import Synchronization
public import JOSE

/// Identity: sign-up, password login that creates the runtime session in the same step,
/// refresh-token rotation with reuse detection, logout. Answers in Supabase Auth's vocabulary:
/// every refusal is a ``RuntimeError`` with GoTrue's error code.
public final class AuthService: Sendable {
    public struct Settings: Sendable {
        public var issuer: String
        public var audience = "authenticated"
        public var accessTokenTTL: Double = 3600
        public var sessionTTL: Double = 7 * 86400
        public var passwordCost = PasswordHash.Cost.standard
        public var minimumPasswordLength = 8
        public var validator = IntentValidator()
        public var defaultContract = "default"
        /// Token buckets of this size, refilled at this many per `loginWindow`: every sign-up
        /// and sign-in spends one of its IP's, a failed sign-in one of its email's too.
        public var loginLimitPerIP = 30
        public var loginLimitPerEmail = 10
        public var loginWindow: Double = 300
        public init(issuer: String) { self.issuer = issuer }
    }

    /// What a successful login or refresh hands back.
    public struct Grant: Sendable {
        public let accessToken: String
        public let refreshToken: String
        public let expiresIn: Int
        public let expiresAt: Int
        public let user: User
        public let session: Session
    }

    public let store: any StateStore
    public let keys: KeyStore
    public let settings: Settings
    public let events: SessionEvents
    private let limits: LoginLimits
    private let decoy = Mutex<String?>(nil)

    public init(store: any StateStore, keys: KeyStore, settings: Settings, events: SessionEvents) {
        self.store = store
        self.keys = keys
        self.settings = settings
        self.events = events
        limits = LoginLimits(perIP: settings.loginLimitPerIP, perEmail: settings.loginLimitPerEmail, window: settings.loginWindow)
    }

    /// bcrypt's bound, which GoTrue keeps: a longer password is refused wherever one is set.
    public static let maximumPasswordBytes = 72

    /// Refuses a password being set (sign-up, `gateway users add`) that is too long (in UTF-8
    /// bytes, checked first: no characters are counted in a megabyte) or too short (in characters): `weak_password`.
    public static func checkNewPassword(_ password: String, minimumLength: Int) throws(RuntimeError) {
        if password.utf8.count > maximumPasswordBytes {
            throw RuntimeError(.weakPassword, "Password cannot be longer than \(maximumPasswordBytes) characters", weakPasswordReasons: ["length"])
        }
        if password.count < minimumLength {
            throw RuntimeError(.weakPassword, "Password should be at least \(minimumLength) characters.", weakPasswordReasons: ["length"])
        }
    }

    // MARK: Sign-up and login

    public func signUp(email rawEmail: String, password: String, userMetadata: String = "{}", ip: String) async throws(RuntimeError) -> Grant {
        let email = rawEmail.trimmingCharacters(in: .whitespaces).lowercased()
        guard Self.looksLikeEmail(email) else { throw RuntimeError(.validationFailed, "Unable to validate email address: invalid format") }
        try Self.checkNewPassword(password, minimumLength: settings.minimumPasswordLength)
        try limits.admit(ip: ip)
        let now = Timestamp.now()
        let hash: String
        do { hash = try await Self.offload { try PasswordHash.hash(password, cost: self.settings.passwordCost) } } catch {
            throw RuntimeError(.unexpectedFailure, "password hashing failed")
        }
        let user = User(id: IDs.uuid(), email: email, appMetadata: #"{"provider":"email","providers":["email"]}"#, userMetadata: userMetadata,
                        createdAt: now, updatedAt: now)
        let inserted: Bool
        do { inserted = try await store.insertUser(user, passwordHash: hash) } catch { throw .storeFailed(error) }
        guard inserted else { throw RuntimeError(.userAlreadyExists, "User already registered") }
        return try await startSession(for: user, now: now)
    }

    public func signIn(email rawEmail: String, password: String, ip: String) async throws(RuntimeError) -> Grant {
        let email = rawEmail.trimmingCharacters(in: .whitespaces).lowercased()
        try limits.admit(ip: ip)
        let verified = try await limits.attempt(email: email) { () async throws(RuntimeError) -> User? in
            let found: (user: User, passwordHash: String)?
            do { found = try await store.user(email: email) } catch { throw .storeFailed(error) }
            // Hash even for an unknown email so both answers take the same time.
            let stored = found?.passwordHash
            let ok = await Self.offload { PasswordHash.verify(password, against: stored ?? self.decoyHash()) }
            guard let user = found?.user, ok, !user.disabled else { return nil }
            return user
        }
        guard let user = verified else { throw RuntimeError(.invalidCredentials, "Invalid login credentials") }
        return try await startSession(for: user, now: Timestamp.now())
    }

    /// One transaction creates the runtime session and its first refresh token; the access
    /// token's `session_id` is that session.
    private func startSession(for user: User, now: Double) async throws(RuntimeError) -> Grant {
        let intent = SessionIntent(id: IDs.uuid(), tenantID: user.tenantID, userID: user.id, contract: settings.defaultContract, ttl: settings.sessionTTL)
        do { try settings.validator.validate(intent, userID: user.id, tenantID: user.tenantID) } catch {
            throw RuntimeError(.unexpectedFailure, error.message)
        }
        let session = Session(id: intent.id, tenantID: intent.tenantID, userID: intent.userID, contract: intent.contract,
                              createdAt: now, lastSeenAt: now, expiresAt: now + intent.ttl)
        let refresh = Self.newRefreshToken()
        do {
            // Under `evict`, the user's least recently used sessions end to make room.
            let ended = try await store.createSession(session, refreshHash: SHA256.hex(refresh), limit: settings.validator.sessionLimit, at: now)
            for id in ended { events.publish(.revoked(sessionID: id, reason: SessionLimit.revocationReason)) }
        } catch let error as RuntimeError where error.code == .sessionLimit {
            throw RuntimeError(.overSessionLimit, error.message)
        } catch {
            throw .storeFailed(error)
        }
        return try grant(user: user, session: session, refresh: refresh, now: now)
    }

    // MARK: Refresh and logout

    public func refresh(_ token: String) async throws(RuntimeError) -> Grant {
        guard token.count >= 16, token.count <= 256 else { throw RuntimeError(.validationFailed, "refresh token is malformed") }
        let now = Timestamp.now()
        let next = Self.newRefreshToken()
        let outcome: RefreshRotation
        do { outcome = try await store.rotateRefresh(hash: SHA256.hex(token), newHash: SHA256.hex(next), at: now) } catch {
            throw .storeFailed(error)
        }
        switch outcome {
        case .unknown: throw RuntimeError(.refreshTokenNotFound, "Invalid Refresh Token: Refresh Token Not Found")
        case .sessionEnded: throw RuntimeError(.sessionExpired, "Session has ended")
        case .reused(let session):
            events.publish(.revoked(sessionID: session.id, reason: "refresh_token_reuse"))
            throw RuntimeError(.refreshTokenAlreadyUsed, "Invalid Refresh Token: Already Used")
        case .rotated(let session):
            let user: User?
            do { user = try await store.user(id: session.userID) } catch { throw .storeFailed(error) }
            guard let user, !user.disabled else { throw RuntimeError(.userNotFound, "User from refresh token not found") }
            return try grant(user: user, session: session, refresh: next, now: now)
        }
    }

    /// Ends sessions: `global` all of the user's, `local` the token's, `others` all but it.
    public func logout(userID: String, sessionID: String?, scope: String) async throws(RuntimeError) {
        guard ["global", "local", "others"].contains(scope) else {
            throw RuntimeError(.validationFailed, "scope must be global, local or others")
        }
        let now = Timestamp.now()
        do {
            let ids: [String]
            switch (scope, sessionID) {
            case ("local", let id?): ids = [id]
            case ("others", let id?): ids = try await store.liveSessionIDs(userID: userID, at: now).filter { $0 != id }
            default: ids = try await store.liveSessionIDs(userID: userID, at: now)
            }
            let revoked = try await store.revoke(sessionIDs: ids, reason: "logout", at: now)
            for id in revoked { events.publish(.revoked(sessionID: id, reason: "logout")) }
        } catch {
            // Whatever the store threw, its own RuntimeError included, is the store failing here.
            throw .storeFailed(error)
        }
    }

    // MARK: Tokens

    private func grant(user: User, session: Session, refresh: String, now: Double) throws(RuntimeError) -> Grant {
        let issued = Int64(now)
        let exp = issued + Int64(settings.accessTokenTTL)
        let app = (try? JSONValue.parse(user.appMetadata)) ?? .object([])
        let userMeta = (try? JSONValue.parse(user.userMetadata)) ?? .object([])
        let claims = JSONValue.object([
            ("iss", .string(settings.issuer)), ("sub", .string(user.id)), ("aud", .string(settings.audience)),
            ("exp", .int(exp)), ("iat", .int(issued)), ("email", .string(user.email)), ("phone", .string("")),
            ("app_metadata", app), ("user_metadata", userMeta), ("role", .string(user.role)), ("aal", .string("aal1")),
            ("amr", .array([.object([("method", .string("password")), ("timestamp", .int(issued))])])),
            ("session_id", .string(session.id)), ("is_anonymous", .bool(false)),
        ])
        let token: String
        do {
            // Supabase clients accept ES256, RS256 and HS256 access tokens: the newest key for the
            // first of those the ring can sign, else the newest key at all.
            let ring = keys.ring
            let preferred = (try? ring.signingKey(algorithm: .ES256)) ?? (try? ring.signingKey(algorithm: .RS256)) ?? (try? ring.signingKey(algorithm: .HS256))
            let signer = try preferred ?? ring.signingKey()
            token = try TokenSigner.sign(claims: claims, key: signer.key, algorithm: signer.algorithm)
        } catch {
            throw RuntimeError(.unexpectedFailure, "The access token could not be signed", detail: "cannot sign: \(error)")
        }
        return Grant(accessToken: token, refreshToken: refresh, expiresIn: Int(settings.accessTokenTTL), expiresAt: Int(exp), user: user, session: session)
    }

    static func newRefreshToken() -> String { Base64URL.encode(secureRandomBytes(32)) }

    /// A hash of nothing anyone knows, at the configured cost, so an unknown email costs one
    /// scrypt like a known one. (It was made at the standard cost whatever password_cost said:
    /// with password_cost = 10 an unknown email took 32 MiB and 32 times the work of a known
    /// one, which told them apart and made unknown emails the costliest sign-ins to send.)
    /// Made on first use, off the event loop (sign-in calls it in `offload`).
    func decoyHash() -> String {
        decoy.withLock { made in
            if let made { return made }
            let hash = (try? PasswordHash.hash(Base64URL.encode(secureRandomBytes(16)), cost: settings.passwordCost)) ?? ""
            made = hash
            return hash
        }
    }

    static func looksLikeEmail(_ s: String) -> Bool {
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && !parts[1].hasPrefix(".") && !parts[1].hasSuffix(".")
            && s.count <= 254 && !s.contains(" ")
    }

    /// Runs CPU-heavy work (scrypt) off the caller's executor.
    static func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }

    static func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: work()) }
        }
    }
}
