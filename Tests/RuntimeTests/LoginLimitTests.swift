import Foundation
@testable import Runtime
import Testing

/// The sign-in limits as token buckets (GoTrue's shape): a burst up to the limit, refilled
/// evenly over the window, with the wait until the next token; time is a parameter.
@Suite struct LoginLimitTests {
    @Test func aBucketBurstsThenRefillsEvenly() {
        var buckets = TokenBuckets(burst: 3, window: 300)  // a token every 100 s
        let t = 1_700_000_000.0
        #expect((0..<3).map { _ in buckets.take("k", now: t) } == [.allowed, .allowed, .allowed])
        #expect(buckets.take("k", now: t) == .limited(retryAfter: 100))
        #expect(buckets.take("k", now: t + 40) == .limited(retryAfter: 60))
        #expect(buckets.take("k", now: t + 100) == .allowed, "one token back after a third of the window")
        #expect(buckets.take("k", now: t + 100.5) == .limited(retryAfter: 100))
        #expect(buckets.take("other", now: t) == .allowed, "keys are apart")
        // A long pause fills the bucket to the burst, not beyond.
        #expect((0..<4).map { _ in buckets.take("k", now: t + 100_000) } == [.allowed, .allowed, .allowed, .limited(retryAfter: 100)])
        // A clock that goes back refills nothing and breaks nothing.
        #expect(buckets.take("k", now: t) == .limited(retryAfter: 100))
    }

    @Test func checkDoesNotSpendAndSpendDoesNotGoBelowEmpty() {
        var buckets = TokenBuckets(burst: 2, window: 60)
        let t = 1_000.0
        for _ in 0..<5 { #expect(buckets.check("k", now: t) == .allowed) }
        for _ in 0..<5 { buckets.spend("k", now: t) }
        #expect(buckets.check("k", now: t) == .limited(retryAfter: 30))
        #expect(buckets.check("k", now: t + 30) == .allowed, "empty is the floor: one refill later there is a token")
    }

    /// Absurd times and sizes answer, never trap: the wait is whole seconds within 1 s ... 1 day.
    @Test(arguments: [Double.nan, .infinity, -.infinity, -1e308, 1e308, 0, -1])
    func absurdTimesDoNotTrap(now: Double) {
        var buckets = TokenBuckets(burst: 1, window: 300)
        _ = buckets.take("k", now: now)
        for later in [now, 0, 1e308, .nan] {
            if case .limited(let seconds) = buckets.take("k", now: later) { #expect((1...86_400).contains(seconds)) }
        }
        var odd = TokenBuckets(burst: -5, window: .nan)
        #expect(odd.take("k", now: 1) == .allowed)
        #expect(odd.take("k", now: 1) == .limited(retryAfter: 1))
    }

    @Test(arguments: [(Double.nan, 1), (.infinity, 86_400), (-.infinity, 1), (0, 1), (0.4, 1), (1, 1), (1.01, 2), (59.5, 60), (1e300, 86_400)])
    func waitsAreWholeSeconds(seconds: Double, expected: Int) {
        #expect(TokenBuckets.wholeSeconds(seconds) == expected)
    }

    /// A flood of distinct keys does not grow the table past its capacity.
    @Test func theTableStaysBounded() {
        var buckets = TokenBuckets(burst: 2, window: 60, capacity: 4)
        for i in 0..<1_000 { buckets.spend("k\(i)", now: 10) }
        #expect(buckets.count <= 4)
    }

    /// Per email only failures spend, and attempts for one email run one at a time: twenty
    /// concurrent right passwords all pass a limit of 3, and of ten concurrent wrong ones
    /// exactly 3 are checked, the rest refused with a wait.
    @Test func perEmailCountsFailuresOnlyEvenConcurrently() async throws {
        let limits = LoginLimits(perIP: 1_000, perEmail: 3, window: 300, clock: { 1_000 })
        let right = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<20 {
                group.addTask { (try? await limits.attempt(email: "a@x.io") { () async throws(RuntimeError) -> Bool? in await Task.yield(); return true }) == true }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(right == 20)
        let outcomes = await withTaskGroup(of: Int?.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    do {
                        _ = try await limits.attempt(email: "a@x.io") { () async throws(RuntimeError) -> Bool? in
                            await Task.yield()
                            return nil
                        }
                        return nil
                    } catch let error as RuntimeError {
                        return error.code == .overRequestRateLimit ? error.retryAfter : -1
                    } catch {
                        return -1
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        // Only attempts let through reach the check (and fail): exactly the three the bucket held.
        #expect(outcomes.filter { $0 == nil }.count == 3 && outcomes.compactMap { $0 }.allSatisfy { $0 == 100 }, "\(outcomes)")
        await #expect(throws: RuntimeError.self) { try await limits.attempt(email: "a@x.io") { () async throws(RuntimeError) -> Bool? in true } }
        #expect(try await limits.attempt(email: "b@x.io") { () async throws(RuntimeError) -> Bool? in true } == true, "another account is untouched")
    }

    /// However long the email sent, its entry is small, and it still counts as itself.
    @Test func longEmailsAreKeptAsDigests() async throws {
        let long = String(repeating: "a", count: 100_000) + "@x.io"
        #expect(LoginLimits.key(long).utf8.count < 100 && LoginLimits.key(long) != LoginLimits.key(long + "x"))
        #expect(LoginLimits.key("a@x.io") == "a@x.io")
        let limits = LoginLimits(perIP: 1_000, perEmail: 1, window: 300, clock: { 1_000 })
        #expect(try await limits.attempt(email: long) { () async throws(RuntimeError) -> Bool? in nil } == nil)
        await #expect(throws: RuntimeError.self) { try await limits.attempt(email: long) { () async throws(RuntimeError) -> Bool? in true } }
    }

    @Test func perIPCountsEveryAttempt() throws {
        let limits = LoginLimits(perIP: 2, perEmail: 1_000, window: 60, clock: { 5_000 })
        try limits.admit(ip: "203.0.113.9")
        try limits.admit(ip: "203.0.113.9")
        #expect { try limits.admit(ip: "203.0.113.9") } throws: { ($0 as? RuntimeError)?.retryAfter == 30 }
        try limits.admit(ip: "203.0.113.10")
    }
}
