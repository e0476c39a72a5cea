import JOSE
import Synchronization

/// The two sign-in limits, each a token bucket as GoTrue keeps them (a burst of `limit`,
/// refilled at `limit` per `window`): per client IP every attempt (sign-up, sign-in) spends
/// a token; per email only a failed sign-in does (wrong password, unknown email, disabled
/// user), so an account used from many places is never refused while its password is right.
/// Attempts for one email run one at a time, so concurrent guesses cannot all pass the check
/// before the first failure is counted.
final class LoginLimits: Sendable {
    private let perIP: Mutex<TokenBuckets>
    private let perEmail: Mutex<TokenBuckets>
    private let emails = KeyedLock()
    private let clock: @Sendable () -> Double

    init(perIP: Int, perEmail: Int, window: Double, clock: @escaping @Sendable () -> Double = { Timestamp.now() }) {
        self.perIP = Mutex(TokenBuckets(burst: perIP, window: window))
        self.perEmail = Mutex(TokenBuckets(burst: perEmail, window: window))
        self.clock = clock
    }

    /// Spends one of the address's tokens, or refuses.
    func admit(ip: String) throws(RuntimeError) {
        let now = clock()
        try Self.answer(perIP.withLock { $0.take(ip, now: now) })
    }

    /// Runs one credential check for `email`: refused at once when failures spent the email's
    /// bucket; `check` returns nil when the credentials were wrong, which spends a token.
    func attempt<T>(email: String, _ check: () async throws(RuntimeError) -> T?) async throws(RuntimeError) -> T? {
        let key = Self.key(email)
        return try await emails.withLock(key) { () async throws(RuntimeError) -> T? in
            let now = clock()
            try Self.answer(perEmail.withLock { $0.check(key, now: now) })
            guard let passed = try await check() else {
                let now = clock()
                perEmail.withLock { $0.spend(key, now: now) }
                return nil
            }
            return passed
        }
    }

    /// The email itself, or its digest when it is longer than any address (a sign-in's email is
    /// not checked for shape), so a table entry stays small whatever was sent.
    static func key(_ email: String) -> String {
        email.utf8.count <= 320 ? email : "sha256:" + SHA256.hex(email)
    }

    private static func answer(_ verdict: TokenBuckets.Verdict) throws(RuntimeError) {
        if case .limited(let seconds) = verdict {
            throw RuntimeError(.overRequestRateLimit, "Request rate limit reached", retryAfter: seconds)
        }
    }
}
