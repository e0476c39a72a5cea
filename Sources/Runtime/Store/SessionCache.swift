import Synchronization

/// Recently read sessions, so a busy route does not ask the store on every request. Entries
/// live `ttl` seconds; a revocation event (from this instance or, with PostgreSQL, any other)
/// evicts at once. A `ttl` of 0 turns the cache off.
public final class SessionCache: Sendable {
    public let ttl: Double
    private let entries = Mutex<[String: (session: Session, until: Double)]>([:])
    private let capacity: Int

    public init(ttl: Double, capacity: Int = 100_000) {
        self.ttl = ttl
        self.capacity = capacity
    }

    /// The session through the cache: a fresh entry, else the store (and remember it).
    public func session(id: String, store: any StateStore, now: Double) async throws -> Session? {
        if ttl > 0, let hit = entries.withLock({ $0[id] }), hit.until > now { return hit.session }
        guard let session = try await store.session(id: id) else { return nil }
        if ttl > 0 {
            entries.withLock { entries in
                if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
                entries[id] = (session, now + ttl)
            }
        }
        return session
    }

    public func evict(_ id: String) { _ = entries.withLock { $0.removeValue(forKey: id) } }

    /// Evicts sessions as revocation events arrive, until the task is cancelled.
    public func follow(_ events: SessionEvents) async {
        for await event in events.subscribe() {
            if case .revoked(let id, _) = event { evict(id) }
        }
    }
}
