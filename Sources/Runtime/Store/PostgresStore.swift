import Foundation
import Logging
public import PostgresNIO

/// The store for several gateway instances: PostgreSQL through postgres-nio's pooled client.
/// Per-user work locks the user's row (`FOR UPDATE`), so the session limit holds across
/// instances; a revocation sends `NOTIFY gateway_sessions` in its transaction, and every
/// instance's relay turns it into a local ``SessionEvent``.
public final class PostgresStore: StateStore {
    public let client: PostgresClient
    private let logger: Logger
    private let runTask: Task<Void, Never>
    static let channel = "gateway_sessions"

    /// Connects with a `postgres://user[:password]@host[:port]/database` URL and starts the pool.
    public static func connect(url: String, logger: Logger = Logger(label: "postgres")) async throws -> PostgresStore {
        guard let components = URLComponents(string: url), let host = components.host else {
            throw RuntimeError(.storage, "bad PostgreSQL URL \(url)")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        let configuration = PostgresClient.Configuration(host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
                                                         password: components.password, database: database.isEmpty ? nil : database, tls: .disable)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let store = PostgresStore(client: client, logger: logger)
        try await store.migrate()
        return store
    }

    private init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
        runTask = Task { await client.run() }
    }

    deinit { runTask.cancel() }

    public func close() { runTask.cancel() }

    /// One transaction; the caller's own error comes out as thrown, not wrapped.
    private func transaction<T>(_ body: (PostgresConnection) async throws -> sending T) async throws -> sending T {
        do {
            return try await client.withTransaction(logger: logger, body)
        } catch let error as PostgresTransactionError {
            if let inner = error.closureError { throw inner }
            throw error
        }
    }

    public func migrate() async throws {
        let statements: [PostgresQuery] = [
            """
            CREATE TABLE IF NOT EXISTS users (
              id TEXT PRIMARY KEY, email TEXT NOT NULL, password_hash TEXT NOT NULL, tenant_id TEXT NOT NULL, role TEXT NOT NULL,
              disabled BOOLEAN NOT NULL DEFAULT FALSE, app_metadata TEXT NOT NULL, user_metadata TEXT NOT NULL,
              created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, last_sign_in_at DOUBLE PRECISION)
            """,
            "CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users (lower(email))",
            """
            CREATE TABLE IF NOT EXISTS sessions (
              id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, contract TEXT NOT NULL,
              created_at DOUBLE PRECISION NOT NULL, last_seen_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
              metadata TEXT NOT NULL, revoked_at DOUBLE PRECISION, revoked_reason TEXT)
            """,
            "CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id)",
            "CREATE INDEX IF NOT EXISTS sessions_by_tenant ON sessions (tenant_id)",
            """
            CREATE TABLE IF NOT EXISTS refresh_tokens (
              hash TEXT PRIMARY KEY, session_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, spent_at DOUBLE PRECISION)
            """,
            "CREATE INDEX IF NOT EXISTS refresh_by_session ON refresh_tokens (session_id)",
        ]
        // Instances starting together against a fresh database would race on CREATE ... IF NOT
        // EXISTS (PostgreSQL can then fail with 23505 or 42P07): a session-level advisory lock
        // lets one instance migrate at a time. Each statement still commits on its own, so no
        // table lock is held across statements (one transaction deadlocks with live traffic).
        try await client.withConnection { connection in
            _ = try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger)
            do {
                for statement in statements { _ = try await connection.query(statement, logger: logger) }
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
                throw error
            }
            _ = try await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
        }
    }

    /// The advisory-lock key that serializes migrations ("gwmigrat" as bytes).
    private static let migrationLock: Int64 = 0x67_77_6d_69_67_72_61_74

    // MARK: Users

    private typealias UserRow = (String, String, String, String, String, Bool, String, String, Double, Double, Double?)
    private static let userColumns: PostgresQuery = "SELECT id, email, password_hash, tenant_id, role, disabled, app_metadata, user_metadata, created_at, updated_at, last_sign_in_at FROM users"

    private static func user(_ r: UserRow) -> (User, String) {
        (User(id: r.0, email: r.1, tenantID: r.3, role: r.4, disabled: r.5, appMetadata: r.6, userMetadata: r.7, createdAt: r.8, updatedAt: r.9, lastSignInAt: r.10), r.2)
    }

    private func users(where clause: String, _ bind: String?) async throws -> [(User, String)] {
        var query = PostgresQuery(unsafeSQL: Self.userColumns.sql + " " + clause)
        if let bind { query.binds.append(bind) }
        var out: [(User, String)] = []
        for try await row in try await client.query(query, logger: logger).decode(UserRow.self) { out.append(Self.user(row)) }
        return out
    }

    public func insertUser(_ user: User, passwordHash: String) async throws -> Bool {
        do {
            try await client.query("""
                INSERT INTO users (id, email, password_hash, tenant_id, role, disabled, app_metadata, user_metadata, created_at, updated_at)
                VALUES (\(user.id), \(user.email), \(passwordHash), \(user.tenantID), \(user.role), \(user.disabled), \(user.appMetadata), \(user.userMetadata), \(user.createdAt), \(user.updatedAt))
                """, logger: logger)
            return true
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            return false
        }
    }

    public func user(email: String) async throws -> (user: User, passwordHash: String)? {
        try await users(where: "WHERE lower(email) = lower($1)", email).first.map { ($0.0, $0.1) }
    }

    public func user(id: String) async throws -> User? { try await users(where: "WHERE id = $1", id).first?.0 }

    public func users() async throws -> [User] { try await users(where: "ORDER BY created_at", nil).map(\.0) }

    public func setDisabled(email: String, _ disabled: Bool, at: Double) async throws -> Bool {
        try await transaction { db in
            var id: String? = nil
            for try await (found) in try await db.query("SELECT id FROM users WHERE lower(email) = lower(\(email)) FOR UPDATE", logger: logger).decode(String.self) { id = found }
            guard let id else { return false }
            try await db.query("UPDATE users SET disabled = \(disabled), updated_at = \(at) WHERE id = \(id)", logger: logger)
            if disabled {
                var revoked: [String] = []
                for try await sid in try await db.query("UPDATE sessions SET revoked_at = \(at), revoked_reason = 'user_disabled' WHERE user_id = \(id) AND revoked_at IS NULL RETURNING id", logger: logger).decode(String.self) {
                    revoked.append(sid)
                }
                for sid in revoked { try await db.query("SELECT pg_notify(\(Self.channel), \(sid + " user_disabled"))", logger: logger) }
            }
            return true
        }
    }

    // MARK: Sessions

    private typealias SessionRow = (String, String, String, String, Double, Double, Double, String, Double?, String?)
    private static let sessionColumns = "SELECT id, tenant_id, user_id, contract, created_at, last_seen_at, expires_at, metadata, revoked_at, revoked_reason FROM sessions"

    private static func session(_ r: SessionRow) -> Session {
        Session(id: r.0, tenantID: r.1, userID: r.2, contract: r.3, createdAt: r.4, lastSeenAt: r.5, expiresAt: r.6, metadata: r.7, revokedAt: r.8, revokedReason: r.9)
    }

    @discardableResult
    public func createSession(_ session: Session, refreshHash: String?, limit: SessionLimit, at: Double) async throws -> [String] {
        try await transaction { db in
            // One creation per user at a time, across instances: a transaction-scoped advisory
            // lock on the user id (a token-made session's user may have no row to lock), and
            // the user's row, which disabling locks too.
            try await db.query("SELECT pg_advisory_xact_lock(\(Self.sessionLockSpace), hashtext(\(session.userID)))", logger: logger)
            try await db.query("SELECT id FROM users WHERE id = \(session.userID) FOR UPDATE", logger: logger)
            for try await (revoked, expires) in try await db.query("SELECT revoked_at, expires_at FROM sessions WHERE id = \(session.id)", logger: logger).decode((Double?, Double).self) {
                let live = revoked == nil && expires > at
                throw RuntimeError(.duplicateSession, live ? "a live session with id \(session.id) exists" : "session id \(session.id) was used before")
            }
            var count = 0
            var latest: Double?
            for try await (n, newest) in try await db.query("SELECT COUNT(*)::BIGINT, MAX(last_seen_at) FROM sessions WHERE user_id = \(session.userID) AND revoked_at IS NULL AND expires_at > \(at)", logger: logger).decode((Int64, Double?).self) {
                count = Int(clamping: n)
                latest = newest
            }
            guard let surplus = limit.toEnd(live: count) else {
                throw RuntimeError(.sessionLimit, "user already has \(count) live sessions (limit \(limit))")
            }
            var evicted: [String] = []
            if surplus > 0 {
                let reason = SessionLimit.revocationReason
                let oldest = try await db.query("""
                    UPDATE sessions SET revoked_at = \(at), revoked_reason = \(reason) WHERE id IN (
                      SELECT id FROM sessions WHERE user_id = \(session.userID) AND revoked_at IS NULL AND expires_at > \(at)
                      ORDER BY last_seen_at, created_at, id LIMIT \(surplus)) RETURNING id
                    """, logger: logger)
                for try await id in oldest.decode(String.self) { evicted.append(id) }
                for id in evicted {
                    try await db.query("DELETE FROM refresh_tokens WHERE session_id = \(id)", logger: logger)
                    try await db.query("SELECT pg_notify(\(Self.channel), \(id + " " + reason))", logger: logger)
                }
            }
            let lastSeen = Session.lastSeen(session.lastSeenAt, after: latest)
            try await db.query("""
                INSERT INTO sessions (id, tenant_id, user_id, contract, created_at, last_seen_at, expires_at, metadata)
                VALUES (\(session.id), \(session.tenantID), \(session.userID), \(session.contract), \(session.createdAt), \(lastSeen), \(session.expiresAt), \(session.metadata))
                """, logger: logger)
            if let refreshHash {
                try await db.query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (\(refreshHash), \(session.id), \(at))", logger: logger)
                try await db.query("UPDATE users SET last_sign_in_at = \(at) WHERE id = \(session.userID)", logger: logger)
            }
            return evicted
        }
    }

    /// The first key of the advisory locks that serialize a user's session creations ("gwse").
    private static let sessionLockSpace: Int32 = 0x67_77_73_65

    private func sessions(_ query: PostgresQuery, on db: PostgresConnection? = nil) async throws -> [Session] {
        var out: [Session] = []
        let rows = if let db { try await db.query(query, logger: logger) } else { try await client.query(query, logger: logger) }
        for try await row in rows.decode(SessionRow.self) { out.append(Self.session(row)) }
        return out
    }

    public func session(id: String) async throws -> Session? {
        var query = PostgresQuery(unsafeSQL: Self.sessionColumns + " WHERE id = $1")
        query.binds.append(id)
        return try await sessions(query).first
    }

    public func sessions(tenantID: String, userID: String?) async throws -> [Session] {
        var query = PostgresQuery(unsafeSQL: Self.sessionColumns + (userID == nil ? " WHERE tenant_id = $1 ORDER BY created_at" : " WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at"))
        query.binds.append(tenantID)
        if let userID { query.binds.append(userID) }
        return try await sessions(query)
    }

    public func revoke(sessionIDs: [String], reason: String, at: Double) async throws -> [String] {
        guard !sessionIDs.isEmpty else { return [] }
        return try await transaction { db in
            var revoked: [String] = []
            for id in sessionIDs {
                for try await sid in try await db.query("UPDATE sessions SET revoked_at = \(at), revoked_reason = \(reason) WHERE id = \(id) AND revoked_at IS NULL RETURNING id", logger: logger).decode(String.self) {
                    revoked.append(sid)
                }
            }
            for id in revoked {
                try await db.query("DELETE FROM refresh_tokens WHERE session_id = \(id)", logger: logger)
                try await db.query("SELECT pg_notify(\(Self.channel), \(id + " " + reason))", logger: logger)
            }
            return revoked
        }
    }

    public func liveSessionIDs(userID: String, at: Double) async throws -> [String] {
        var out: [String] = []
        for try await id in try await client.query("SELECT id FROM sessions WHERE user_id = \(userID) AND revoked_at IS NULL AND expires_at > \(at)", logger: logger).decode(String.self) {
            out.append(id)
        }
        return out
    }

    public func rotateRefresh(hash: String, newHash: String, at: Double) async throws -> RefreshRotation {
        try await transaction { db in
            var token: (String, Double?)? = nil
            for try await row in try await db.query("SELECT session_id, spent_at FROM refresh_tokens WHERE hash = \(hash) FOR UPDATE", logger: logger).decode((String, Double?).self) {
                token = row
            }
            guard let (sessionID, spent) = token else { return .unknown }
            var lookup = PostgresQuery(unsafeSQL: Self.sessionColumns + " WHERE id = $1 FOR UPDATE")
            lookup.binds.append(sessionID)
            guard var session = try await sessions(lookup, on: db).first else { return .sessionEnded }
            guard session.isLive(at: at) else { return .sessionEnded }
            if spent != nil {
                try await db.query("UPDATE sessions SET revoked_at = \(at), revoked_reason = 'refresh_token_reuse' WHERE id = \(sessionID)", logger: logger)
                try await db.query("DELETE FROM refresh_tokens WHERE session_id = \(sessionID)", logger: logger)
                try await db.query("SELECT pg_notify(\(Self.channel), \(sessionID + " refresh_token_reuse"))", logger: logger)
                session.revokedAt = at
                session.revokedReason = "refresh_token_reuse"
                return .reused(session)
            }
            try await db.query("UPDATE refresh_tokens SET spent_at = \(at) WHERE hash = \(hash)", logger: logger)
            try await db.query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (\(newHash), \(sessionID), \(at))", logger: logger)
            try await db.query("UPDATE sessions SET last_seen_at = \(at) WHERE id = \(sessionID)", logger: logger)
            session.lastSeenAt = at
            return .rotated(session)
        }
    }

    /// Relays revocations from every instance (LISTEN gateway_sessions) into `events` until
    /// the task is cancelled.
    public func relayEvents(into events: SessionEvents) async throws {
        try await client.withConnection { connection in
            try await connection.listen(on: Self.channel) { notifications in
                for try await notification in notifications {
                    let parts = notification.payload.split(separator: " ", maxSplits: 1)
                    guard let id = parts.first else { continue }
                    events.publish(.revoked(sessionID: String(id), reason: parts.count > 1 ? String(parts[1]) : "revoked"))
                }
            }
        }
    }
}
