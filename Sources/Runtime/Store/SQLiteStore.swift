import Foundation
import Logging
public import NIOCore
public import NIOPosix
import SQLiteNIO

/// The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a write is on
/// disk before it is acknowledged and a killed process loses nothing it answered for. One
/// connection; transactions are serialized by a FIFO lock and run as `BEGIN IMMEDIATE`.
public final class SQLiteStore: StateStore {
    private let connection: SQLiteConnection
    private let lock = AsyncLock()
    public let path: String

    public static func open(path: String, threadPool: NIOThreadPool = .singleton, eventLoop: any EventLoop) async throws -> SQLiteStore {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let connection = try await SQLiteConnection.open(storage: .file(path: path), threadPool: threadPool,
                                                         logger: Logger(label: "sqlite"), on: eventLoop)
        let store = SQLiteStore(connection: connection, path: path)
        _ = try await connection.query("PRAGMA journal_mode=WAL", [])
        _ = try await connection.query("PRAGMA synchronous=FULL", [])
        _ = try await connection.query("PRAGMA busy_timeout=5000", [])
        _ = try await connection.query("PRAGMA foreign_keys=ON", [])
        try await store.migrate()
        return store
    }

    private init(connection: SQLiteConnection, path: String) {
        self.connection = connection
        self.path = path
    }

    public func close() async throws { try await connection.close() }

    /// Runs `body` in one transaction, serialized with every other.
    private func transaction<T: Sendable>(_ body: @Sendable (SQLiteConnection) async throws -> T) async throws -> T {
        await lock.lock()
        do {
            _ = try await connection.query("BEGIN IMMEDIATE", [])
            let result = try await body(connection)
            _ = try await connection.query("COMMIT", [])
            await lock.unlock()
            return result
        } catch {
            _ = try? await connection.query("ROLLBACK", [])
            await lock.unlock()
            throw error
        }
    }

    public func migrate() async throws {
        try await transaction { db in
            for statement in [
                """
                CREATE TABLE IF NOT EXISTS users (
                  id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE COLLATE NOCASE, password_hash TEXT NOT NULL,
                  tenant_id TEXT NOT NULL, role TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,
                  app_metadata TEXT NOT NULL, user_metadata TEXT NOT NULL,
                  created_at REAL NOT NULL, updated_at REAL NOT NULL, last_sign_in_at REAL)
                """,
                """
                CREATE TABLE IF NOT EXISTS sessions (
                  id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, contract TEXT NOT NULL,
                  created_at REAL NOT NULL, last_seen_at REAL NOT NULL, expires_at REAL NOT NULL, metadata TEXT NOT NULL,
                  revoked_at REAL, revoked_reason TEXT)
                """,
                "CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(user_id, revoked_at)",
                "CREATE INDEX IF NOT EXISTS sessions_by_tenant ON sessions(tenant_id)",
                """
                CREATE TABLE IF NOT EXISTS refresh_tokens (
                  hash TEXT PRIMARY KEY, session_id TEXT NOT NULL, created_at REAL NOT NULL, spent_at REAL)
                """,
                "CREATE INDEX IF NOT EXISTS refresh_by_session ON refresh_tokens(session_id)",
            ] {
                _ = try await db.query(statement, [])
            }
        }
    }

    // MARK: Users

    public func insertUser(_ user: User, passwordHash: String) async throws -> Bool {
        try await transaction { db in
            let existing = try await db.query("SELECT 1 FROM users WHERE email = ?", [.text(user.email)])
            if !existing.isEmpty { return false }
            _ = try await db.query(
                "INSERT INTO users (id, email, password_hash, tenant_id, role, disabled, app_metadata, user_metadata, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [.text(user.id), .text(user.email), .text(passwordHash), .text(user.tenantID), .text(user.role), .integer(user.disabled ? 1 : 0),
                 .text(user.appMetadata), .text(user.userMetadata), .float(user.createdAt), .float(user.updatedAt)])
            return true
        }
    }

    public func user(email: String) async throws -> (user: User, passwordHash: String)? {
        let rows = try await transaction { db in try await db.query("SELECT * FROM users WHERE email = ?", [.text(email)]) }
        guard let row = rows.first else { return nil }
        return (Self.user(row), row.column("password_hash")?.string ?? "")
    }

    public func user(id: String) async throws -> User? {
        try await transaction { db in try await db.query("SELECT * FROM users WHERE id = ?", [.text(id)]) }.first.map(Self.user)
    }

    public func users() async throws -> [User] {
        try await transaction { db in try await db.query("SELECT * FROM users ORDER BY created_at", []) }.map(Self.user)
    }

    public func setDisabled(email: String, _ disabled: Bool, at: Double) async throws -> Bool {
        try await transaction { db in
            guard let row = try await db.query("SELECT id FROM users WHERE email = ?", [.text(email)]).first,
                  let id = row.column("id")?.string else { return false }
            _ = try await db.query("UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?", [.integer(disabled ? 1 : 0), .float(at), .text(id)])
            if disabled {
                _ = try await db.query("UPDATE sessions SET revoked_at = ?, revoked_reason = 'user_disabled' WHERE user_id = ? AND revoked_at IS NULL",
                                       [.float(at), .text(id)])
            }
            return true
        }
    }

    static func user(_ row: SQLiteRow) -> User {
        User(id: row.column("id")?.string ?? "", email: row.column("email")?.string ?? "", tenantID: row.column("tenant_id")?.string ?? "default",
             role: row.column("role")?.string ?? "authenticated", disabled: (row.column("disabled")?.integer ?? 0) != 0,
             appMetadata: row.column("app_metadata")?.string ?? "{}", userMetadata: row.column("user_metadata")?.string ?? "{}",
             createdAt: row.column("created_at")?.double ?? 0, updatedAt: row.column("updated_at")?.double ?? 0,
             lastSignInAt: row.column("last_sign_in_at")?.double)
    }

    // MARK: Sessions

    @discardableResult
    public func createSession(_ session: Session, refreshHash: String?, limit: SessionLimit, at: Double) async throws -> [String] {
        try await transaction { db in
            if let existing = try await db.query("SELECT revoked_at, expires_at FROM sessions WHERE id = ?", [.text(session.id)]).first {
                let live = existing.column("revoked_at")?.double == nil && (existing.column("expires_at")?.double ?? 0) > at
                throw RuntimeError(.duplicateSession, live ? "a live session with id \(session.id) exists" : "session id \(session.id) was used before")
            }
            let live = try await db.query("SELECT COUNT(*) AS n, MAX(last_seen_at) AS latest FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?",
                                          [.text(session.userID), .float(at)]).first
            let count = live?.column("n")?.integer ?? 0
            guard let surplus = limit.toEnd(live: count) else {
                throw RuntimeError(.sessionLimit, "user already has \(count) live sessions (limit \(limit))")
            }
            var evicted: [String] = []
            if surplus > 0 {
                let oldest = try await db.query("""
                    SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?
                    ORDER BY last_seen_at, created_at, id LIMIT ?
                    """, [.text(session.userID), .float(at), .integer(surplus)])
                for id in oldest.compactMap({ $0.column("id")?.string }) {
                    _ = try await db.query("UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ?",
                                           [.float(at), .text(SessionLimit.revocationReason), .text(id)])
                    _ = try await db.query("DELETE FROM refresh_tokens WHERE session_id = ?", [.text(id)])
                    evicted.append(id)
                }
            }
            let lastSeen = Session.lastSeen(session.lastSeenAt, after: live?.column("latest")?.double)
            _ = try await db.query(
                "INSERT INTO sessions (id, tenant_id, user_id, contract, created_at, last_seen_at, expires_at, metadata) VALUES (?,?,?,?,?,?,?,?)",
                [.text(session.id), .text(session.tenantID), .text(session.userID), .text(session.contract), .float(session.createdAt),
                 .float(lastSeen), .float(session.expiresAt), .text(session.metadata)])
            if let refreshHash {
                _ = try await db.query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?,?,?)", [.text(refreshHash), .text(session.id), .float(at)])
                _ = try await db.query("UPDATE users SET last_sign_in_at = ? WHERE id = ?", [.float(at), .text(session.userID)])
            }
            return evicted
        }
    }

    public func session(id: String) async throws -> Session? {
        try await transaction { db in try await db.query("SELECT * FROM sessions WHERE id = ?", [.text(id)]) }.first.map(Self.session)
    }

    public func sessions(tenantID: String, userID: String?) async throws -> [Session] {
        try await transaction { db in
            if let userID {
                return try await db.query("SELECT * FROM sessions WHERE tenant_id = ? AND user_id = ? ORDER BY created_at", [.text(tenantID), .text(userID)])
            }
            return try await db.query("SELECT * FROM sessions WHERE tenant_id = ? ORDER BY created_at", [.text(tenantID)])
        }.map(Self.session)
    }

    public func revoke(sessionIDs: [String], reason: String, at: Double) async throws -> [String] {
        guard !sessionIDs.isEmpty else { return [] }
        return try await transaction { db in
            var revoked: [String] = []
            for id in sessionIDs {
                let live = try await db.query("SELECT 1 FROM sessions WHERE id = ? AND revoked_at IS NULL", [.text(id)])
                guard !live.isEmpty else { continue }
                _ = try await db.query("UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ?", [.float(at), .text(reason), .text(id)])
                _ = try await db.query("DELETE FROM refresh_tokens WHERE session_id = ?", [.text(id)])
                revoked.append(id)
            }
            return revoked
        }
    }

    public func liveSessionIDs(userID: String, at: Double) async throws -> [String] {
        try await transaction { db in
            try await db.query("SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?", [.text(userID), .float(at)])
        }.compactMap { $0.column("id")?.string }
    }

    public func rotateRefresh(hash: String, newHash: String, at: Double) async throws -> RefreshRotation {
        try await transaction { db in
            guard let token = try await db.query("SELECT session_id, spent_at FROM refresh_tokens WHERE hash = ?", [.text(hash)]).first,
                  let sessionID = token.column("session_id")?.string
            else { return .unknown }
            guard let row = try await db.query("SELECT * FROM sessions WHERE id = ?", [.text(sessionID)]).first else { return .sessionEnded }
            var session = Self.session(row)
            guard session.isLive(at: at) else { return .sessionEnded }
            if token.column("spent_at")?.double != nil {
                _ = try await db.query("UPDATE sessions SET revoked_at = ?, revoked_reason = 'refresh_token_reuse' WHERE id = ?", [.float(at), .text(sessionID)])
                _ = try await db.query("DELETE FROM refresh_tokens WHERE session_id = ?", [.text(sessionID)])
                session.revokedAt = at
                session.revokedReason = "refresh_token_reuse"
                return .reused(session)
            }
            _ = try await db.query("UPDATE refresh_tokens SET spent_at = ? WHERE hash = ?", [.float(at), .text(hash)])
            _ = try await db.query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?,?,?)", [.text(newHash), .text(sessionID), .float(at)])
            _ = try await db.query("UPDATE sessions SET last_seen_at = ? WHERE id = ?", [.float(at), .text(sessionID)])
            session.lastSeenAt = at
            return .rotated(session)
        }
    }

    static func session(_ row: SQLiteRow) -> Session {
        Session(id: row.column("id")?.string ?? "", tenantID: row.column("tenant_id")?.string ?? "", userID: row.column("user_id")?.string ?? "",
                contract: row.column("contract")?.string ?? "", createdAt: row.column("created_at")?.double ?? 0,
                lastSeenAt: row.column("last_seen_at")?.double ?? 0, expiresAt: row.column("expires_at")?.double ?? 0,
                metadata: row.column("metadata")?.string ?? "{}", revokedAt: row.column("revoked_at")?.double,
                revokedReason: row.column("revoked_reason")?.string)
    }
}
