import Testing

@testable import Gateway

/// The connection's phases and deadlines with a fixed clock: every timeout, both retries,
/// drain, half-close and keep-alive, with no channel and no waiting.
@Suite struct ConnectionStateMachineTests {
    static let s: UInt64 = 1_000_000_000
    static let idle: UInt64 = 60 * s
    static let route = ConnectionStateMachine.Timeouts(connect: 5 * s, firstByte: 30 * s, idle: 20 * s)

    static func machine(at now: UInt64 = 1_000 * s) -> ConnectionStateMachine {
        ConnectionStateMachine(clientIdle: idle, now: now)
    }

    @Test func anIdleConnectionClosesAfterTheIdleTimeoutAndAPartialHeadIsAnswered408() {
        let m = Self.machine()
        #expect(m.deadline == 1_060 * Self.s)
        #expect(m.check(now: 1_059 * Self.s, partialHead: false) == .wake(at: 1_060 * Self.s))
        #expect(m.check(now: 1_060 * Self.s, partialHead: false) == .expired(.idle))
        #expect(m.check(now: 1_060 * Self.s, partialHead: true) == .expired(.partialHead))
    }

    @Test func eachPhaseOfAnExchangeHasItsOwnDeadline() {
        var m = Self.machine()
        let t0 = 1_000 * Self.s
        m.admitted(now: t0, timeouts: Self.route, sessionCheck: true)
        #expect(m.deadline == t0 + ConnectionStateMachine.sessionBackstop)
        #expect(m.check(now: t0 + ConnectionStateMachine.sessionBackstop, partialHead: false) == .expired(.sessionCheck))

        m.sessionFound(now: t0 + Self.s)
        #expect(m.phase == .connecting(since: t0 + Self.s))
        #expect(m.check(now: t0 + 7 * Self.s, partialHead: false) == .expired(.connect), "connect timeout plus the backstop's second")
        #expect(m.check(now: t0 + 6 * Self.s, partialHead: false) == .wake(at: t0 + 7 * Self.s))

        m.connected(now: t0 + 2 * Self.s, bodyToCome: true)
        #expect(m.deadline == t0 + 22 * Self.s)
        m.clientBody(now: t0 + 10 * Self.s)
        #expect(m.check(now: t0 + 29 * Self.s, partialHead: false) == .wake(at: t0 + 30 * Self.s), "each body byte moves the stall deadline")
        #expect(m.check(now: t0 + 30 * Self.s, partialHead: false) == .expired(.requestBody))

        m.requestSent(now: t0 + 11 * Self.s)
        #expect(m.check(now: t0 + 41 * Self.s, partialHead: false) == .expired(.firstByte))
        #expect(m.check(now: t0 + 40 * Self.s, partialHead: false) == .wake(at: t0 + 41 * Self.s))

        m.upstreamBytes(now: t0 + 12 * Self.s)
        #expect(m.phase == .streaming(lastByte: t0 + 12 * Self.s))
        m.upstreamBytes(now: t0 + 25 * Self.s)
        #expect(m.check(now: t0 + 44 * Self.s, partialHead: false) == .wake(at: t0 + 45 * Self.s))
        #expect(m.check(now: t0 + 45 * Self.s, partialHead: false) == .expired(.upstreamIdle))

        m.answered(now: t0 + 26 * Self.s)
        #expect(m.isIdle && m.deadline == t0 + 26 * Self.s + Self.idle, "keep-alive: idle again, the idle timeout from the answer")
    }

    @Test func aRequestWithoutABodyWaitsForItsFirstByteFromTheConnect() {
        var m = Self.machine()
        m.admitted(now: 0, timeouts: Self.route, sessionCheck: false)
        m.connected(now: 3 * Self.s, bodyToCome: false)
        #expect(m.phase == .awaitingResponse(since: 3 * Self.s))
        #expect(m.check(now: 33 * Self.s, partialHead: false) == .expired(.firstByte))
    }

    @Test func aLocalRequestsBodyMayPauseForTheIdleTimeoutThenTheRuntimeAnswersUnderItsOwnDeadline() {
        var m = Self.machine()
        m.localStarted(now: 0, bodyToCome: true)
        m.clientBody(now: 10 * Self.s)
        #expect(m.check(now: 69 * Self.s, partialHead: false) == .wake(at: 70 * Self.s))
        #expect(m.check(now: 70 * Self.s, partialHead: false) == .expired(.localBodyStalled))
        m.localDispatched(now: 11 * Self.s)
        #expect(m.deadline == nil && m.check(now: 1_000 * Self.s, partialHead: false) == .none)
        m.answered(now: 12 * Self.s)
        #expect(m.isIdle)
    }

    @Test func bothRetries() {
        // A failed connect: the next upstream, once, for an idempotent request.
        #expect(ConnectionStateMachine.retriesConnect(idempotent: true, attempt: 0, upstreams: 2))
        #expect(!ConnectionStateMachine.retriesConnect(idempotent: true, attempt: 1, upstreams: 2))
        #expect(!ConnectionStateMachine.retriesConnect(idempotent: false, attempt: 0, upstreams: 2))
        #expect(!ConnectionStateMachine.retriesConnect(idempotent: true, attempt: 0, upstreams: 1))
        // A pooled connection closed before any answer: once more on a fresh one, bodyless only.
        #expect(ConnectionStateMachine.retriesStale(reused: true, responseStarted: false, alreadyRetried: false, idempotent: true, hasBody: false))
        #expect(!ConnectionStateMachine.retriesStale(reused: false, responseStarted: false, alreadyRetried: false, idempotent: true, hasBody: false))
        #expect(!ConnectionStateMachine.retriesStale(reused: true, responseStarted: true, alreadyRetried: false, idempotent: true, hasBody: false))
        #expect(!ConnectionStateMachine.retriesStale(reused: true, responseStarted: false, alreadyRetried: true, idempotent: true, hasBody: false))
        #expect(!ConnectionStateMachine.retriesStale(reused: true, responseStarted: false, alreadyRetried: false, idempotent: false, hasBody: false))
        #expect(!ConnectionStateMachine.retriesStale(reused: true, responseStarted: false, alreadyRetried: false, idempotent: true, hasBody: true))
        // A retry starts the connect deadline again.
        var m = Self.machine()
        m.admitted(now: 0, timeouts: Self.route, sessionCheck: false)
        m.connected(now: Self.s, bodyToCome: false)
        m.reconnecting(now: 2 * Self.s)
        #expect(m.phase == .connecting(since: 2 * Self.s))
    }

    @Test func drainClosesOnlyAnIdleConnection() {
        var m = Self.machine()
        #expect(m.closesOnDrain)
        m.admitted(now: 0, timeouts: Self.route, sessionCheck: false)
        #expect(!m.closesOnDrain)
        m.close()
        #expect(m.isClosing && m.deadline == nil)
        m.admitted(now: 0, timeouts: Self.route, sessionCheck: false)
        #expect(m.isClosing, "nothing starts on a closing connection")
    }

    @Test func halfClose() {
        var m = Self.machine()
        #expect(m.inputClosed(bodyToCome: false) == .finishThenClose)
        m.admitted(now: 0, timeouts: Self.route, sessionCheck: false)
        m.connected(now: 0, bodyToCome: true)
        #expect(m.inputClosed(bodyToCome: true) == .abandon, "a body that can never be whole: 499 at once")
        #expect(m.inputClosed(bodyToCome: false) == .finishThenClose)
        m.upstreamBytes(now: 0)
        #expect(m.inputClosed(bodyToCome: true) == .finishThenClose, "an answer under way is let finish")
        var local = Self.machine()
        local.localStarted(now: 0, bodyToCome: true)
        #expect(local.inputClosed(bodyToCome: true) == .abandon)
    }

    @Test func keepAlive() {
        typealias K = ConnectionStateMachine.KeepAlive
        func decide(_ client: Bool = true, draining: Bool = false, upstreamClose: Bool = false, untilClose: Bool = false, bodyToCome: Bool = false) -> K {
            ConnectionStateMachine.keepAlive(clientKeepAlive: client, draining: draining, upstreamClose: upstreamClose, untilClose: untilClose, bodyToCome: bodyToCome)
        }
        #expect(decide() == K(client: true, upstream: true))
        #expect(decide(false) == K(client: false, upstream: true), "the client's Connection: close leaves the upstream's connection pooled")
        #expect(decide(draining: true) == K(client: false, upstream: true))
        #expect(decide(upstreamClose: true) == K(client: true, upstream: false))
        #expect(decide(untilClose: true) == K(client: false, upstream: false), "a body that ends at close ends both")
        #expect(decide(bodyToCome: true) == K(client: false, upstream: false), "an early answer leaves the body unread")
    }
}
