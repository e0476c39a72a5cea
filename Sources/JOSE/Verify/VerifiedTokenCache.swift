import Foundation
import Synchronization

/// A bounded map from whole tokens to their verification, so a token that repeats costs a
/// hash lookup instead of a signature check.
///
/// Keyed by every byte of the token (never by a part of it, so no other token can borrow an
/// entry). An entry dies at the token's `exp` (plus leeway), when the key ring it was checked
/// against is replaced, or when the cache is full and it is chosen for eviction (expired
/// entries first, then a tenth of the rest).
public final class VerifiedTokenCache: Sendable {
    struct Entry {
        let token: VerifiedToken
        let validUntil: Double
        let generation: UInt64
    }

    struct State {
        var entries: [ByteKey: Entry] = [:]
        var hits = 0, misses = 0, evictions = 0
    }

    public let capacity: Int
    /// The longest an entry lives when its token has no `exp`.
    public let maximumLifetime: Double
    private let state = Mutex(State())

    public init(capacity: Int = 100_000, maximumLifetime: Double = 300) {
        self.capacity = capacity
        self.maximumLifetime = maximumLifetime
    }

    func lookup(_ token: UnsafeRawBufferPointer, now: Double, generation: UInt64) -> VerifiedToken? {
        let key = ByteKey.borrowed(token)
        return state.withLock { state in
            guard let entry = state.entries[key] else {
                state.misses += 1
                return nil
            }
            guard entry.generation == generation, now < entry.validUntil else {
                state.entries[key] = nil
                state.misses += 1
                return nil
            }
            state.hits += 1
            return entry.token
        }
    }

    func insert(_ token: UnsafeRawBufferPointer, _ verified: VerifiedToken, validUntil: Double, generation: UInt64, now: Double) {
        let key = ByteKey.owned(Array(token))
        let entry = Entry(token: verified, validUntil: validUntil, generation: generation)
        state.withLock { state in
            if state.entries.count >= capacity { Self.evict(&state, capacity: capacity, now: now, generation: generation) }
            state.entries[key] = entry
        }
    }

    private static func evict(_ state: inout State, capacity: Int, now: Double, generation: UInt64) {
        let before = state.entries.count
        state.entries = state.entries.filter { $0.value.validUntil > now && $0.value.generation == generation }
        if state.entries.count >= capacity {
            // Dictionary order is random per process: dropping the first tenth is a random sample.
            let drop = max(1, capacity / 10)
            for key in state.entries.keys.prefix(drop) { state.entries[key] = nil }
        }
        state.evictions += before - state.entries.count
    }

    /// Counters since start: hits, misses, evictions, and the current entry count.
    public var statistics: (hits: Int, misses: Int, evictions: Int, count: Int) {
        state.withLock { ($0.hits, $0.misses, $0.evictions, $0.entries.count) }
    }

}
