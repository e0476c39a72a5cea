/// The client connection's state and every deadline it has, as a value: the connection handler
/// tells it what happened (with the time, `now`, in uptime nanoseconds) and it says what is
/// due, as postgres-nio's `ConnectionStateMachine` and Hummingbird's connection state handler
/// do. It holds no channel, no clock and no buffers, so each timeout, retry, drain and
/// half-close rule is tested with a fixed clock (ConnectionStateMachineTests).
///
/// One request is in flight at a time (pipelined requests wait in the handler's bytes):
///
///     idle -> awaitingSession -> connecting -> sendingBody -> awaitingResponse -> streaming -> idle
///          \-> local(reading) -> local(answering) -> idle           (any) -> closing
///
/// The state machine is longer than a file of one concern usually is: its phases, deadlines
/// and decisions only make sense read together.
struct ConnectionStateMachine {
    /// The timeouts in nanoseconds: `[server] idle_timeout` for the connection, the route's for
    /// a request (set when it is admitted).
    struct Timeouts: Equatable {
        var connect: UInt64
        var firstByte: UInt64
        var idle: UInt64
    }

    enum Phase: Equatable {
        /// No request in flight since `since`: the next head must come within the idle timeout
        /// (which also bounds a head sent slowly).
        case idle(since: UInt64)
        /// A local API request: its body read (`reading`, last byte at `since`), then answered
        /// by the runtime under its own deadline.
        case local(reading: Bool, since: UInt64)
        /// The runtime looks up the token's session.
        case awaitingSession(since: UInt64)
        /// An upstream connection is being made (the pool's connect timeout answers first; the
        /// deadline here is a backstop).
        case connecting(since: UInt64)
        /// The request body is going up; the client may pause for the route's idle timeout.
        case sendingBody(lastByte: UInt64)
        /// The whole request went up at `since`; the response head is due within first_byte.
        case awaitingResponse(since: UInt64)
        /// The response head went to the client; the upstream may pause for the route's idle timeout.
        case streaming(lastByte: UInt64)
        /// The connection ends once what was written went out.
        case closing
    }

    /// What a deadline that passed means.
    enum Expiry: Equatable {
        /// Idle with nothing buffered: close.
        case idle
        /// Part of a head came, not its end: 408, then close.
        case partialHead
        /// A local request's body stopped: close.
        case localBodyStalled
        /// The runtime did not answer the session check: 503.
        case sessionCheck
        /// No upstream connection: 504.
        case connect
        /// The request body stalled: 408.
        case requestBody
        /// No response head within first_byte: 504.
        case firstByte
        /// The upstream went quiet mid-response: the client connection is cut.
        case upstreamIdle
    }

    enum TimerAction: Equatable {
        /// Nothing is due.
        case none
        /// Not yet: look again at this time.
        case wake(at: UInt64)
        case expired(Expiry)
    }

    /// How long the runtime may take over a session check before the backstop answers (its own
    /// deadline is the local API's, 10 s).
    static let sessionBackstop: UInt64 = 11_000_000_000
    /// Added to the connect timeout: the pool's own timer answers first.
    static let connectBackstop: UInt64 = 1_000_000_000

    private(set) var phase: Phase
    let clientIdle: UInt64
    /// The route's timeouts for the request in flight.
    private(set) var timeouts = Timeouts(connect: 0, firstByte: 0, idle: 0)
    /// Started at `now` (a new connection is idle).
    init(clientIdle: UInt64, now: UInt64) {
        self.clientIdle = clientIdle
        phase = .idle(since: now)
    }

    // MARK: Deadlines

    /// When the timer must look next; nil when nothing is due (closing, or the runtime answering).
    var deadline: UInt64? {
        switch phase {
        case .idle(let since): since &+ clientIdle
        case .local(reading: true, let since): since &+ clientIdle
        case .local(reading: false, _): nil
        case .awaitingSession(let since): since &+ Self.sessionBackstop
        case .connecting(let since): since &+ timeouts.connect &+ Self.connectBackstop
        case .sendingBody(let lastByte): lastByte &+ timeouts.idle
        case .awaitingResponse(let since): since &+ timeouts.firstByte
        case .streaming(let lastByte): lastByte &+ timeouts.idle
        case .closing: nil
        }
    }

    /// What the timer finds at `now`. `partialHead`: bytes of a head not yet complete are buffered.
    func check(now: UInt64, partialHead: Bool) -> TimerAction {
        guard let due = deadline else { return .none }
        if now < due { return .wake(at: due) }
        switch phase {
        case .idle: return .expired(partialHead ? .partialHead : .idle)
        case .local: return .expired(.localBodyStalled)
        case .awaitingSession: return .expired(.sessionCheck)
        case .connecting: return .expired(.connect)
        case .sendingBody: return .expired(.requestBody)
        case .awaitingResponse: return .expired(.firstByte)
        case .streaming: return .expired(.upstreamIdle)
        case .closing: return .none
        }
    }

    // MARK: Events

    /// A request was admitted for an upstream: its session is checked first, or it connects.
    mutating func admitted(now: UInt64, timeouts: Timeouts, sessionCheck: Bool) {
        guard phase != .closing else { return }
        self.timeouts = timeouts
        phase = sessionCheck ? .awaitingSession(since: now) : .connecting(since: now)
    }

    /// The runtime found the session live.
    mutating func sessionFound(now: UInt64) {
        if case .awaitingSession = phase { phase = .connecting(since: now) }
    }

    /// A connection to the upstream is ready and the head went up; `bodyToCome`: body bytes
    /// are still to come from the client.
    mutating func connected(now: UInt64, bodyToCome: Bool) {
        guard case .connecting = phase else { return }
        phase = bodyToCome ? .sendingBody(lastByte: now) : .awaitingResponse(since: now)
    }

    /// A retry starts over on another connection (the next upstream, or a fresh one).
    mutating func reconnecting(now: UInt64) {
        switch phase {
        case .connecting, .sendingBody, .awaitingResponse: phase = .connecting(since: now)
        default: break
        }
    }

    /// Body bytes came from the client (for the upstream, or a local request).
    mutating func clientBody(now: UInt64) {
        switch phase {
        case .sendingBody: phase = .sendingBody(lastByte: now)
        case .local(reading: true, _): phase = .local(reading: true, since: now)
        default: break
        }
    }

    /// The last body byte went up.
    mutating func requestSent(now: UInt64) {
        if case .sendingBody = phase { phase = .awaitingResponse(since: now) }
    }

    /// The response head came (and went to the client), or more of the body.
    mutating func upstreamBytes(now: UInt64) {
        switch phase {
        case .awaitingResponse, .sendingBody, .streaming: phase = .streaming(lastByte: now)
        default: break
        }
    }

    /// A local API request's head was read; `bodyToCome`: its body is still to be read.
    mutating func localStarted(now: UInt64, bodyToCome: Bool) {
        guard phase != .closing else { return }
        phase = .local(reading: bodyToCome, since: now)
    }

    /// A local request's body is whole: the runtime answers it.
    mutating func localDispatched(now: UInt64) {
        if case .local = phase { phase = .local(reading: false, since: now) }
    }

    /// The request was answered (by the upstream, the runtime or the gateway): the connection
    /// is idle again unless it closes.
    mutating func answered(now: UInt64) {
        if phase != .closing { phase = .idle(since: now) }
    }

    mutating func close() { phase = .closing }

    var isIdle: Bool { if case .idle = phase { true } else { false } }
    var isClosing: Bool { phase == .closing }

    // MARK: Decisions

    /// What a drain (SIGTERM, a reload that stops the listener) does to this connection: an
    /// idle one closes once what was written went out; a busy one finishes its answer, which
    /// says `Connection: close`.
    var closesOnDrain: Bool { isIdle }

    /// The client shut its sending side (half-close).
    enum HalfClose: Equatable {
        /// Answer what it sent, then close (nothing is in flight, or the answer is on its way).
        case finishThenClose
        /// Its request body can never be whole and no answer has begun: 499, close now.
        case abandon
    }

    func inputClosed(bodyToCome: Bool) -> HalfClose {
        switch phase {
        case .awaitingSession, .connecting, .sendingBody, .awaitingResponse: bodyToCome ? .abandon : .finishThenClose
        case .local(reading: true, _): .abandon
        default: .finishThenClose
        }
    }

    /// Whether a failed connect is tried again on the next upstream: only an idempotent
    /// request's first attempt, and only when the route has another upstream.
    static func retriesConnect(idempotent: Bool, attempt: Int, upstreams: Int) -> Bool {
        idempotent && attempt == 0 && upstreams > 1
    }

    /// Whether an upstream connection that closed before answering is tried once more on a
    /// fresh one: a pooled connection the upstream closed while it idled, for an idempotent
    /// request with no body and no response byte yet.
    static func retriesStale(reused: Bool, responseStarted: Bool, alreadyRetried: Bool, idempotent: Bool, hasBody: Bool) -> Bool {
        reused && !responseStarted && !alreadyRetried && idempotent && !hasBody
    }

    /// After the response head: whether the client connection and the upstream's carry on.
    struct KeepAlive: Equatable {
        var client: Bool
        var upstream: Bool
    }

    /// `clientKeepAlive`: the client did not ask to close. `upstreamClose`: the upstream did
    /// (or spoke HTTP/1.0). `untilClose`: the body ends when the upstream closes.
    /// `bodyToCome`: the answer came before the request body was all sent (its rest is not read).
    static func keepAlive(clientKeepAlive: Bool, draining: Bool, upstreamClose: Bool, untilClose: Bool, bodyToCome: Bool) -> KeepAlive {
        KeepAlive(client: clientKeepAlive && !draining && !untilClose && !bodyToCome,
                  upstream: !upstreamClose && !untilClose && !bodyToCome)
    }
}
