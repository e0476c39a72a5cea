import Foundation
import JOSE
import NIOPosix
import Runtime
import Testing

/// One suite for the state surface, run against every store: SQLite in a temp file, and the
/// PostgreSQL named by GATEWAY_POSTGRES_URL (scripts/test.sh starts one).
@Suite struct StoreTests {
    enum Kind: String, CaseIterable, Sendable { case sqlite, postgres }

    /// Runs `body` with a store of `kind`, closing it afterwards.
    static func withStore(_ kind: Kind, _ body: (any StateStore) async throws -> Void) async throws {
        switch kind {
        case .sqlite:
            try await withStore { (store: SQLiteStore) async throws in try await body(store) }
        case .postgres:
            guard let url = ProcessInfo.processInfo.environment["GATEWAY_POSTGRES_URL"] else {
                Issue.record("GATEWAY_POSTGRES_URL is not set: run scripts/test.sh, which starts PostgreSQL (scripts/postgres.sh start)")
                return
            }
            let store = try await PostgresStore.connect(url: url)
            defer { store.close() }
            do { try await body(store) } catch { Issue.record("\(String(reflecting: error))"); throw error }
        }
    }

    /// Runs `body` with a fresh store in a temp file, and closes it (SQLiteNIO requires it).
    static func withStore(_ body: (SQLiteStore) async throws -> Void) async throws {  // SQLite only
        let path = NSTemporaryDirectory() + "gateway-store-\(UUID().uuidString)/state.db"
        let store = try await SQLiteStore.open(path: path, eventLoop: MultiThreadedEventLoopGroup.singleton.any())
        do { try await body(store) } catch { try await store.close(); throw error }
        try await store.close()
    }

    static func user(_ email: String = "u\(UUID().uuidString.prefix(8))@example.com") -> User {
        let now = Date().timeIntervalSince1970
        return User(id: UUID().uuidString.lowercased(), email: email, createdAt: now, updatedAt: now)
    }

    static func session(for user: User, id: String = UUID().uuidString.lowercased(), ttl: Double = 3600, at now: Double = Date().timeIntervalSince1970) -> Session {
        Session(id: id, tenantID: user.tenantID, userID: user.id, contract: "default", createdAt: now, lastSeenAt: now, expiresAt: now + ttl)
    }

    @Test(arguments: Kind.allCases)
    func usersAreUniqueByEmailCaseInsensitively(_ kind: Kind) async throws { try await Self.withStore(kind) { store async throws in
        let email = "Ada-\(UUID().uuidString.prefix(6))@Example.com"
        let user = Self.user(email)
        #expect(try await store.insertUser(user, passwordHash: "h"))
        #expect(try await !store.insertUser(Self.user(email.lowercased()), passwordHash: "h"))
        #expect(try await store.user(email: email.uppercased())?.user.id == user.id)
        #expect(try await store.user(id: user.id)?.email == email)
        #expect(try await store.setDisabled(email: email.lowercased(), true, at: Date().timeIntervalSince1970))
        #expect(try await store.user(id: user.id)?.disabled == true)
        #expect(try await !store.setDisabled(email: "nobody@example.com", true, at: 0))
    } }

    @Test(arguments: Kind.allCases)
    func sessionsDuplicatesAndLimits(_ kind: Kind) async throws { try await Self.withStore(kind) { store async throws in
        let user = Self.user()
        _ = try await store.insertUser(user, passwordHash: "h")
        let now = Date().timeIntervalSince1970
        let first = Self.session(for: user)
        try await store.createSession(first, refreshHash: nil, limit: .refuse(beyond: 2), at: now)
        await #expect(throws: RuntimeError.self) { try await store.createSession(first, refreshHash: nil, limit: .refuse(beyond: 2), at: now) }
        try await store.createSession(Self.session(for: user), refreshHash: nil, limit: .refuse(beyond: 2), at: now)
        await #expect { try await store.createSession(Self.session(for: user), refreshHash: nil, limit: .refuse(beyond: 2), at: now) } throws: {
            ($0 as? RuntimeError)?.code == .sessionLimit
        }
        #expect(try await store.session(id: first.id) == first)
        #expect(try await store.revoke(sessionIDs: [first.id], reason: "logout", at: now) == [first.id])
        #expect(try await store.revoke(sessionIDs: [first.id], reason: "logout", at: now) == [], "revoking twice reports nothing")
        #expect(try await store.session(id: first.id)?.revokedReason == "logout")
        // A revoked id can never be reused.
        await #expect(throws: RuntimeError.self) { try await store.createSession(first, refreshHash: nil, limit: .refuse(beyond: 5), at: now) }
        #expect(try await store.liveSessionIDs(userID: user.id, at: now).count == 1)
        #expect(try await store.sessions(tenantID: "default", userID: user.id).count == 2)
    } }

    /// Concurrent session creation for one user never exceeds the limit (the store serializes
    /// per user: one SQLite writer, or the user's row lock in PostgreSQL).
    @Test(arguments: Kind.allCases)
    func limitHoldsUnderConcurrency(_ kind: Kind) async throws { try await Self.withStore(kind) { store async throws in
        let user = Self.user()
        _ = try await store.insertUser(user, passwordHash: "h")
        let now = Date().timeIntervalSince1970
        let created = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<20 {
                group.addTask { (try? await store.createSession(Self.session(for: user), refreshHash: nil, limit: .refuse(beyond: 5), at: now)) != nil }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(created == 5)
        #expect(try await store.liveSessionIDs(userID: user.id, at: now).count == 5)
    } }

    /// Past the limit under `evict`, the user's least recently used sessions (oldest sign-in
    /// or refresh, not oldest creation) end with their refresh tokens, in the same transaction
    /// that stores the new one; `refuse` refuses instead, and no limit keeps every session.
    @Test(arguments: Kind.allCases)
    func evictionEndsTheLeastRecentlyUsed(_ kind: Kind) async throws { try await Self.withStore(kind) { store async throws in
        let user = Self.user()
        _ = try await store.insertUser(user, passwordHash: "h")
        let t = Date().timeIntervalSince1970, r = UUID().uuidString
        var ids: [String] = []
        for i in 0..<3 {
            let session = Self.session(for: user, at: t + Double(i))
            #expect(try await store.createSession(session, refreshHash: r + "\(i)", limit: .evict(beyond: 3), at: t + Double(i)) == [])
            ids.append(session.id)
        }
        // The first refreshes, so the second is now the least recently used.
        guard case .rotated = try await store.rotateRefresh(hash: r + "0", newHash: r + "0b", at: t + 3) else { Issue.record("rotation failed"); return }
        let fourth = Self.session(for: user, at: t + 4)
        #expect(try await store.createSession(fourth, refreshHash: r + "3", limit: .evict(beyond: 3), at: t + 4) == [ids[1]])
        #expect(Set(try await store.liveSessionIDs(userID: user.id, at: t + 4)) == [ids[0], ids[2], fourth.id])
        let ended = try await store.session(id: ids[1])
        #expect(ended?.revokedReason == SessionLimit.revocationReason && ended?.revokedAt == t + 4)
        #expect(try await store.rotateRefresh(hash: r + "1", newHash: r + "1b", at: t + 5) == .unknown, "its refresh tokens died with it")
        guard case .rotated = try await store.rotateRefresh(hash: r + "0b", newHash: r + "0c", at: t + 5) else { Issue.record("a live session lost its token"); return }

        // The limit lowered to 2: the two least recently used of the three (third, then fourth) go.
        let fifth = Self.session(for: user, at: t + 6)
        #expect(Set(try await store.createSession(fifth, refreshHash: nil, limit: .evict(beyond: 2), at: t + 6)) == [ids[2], fourth.id])
        #expect(Set(try await store.liveSessionIDs(userID: user.id, at: t + 6)) == [ids[0], fifth.id])
        await #expect { try await store.createSession(Self.session(for: user, at: t + 7), refreshHash: nil, limit: .refuse(beyond: 2), at: t + 7) } throws: {
            ($0 as? RuntimeError)?.code == .sessionLimit
        }
        for i in 0..<5 {
            #expect(try await store.createSession(Self.session(for: user, at: t + 8), refreshHash: nil, limit: .unlimited, at: t + 8 + Double(i)) == [])
        }
        #expect(try await store.liveSessionIDs(userID: user.id, at: t + 9).count == 7)
    } }

    /// Sign-ins in one clock tick: the order they commit in is the order of use, so the last
    /// three created live.
    @Test(arguments: Kind.allCases)
    func sessionsCreatedInOneTickEndInTheOrderTheyCame(_ kind: Kind) async throws { try await Self.withStore(kind) { store async throws in
        let user = Self.user()
        _ = try await store.insertUser(user, passwordHash: "h")
        let t = Date().timeIntervalSince1970
        var ids: [String] = []
        for _ in 0..<6 {
            let session = Self.session(for: user, at: t)
            try await store.createSession(session, refreshHash: nil, limit: .evict(beyond: 3), at: t)
            ids.append(session.id)
        }
        #expect(Set(try await store.liveSessionIDs(userID: user.id, at: t)) == Set(ids.suffix(3)))
    } }

    /// Twenty concurrent creations for one user under `evict(beyond: 3)` all succeed; three
    /// live afterwards, the most recently used of the twenty, and the seventeen others ended
    /// with their refresh tokens, each reported once. The callers' clocks run backwards here
    /// (a sign-in that waited commits after a later one): the one stored last still counts as
    /// the most recent. Without a limit, all twenty live.
    @Test(arguments: Kind.allCases)
    func twentyConcurrentCreationsKeepTheNewestThree(_ kind: Kind) async throws { try await Self.withStore(kind) { store async throws in
        let user = Self.user()
        _ = try await store.insertUser(user, passwordHash: "h")
        let t = Date().timeIntervalSince1970, r = UUID().uuidString
        let results = await withTaskGroup(of: (id: String, refresh: String, ended: [String]?).self) { group in
            for i in 0..<20 {
                group.addTask {
                    let session = Self.session(for: user, at: t - Double(i))
                    let ended = try? await store.createSession(session, refreshHash: r + "\(i)", limit: .evict(beyond: 3), at: t)
                    return (session.id, r + "\(i)", ended)
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0.ended != nil }, "every creation succeeded")
        let all = try await store.sessions(tenantID: user.tenantID, userID: user.id)
        let live = Set(all.filter { $0.isLive(at: t) }.map(\.id))
        #expect(all.count == 20 && live.count == 3)
        let reported = results.flatMap { $0.ended ?? [] }
        #expect(reported.count == 17 && Set(reported) == Set(all.map(\.id)).subtracting(live))
        #expect(Set(all.sorted { $0.lastSeenAt < $1.lastSeenAt }.suffix(3).map(\.id)) == live, "the three most recently used live")
        for result in results {
            let rotation = try await store.rotateRefresh(hash: result.refresh, newHash: result.refresh + "next", at: t + 1)
            if live.contains(result.id) {
                guard case .rotated = rotation else { Issue.record("live session \(result.id): \(rotation)"); continue }
            } else {
                #expect(rotation == .unknown, "ended session \(result.id)")
            }
        }

        let other = Self.user()
        _ = try await store.insertUser(other, passwordHash: "h")
        let unlimited = await withTaskGroup(of: [String]?.self) { group in
            for _ in 0..<20 { group.addTask { try? await store.createSession(Self.session(for: other, at: t), refreshHash: nil, limit: .unlimited, at: t) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(unlimited.allSatisfy { $0 == [] })
        #expect(try await store.liveSessionIDs(userID: other.id, at: t).count == 20)
    } }

    @Test(arguments: Kind.allCases)
    func refreshRotationDetectsReuse(_ kind: Kind) async throws { try await Self.withStore(kind) { store async throws in
        let user = Self.user()
        _ = try await store.insertUser(user, passwordHash: "h")
        let now = Date().timeIntervalSince1970
        let session = Self.session(for: user)
        let r = UUID().uuidString
        try await store.createSession(session, refreshHash: r + "1", limit: .refuse(beyond: 10), at: now)
        guard case .rotated(let s) = try await store.rotateRefresh(hash: r + "1", newHash: r + "2", at: now + 1) else { Issue.record("rotation failed"); return }
        #expect(s.id == session.id)
        guard case .rotated = try await store.rotateRefresh(hash: r + "2", newHash: r + "3", at: now + 2) else { Issue.record("second rotation failed"); return }
        // r1 again: reuse revokes the whole session, and r3 dies with it.
        guard case .reused(let revoked) = try await store.rotateRefresh(hash: r + "1", newHash: r + "4", at: now + 3) else { Issue.record("reuse not detected"); return }
        #expect(revoked.revokedReason == "refresh_token_reuse")
        #expect(try await store.rotateRefresh(hash: r + "3", newHash: r + "5", at: now + 4) == .unknown)
        #expect(try await store.rotateRefresh(hash: "nope", newHash: r + "6", at: now) == .unknown)
        #expect(try await store.session(id: session.id)?.isLive(at: now + 5) == false)
    } }

    @Test func survivesReopen() async throws {
        let path = NSTemporaryDirectory() + "gateway-store-\(UUID().uuidString)/state.db"
        let first = try await SQLiteStore.open(path: path, eventLoop: MultiThreadedEventLoopGroup.singleton.any())
        let user = Self.user()
        _ = try await first.insertUser(user, passwordHash: "h")
        try await first.createSession(Self.session(for: user), refreshHash: "x", limit: .refuse(beyond: 10), at: Date().timeIntervalSince1970)
        try await first.close()
        let second = try await SQLiteStore.open(path: path, eventLoop: MultiThreadedEventLoopGroup.singleton.any())
        #expect(try await second.user(id: user.id) != nil)
        #expect(try await second.sessions(tenantID: "default", userID: user.id).count == 1)
        try await second.close()
    }

    @Test func intentValidation() throws {
        let validator = IntentValidator(contracts: ["default", "agent"], sessionLimit: .refuse(beyond: 3))
        let id = UUID().uuidString.lowercased()
        let good = SessionIntent(id: id, tenantID: "t", userID: "u", contract: "agent", ttl: 60)
        #expect(throws: Never.self) { try validator.validate(good, userID: "u", tenantID: "t") }
        func code(_ intent: SessionIntent) -> RuntimeError.Code? {
            do { try validator.validate(intent, userID: "u", tenantID: "t"); return nil } catch { return error.code }
        }
        var other = good; other.userID = "someone-else"
        #expect(code(other) == .invalidIntent)
        other = good; other.tenantID = "t2"
        #expect(code(other) == .invalidIntent)
        other = good; other.id = "not-a-uuid"
        #expect(code(other) == .invalidIntent)
        other = good; other.id = id.uppercased()
        #expect(code(other) == .invalidIntent)
        other = good; other.contract = "mystery"
        #expect(code(other) == .invalidIntent)
        other = good; other.ttl = 0
        #expect(code(other) == .invalidIntent)
    }

    @Test func passwordHashes() throws {
        let hash = try PasswordHash.hash("correct horse", cost: .fast)
        #expect(hash.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        #expect(PasswordHash.verify("correct horse", against: hash))
        #expect(!PasswordHash.verify("correct hors", against: hash))
        #expect(!PasswordHash.verify("correct horse", against: "$scrypt$ln=99,r=8,p=1$AA$AA"))
        #expect(try PasswordHash.hash("x", cost: .fast) != PasswordHash.hash("x", cost: .fast), "salted")
    }
}

/// Revocations reach every instance: two PostgreSQL stores, as two gateways would hold.
@Suite struct PostgresEventTests {
    /// Instances starting together against a fresh database all come up: without the
    /// migration lock, concurrent CREATE ... IF NOT EXISTS fails with 23505 or 42P07.
    @Test func instancesStartingTogetherOnAFreshDatabase() async throws {
        guard let url = ProcessInfo.processInfo.environment["GATEWAY_POSTGRES_URL"], var components = URLComponents(string: url) else {
            Issue.record("GATEWAY_POSTGRES_URL is not set: run scripts/test.sh")
            return
        }
        let name = "gw_fresh_\(UUID().uuidString.prefix(8).lowercased())"
        let psql = Process()
        psql.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        psql.arguments = ["psql", url, "-q", "-c", "CREATE DATABASE \(name)"]
        try psql.run()
        psql.waitUntilExit()
        #expect(psql.terminationStatus == 0)
        components.path = "/" + name
        let fresh = components.string!
        for _ in 0..<3 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask { let store = try await PostgresStore.connect(url: fresh); store.close() }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func revocationIsHeardByAnotherInstance() async throws {
        guard let url = ProcessInfo.processInfo.environment["GATEWAY_POSTGRES_URL"] else {
            Issue.record("GATEWAY_POSTGRES_URL is not set: run scripts/test.sh")
            return
        }
        let a = try await PostgresStore.connect(url: url), b = try await PostgresStore.connect(url: url)
        defer { a.close(); b.close() }
        let events = SessionEvents()
        let stream = events.subscribe()
        let relay = Task { try await b.relayEvents(into: events) }
        defer { relay.cancel() }
        try await Task.sleep(nanoseconds: 300_000_000)  // LISTEN is in place
        let user = StoreTests.user()
        _ = try await a.insertUser(user, passwordHash: "h")
        let session = StoreTests.session(for: user)
        try await a.createSession(session, refreshHash: nil, limit: .refuse(beyond: 10), at: Date().timeIntervalSince1970)
        _ = try await a.revoke(sessionIDs: [session.id], reason: "logout", at: Date().timeIntervalSince1970)
        let heard = try await withThrowingTaskGroup(of: SessionEvent?.self) { group in
            group.addTask { for await event in stream where event == .revoked(sessionID: session.id, reason: "logout") { return event }; return nil }
            group.addTask { try await Task.sleep(nanoseconds: 5_000_000_000); return nil }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        #expect(heard == .revoked(sessionID: session.id, reason: "logout"))
    }
}
