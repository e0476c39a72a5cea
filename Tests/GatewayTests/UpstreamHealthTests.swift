import Glibc
import Logging
import NIOCore
import Synchronization
import Testing

@testable import Gateway

/// Passive upstream health: how long a failed origin is ejected and how routes order around it.
@Suite struct UpstreamHealthTests {
    let a = Upstream("http://10.0.0.1:80")!, b = Upstream("http://10.0.0.2:80")!, c = Upstream("http://10.0.0.3:80")!
    let second: UInt64 = 1_000_000_000
    let refused = IOError(errnoCode: ECONNREFUSED, reason: "connect")

    @Test func ejectionDoublesWithFailuresInARowAndIsCapped() {
        let reports = Mutex<[Int]>([])
        let health = UpstreamHealth(logger: Logger(label: "test")) { _, n in reports.withLock { $0.append(n) } }
        #expect(!health.isEjected(a.origin, now: 0))
        health.connectFailed(a.origin, error: refused, now: 0)
        #expect(health.isEjected(a.origin, now: 5 * second - 1))
        #expect(!health.isEjected(a.origin, now: 5 * second), "5 s after the first failure")
        health.connectFailed(a.origin, error: refused, now: 5 * second)
        #expect(health.isEjected(a.origin, now: 15 * second - 1) && !health.isEjected(a.origin, now: 15 * second), "then 10 s")
        var now = 15 * second
        for _ in 0..<10 { health.connectFailed(a.origin, error: refused, now: now); now += 60 * second }
        now -= 60 * second
        #expect(health.isEjected(a.origin, now: now + 60 * second - 1) && !health.isEjected(a.origin, now: now + 60 * second), "at most 60 s")
        health.connected(a.origin)
        #expect(!health.isEjected(a.origin, now: now), "a connect that succeeds clears it")
        #expect(reports.withLock { $0 } == Array(1...12) + [0])
    }

    @Test func theOthersShareTheTurnsWhileOneIsEjected() {
        let health = UpstreamHealth(logger: Logger(label: "test"))
        #expect(health.order([a, b, c], turn: 0, now: 0) == nil, "nothing ejected: the plain rotation")
        health.connectFailed(a.origin, error: refused, now: 0)
        #expect(health.order([a, b, c], turn: 0, now: 1) == [b, c, a])
        #expect(health.order([a, b, c], turn: 1, now: 1) == [c, b, a])
        let firsts = (0..<10).compactMap { health.order([a, b, c], turn: UInt64($0), now: 1)?.first?.origin }
        #expect(firsts.filter { $0 == b.origin }.count == 5 && firsts.filter { $0 == c.origin }.count == 5, "an equal share each: \(firsts)")
        health.connectFailed(b.origin, error: refused, now: 0)
        #expect(health.order([a, b, c], turn: 7, now: 1) == [c, a, b])
        health.connectFailed(c.origin, error: refused, now: 0)
        #expect(health.order([a, b, c], turn: 1, now: 1) == nil, "all ejected: the plain rotation, a request still tries")
        #expect(health.order([a, b, c], turn: 1, now: 5 * second) == nil, "ejections over")
        #expect(health.ejected(now: 1) == [a.origin, b.origin, c.origin])
    }

    @Test func failuresWhileEjectedDoNotCountAndALongGapStartsAgain() {
        let reports = Mutex<[Int]>([])
        let health = UpstreamHealth(logger: Logger(label: "test")) { _, n in reports.withLock { $0.append(n) } }
        health.connectFailed(a.origin, error: refused, now: 0)
        // Connects already under way when it was ejected fail too: the ejection stays 5 s.
        for k in 1...50 { health.connectFailed(a.origin, error: refused, now: UInt64(k) * 10_000_000) }
        #expect(!health.isEjected(a.origin, now: 5 * second))
        #expect(reports.withLock { $0 } == [1])
        // Failing again soon after it is back: twice as long.
        health.connectFailed(a.origin, error: refused, now: 6 * second)
        #expect(health.isEjected(a.origin, now: 16 * second - 1) && !health.isEjected(a.origin, now: 16 * second))
        // An hour later a failure is the first of a new run.
        health.connectFailed(a.origin, error: refused, now: 3600 * second)
        #expect(!health.isEjected(a.origin, now: 3605 * second))
        #expect(reports.withLock { $0 } == [1, 2, 1])
    }

    @Test func failuresThatAreNotTheUpstreamsAreNotCounted() {
        let health = UpstreamHealth(logger: Logger(label: "test"))
        health.connectFailed(a.origin, error: IOError(errnoCode: EMFILE, reason: "socket"), now: 0)
        health.connectFailed(a.origin, error: EventLoopError.shutdown, now: 0)
        #expect(!health.anyRecorded && !health.isEjected(a.origin, now: 1))
        health.connectFailed(a.origin, error: ChannelError.connectTimeout(.seconds(1)), now: 0)
        #expect(health.isEjected(a.origin, now: 1))
    }

    @Test func aPooledConnectionEndsTheRunOnlyAfterTheEjection() {
        let health = UpstreamHealth(logger: Logger(label: "test"))
        health.connectFailed(a.origin, error: refused, now: 0)
        health.served(a.origin, now: second)
        #expect(health.isEjected(a.origin, now: 2 * second), "new connects may still fail: the ejection runs its course")
        health.served(a.origin, now: 5 * second)
        #expect(!health.anyRecorded, "after it, a request served on a kept connection ends the run")
        health.connectFailed(a.origin, error: refused, now: 6 * second)
        #expect(!health.isEjected(a.origin, now: 11 * second), "a new run: 5 s, not 10")
    }

    @Test func aReloadForgetsOriginsNoRouteNames() {
        let reports = Mutex<[String]>([])
        let health = UpstreamHealth(logger: Logger(label: "test")) { origin, n in reports.withLock { $0.append("\(origin)=\(n)") } }
        health.connectFailed(a.origin, error: refused, now: 0)
        health.connectFailed(b.origin, error: refused, now: 0)
        health.keep(origins: [b.origin, c.origin])
        #expect(health.ejected(now: 1) == [b.origin])
        #expect(reports.withLock { $0 } == ["\(a.origin)=1", "\(b.origin)=1", "\(a.origin)=0"])
        health.connected(b.origin)
        #expect(!health.anyRecorded)
    }
}
