import Logging
import Synchronization
import Testing

@testable import Gateway

/// Passive upstream health: how long a failed origin is ejected and how routes order around it.
@Suite struct UpstreamHealthTests {
    let a = Upstream("http://10.0.0.1:80")!, b = Upstream("http://10.0.0.2:80")!, c = Upstream("http://10.0.0.3:80")!
    let second: UInt64 = 1_000_000_000

    @Test func ejectionDoublesWithFailuresInARowAndIsCapped() {
        let reports = Mutex<[Int]>([])
        let health = UpstreamHealth(logger: Logger(label: "test")) { _, n in reports.withLock { $0.append(n) } }
        #expect(!health.isEjected(a.origin, now: 0))
        health.connectFailed(a.origin, error: "refused", now: 0)
        #expect(health.isEjected(a.origin, now: 5 * second - 1))
        #expect(!health.isEjected(a.origin, now: 5 * second), "5 s after the first failure")
        health.connectFailed(a.origin, error: "refused", now: 5 * second)
        #expect(health.isEjected(a.origin, now: 15 * second - 1) && !health.isEjected(a.origin, now: 15 * second), "then 10 s")
        var now = 15 * second
        for _ in 0..<10 { health.connectFailed(a.origin, error: "refused", now: now); now += 60 * second }
        now -= 60 * second
        #expect(health.isEjected(a.origin, now: now + 60 * second - 1) && !health.isEjected(a.origin, now: now + 60 * second), "at most 60 s")
        health.connected(a.origin)
        #expect(!health.isEjected(a.origin, now: now), "a connect that succeeds clears it")
        #expect(reports.withLock { $0 } == Array(1...12) + [0])
    }

    @Test func ejectedUpstreamsGoLastUnlessAllAre() {
        let health = UpstreamHealth(logger: Logger(label: "test"))
        #expect(health.prefer([a, b, c], now: 0) == [a, b, c])
        health.connectFailed(a.origin, error: "timed out", now: 0)
        #expect(health.prefer([a, b, c], now: 1) == [b, c, a])
        #expect(health.prefer([c, a, b], now: 1) == [c, b, a], "the others keep their round-robin order")
        health.connectFailed(b.origin, error: "timed out", now: 0)
        #expect(health.prefer([a, b, c], now: 1) == [c, a, b])
        health.connectFailed(c.origin, error: "timed out", now: 0)
        #expect(health.prefer([b, c, a], now: 1) == [b, c, a], "all ejected: the usual order, a request still tries")
        #expect(health.prefer([a, b, c], now: 5 * second) == [a, b, c], "ejections over")
        #expect(health.ejected(now: 1) == [a.origin, b.origin, c.origin])
    }
}
