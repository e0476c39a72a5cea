/// Token buckets by key, the shape of GoTrue's limiter: each bucket holds up to `burst`
/// tokens and regains them evenly, `burst` per `window` seconds. A spent bucket refuses with
/// the wait until its next token. A value; the time is a parameter.
struct TokenBuckets: Sendable {
    enum Verdict: Sendable, Equatable {
        case allowed
        /// Whole seconds (at least 1) until a token is back.
        case limited(retryAfter: Int)
    }

    let burst: Double
    /// Tokens regained per second.
    let refill: Double
    /// Keys kept; past it, full buckets are forgotten (they hold nothing a new one would not).
    let capacity: Int
    private var levels: [String: (tokens: Double, at: Double)] = [:]

    /// `burst` below 1 counts as 1, a `window` below 1 s as 1 s.
    init(burst: Int, window: Double, capacity: Int = 100_000) {
        self.burst = Double(max(1, burst))
        self.refill = self.burst / (window.isFinite ? max(1, window) : 1)
        self.capacity = max(1, capacity)
    }

    /// The tokens in `key`'s bucket at `now`. A clock that went back refills nothing.
    func tokens(_ key: String, now: Double) -> Double {
        guard let level = levels[key] else { return burst }
        let elapsed = now - level.at
        guard elapsed.isFinite, elapsed > 0 else { return level.tokens }
        return min(burst, level.tokens + elapsed * refill)
    }

    /// Keys held.
    var count: Int { levels.count }

    /// Whether `key` has a token now, without taking it.
    func check(_ key: String, now: Double) -> Verdict {
        let tokens = tokens(key, now: now)
        return tokens >= 1 ? .allowed : .limited(retryAfter: Self.wholeSeconds((1 - tokens) / refill))
    }

    /// Takes a token when there is one.
    mutating func take(_ key: String, now: Double) -> Verdict {
        let verdict = check(key, now: now)
        if verdict == .allowed { spend(key, now: now) }
        return verdict
    }

    /// Takes a token whether or not there is one (the bucket does not go below empty).
    mutating func spend(_ key: String, now: Double) {
        let left = max(0, tokens(key, now: now) - 1)
        if levels.count >= capacity, levels[key] == nil { forgetFull(now: now) }
        levels[key] = (left, now.isFinite ? now : levels[key]?.at ?? 0)
    }

    private mutating func forgetFull(now: Double) {
        levels = levels.filter { tokens($0.key, now: now) < burst }
        // Still full of part-spent buckets (a flood of distinct keys): start over rather than grow.
        if levels.count >= capacity { levels.removeAll(keepingCapacity: true) }
    }

    /// Seconds rounded up (a microsecond's rounding error aside), within 1 s ... 1 day, for
    /// any input.
    static func wholeSeconds(_ seconds: Double) -> Int {
        guard !seconds.isNaN, seconds > 1 else { return 1 }
        return seconds >= 86_400 ? 86_400 : Int((seconds - 1e-6).rounded(.up))
    }
}
