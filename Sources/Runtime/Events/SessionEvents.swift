import Synchronization

/// What happened to a session, for whoever holds connections on it (WebSockets).
public enum SessionEvent: Sendable, Equatable {
    case revoked(sessionID: String, reason: String)
}

/// Publishes session events to subscribers in this process. With PostgreSQL, the store also
/// relays them through LISTEN/NOTIFY so every instance hears them.
public final class SessionEvents: Sendable {
    private let subscribers = Mutex<[Int: AsyncStream<SessionEvent>.Continuation]>([:])
    private let next = Atomic<Int>(0)

    public init() {}

    public func publish(_ event: SessionEvent) {
        for continuation in subscribers.withLock({ Array($0.values) }) { continuation.yield(event) }
    }

    /// A stream of events from now on; it ends when the caller stops iterating.
    public func subscribe() -> AsyncStream<SessionEvent> {
        let id = next.add(1, ordering: .relaxed).newValue
        return AsyncStream { continuation in
            subscribers.withLock { $0[id] = continuation }
            continuation.onTermination = { [weak self] _ in _ = self?.subscribers.withLock { $0.removeValue(forKey: id) } }
        }
    }
}
