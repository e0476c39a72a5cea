import Foundation
import Synchronization

/// A bounded map from whole tokens to the reason they were refused, for reasons that cannot
/// change while the key ring and the policy stay the same: a bad signature, an expiry, a wrong
/// issuer or audience, a claim that is absent or absurd. A signed-out user's old token, or a
/// forged one sent in a loop, then costs a hash lookup instead of a signature check.
///
/// Unlike ``VerifiedTokenCache`` the tokens here are anyone's choice (a forger picks every
/// byte, the signature's tail included), so the key hashes every byte with the process's
/// seeded hasher: no set of tokens can be made to share a bucket. An expired token's message
/// is rebuilt from its `exp` on each hit ("expired 3m ago" keeps counting). The whole cache is
/// dropped when the key ring's generation changes; when full, a tenth of it (a random sample,
/// dictionary order being random per process) makes room.
public final class RefusalCache: Sendable {
    enum Refusal {
        case fixed(AuthFailure)
        case expired(exp: Double)
    }

    struct State {
        var entries: [WholeKey: Refusal] = [:]
        var generation: UInt64 = 0
        var hits = 0, evictions = 0
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int = 10_000) {
        self.capacity = max(1, capacity)
    }

    /// Whether a refusal for `reason` may be remembered.
    static func remembers(_ reason: AuthFailure.Reason) -> Bool {
        switch reason {
        case .badSignature, .expired, .wrongIssuer, .wrongAudience, .missingClaim, .invalidClaim: true
        default: false
        }
    }

    /// The refusal remembered for `token` under key ring `generation`, rebuilt for `now`.
    func lookup(_ token: UnsafeRawBufferPointer, generation: UInt64, now: Double) -> AuthFailure? {
        let refusal: Refusal? = state.withLock { state in
            guard state.generation == generation else {
                if !state.entries.isEmpty { state.entries.removeAll() }
                state.generation = generation
                return nil
            }
            guard let found = state.entries[.borrowed(token)] else { return nil }
            state.hits += 1
            return found
        }
        switch refusal {
        case nil: return nil
        case .fixed(let failure): return failure
        case .expired(let exp): return ClaimPolicy.expiry(exp: exp, now: now)
        }
    }

    func insert(_ token: UnsafeRawBufferPointer, _ failure: AuthFailure, exp: Double?, generation: UInt64) {
        guard Self.remembers(failure.reason) else { return }
        let refusal: Refusal = if failure.reason == .expired, let exp { .expired(exp: exp) } else { .fixed(failure) }
        let key = WholeKey.owned(Array(token))
        state.withLock { state in
            if state.generation != generation {
                state.entries.removeAll()
                state.generation = generation
            }
            if state.entries.count >= capacity {
                let before = state.entries.count
                for key in state.entries.keys.prefix(max(1, capacity / 10)) { state.entries[key] = nil }
                state.evictions += before - state.entries.count
            }
            state.entries[key] = refusal
        }
    }

    /// Counters since start: hits, evictions, and the current entry count.
    public var statistics: (hits: Int, evictions: Int, count: Int) {
        state.withLock { ($0.hits, $0.evictions, $0.entries.count) }
    }
}

/// Bytes as a dictionary key hashed over every byte (``ByteKey`` hashes only the tail, which is
/// right for verified tokens and wrong for tokens a stranger chose); equality is ByteKey's.
struct WholeKey: Hashable, @unchecked Sendable {  // .borrowed never outlives the lock it is used under
    let bytes: ByteKey

    static func owned(_ bytes: [UInt8]) -> WholeKey { WholeKey(bytes: .owned(bytes)) }
    static func borrowed(_ buffer: UnsafeRawBufferPointer) -> WholeKey { WholeKey(bytes: .borrowed(buffer)) }

    func hash(into hasher: inout Hasher) {
        bytes.withBytes { hasher.combine(bytes: $0) }
    }
}
