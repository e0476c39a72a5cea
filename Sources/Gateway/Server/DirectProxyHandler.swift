import Foundation
import CoreMetrics
import JOSE
import NIOCore
import NIOHTTP1
import Synchronization

/// The first handler on every client connection: the direct path for the common request, a
/// complete HTTP/1.1 head, with no body or a Content-Length body, going to an upstream. It
/// reads the head as bytes, routes and authenticates it, writes the upstream request as bytes
/// (the client's header lines copied, the gateway's own added), and passes the response
/// through as bytes, reading only its head and its framing. No HTTP objects are made on the way.
///
/// A refused token or a request no route matches is answered here. Anything else (a chunked
/// request body, an `Expect` other than 100-continue, an upgrade, HTTP/1.0, the gateway's own
/// endpoints, session checks in the runtime, a head it does not fully understand) hands the
/// connection, with the bytes not yet used, to the full HTTP stack (NIOHTTP1 and
/// `ProxyServerHandler`), which answers it as before; the connection stays there. Both paths
/// apply the same routes, policy, header rules and error vocabulary.
final class DirectProxyHandler: ChannelDuplexHandler, RemovableChannelHandler, RawUpstreamDelegate {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let server: GatewayServer
    private let pool: UpstreamPool
    private let httpPool: UpstreamPool
    /// Set while the handler is in the pipeline, nil once it left (closed or handed over): the
    /// context holds the handler, so holding the context after that kept both and everything
    /// they reach alive (every connection leaked). Work that completes later finds it nil.
    private var context: ChannelHandlerContext?
    /// Client bytes not used yet (a partial head, or pipelined requests).
    private var inbound: ByteBuffer?
    private var exchange: Exchange?
    /// A local API request in progress: its body being read, or the runtime answering it.
    private var local: LocalExchange?
    private var pendingRead = false
    private var handedOver = false
    private var closing = false
    /// The client shut its sending side: answer what it sent, then close.
    private var inputClosed = false
    /// Client bytes buffered beyond this hold further reads (pipelined requests wait in the
    /// socket). Above the largest head allowed (max_header_bytes is at most 64 KiB) and its
    /// CRLF CRLF, so a head over the limit is always seen whole enough to be refused.
    private static let inboundLimit = (1 << 16) + 8
    private var clientNeedsFlush = false
    private var remoteIP = ""
    /// Decides each request from its head's bytes; made once the client's address is known.
    private var admission: Admission
    private var responseReader = ResponseHeadReader()
    /// The channel's, kept (reading it through the channel costs a lock and a retain).
    private var allocator = ByteBufferAllocator()
    /// Tracked from writability events, so the upstream's reads need not ask the channel.
    private var clientWritable = true
    /// Body bytes were written upstream in this read cycle and await a flush.
    private var upstreamNeedsFlush = false
    /// One timer per connection, re-armed when it fires rather than per request: it checks
    /// the exchange's deadline then (scheduling and cancelling per request cost more than
    /// the rest of a request's bookkeeping).
    private var timer: Scheduled<Void>?
    private var timerDue: UInt64 = 0
    /// The connection's phase and deadlines (HTTP1/ConnectionStateMachine): the timer asks it
    /// what is due.
    private var machine: ConnectionStateMachine
    /// A response head not written yet, so a small body can join it in one write.
    private var staged: ByteBuffer?
    /// The last upstream request and response head written: their storage is used again
    /// for the next ones once nothing else holds it (written out, exchange over), which
    /// saves two allocations per request.
    private var responseScratch: ByteBuffer?

    /// A cleared buffer of at least `capacity` bytes: the scratch's storage when only the
    /// scratch holds it, else a new one (`clear` never copies).
    private static let scratchLimit = 4096

    @inline(__always)
    private func takeScratch(_ scratch: inout ByteBuffer?, capacity: Int) -> ByteBuffer {
        guard var buffer = scratch.take() else { return allocator.buffer(capacity: capacity) }
        buffer.clear(minimumCapacity: capacity)
        return buffer
    }
    /// The metric handles of the last route served (connections mostly stay on one route).
    private var lastCounter: (route: String, status: Int, counter: CoreMetrics.Counter)?
    private var lastTimer: (route: String, timer: CoreMetrics.Timer)?
    /// Counts tokens that verified (the handle kept: taking it costs a lock and a lookup).
    private var validCounter: CoreMetrics.Counter?

    private func requestCounter(_ route: String, _ status: Int) -> CoreMetrics.Counter {
        if let last = lastCounter, last.status == status, last.route == route { return last.counter }
        let counter = server.metrics.requestCounter(route: route, status: status)
        lastCounter = (route, status, counter)
        return counter
    }

    private func latencyTimer(_ route: String) -> CoreMetrics.Timer {
        if let last = lastTimer, last.route == route { return last.timer }
        let timer = server.metrics.latencyTimer(route: route)
        lastTimer = (route, timer)
        return timer
    }

    init(server: GatewayServer, pool: UpstreamPool, httpPool: UpstreamPool) {
        self.server = server
        self.pool = pool
        self.httpPool = httpPool
        machine = ConnectionStateMachine(clientIdle: UInt64(server.state.config.server.clientIdleTimeout * 1e9), now: DispatchTime.now().uptimeNanoseconds)
        admission = Admission(localAPI: server.localAPI, remoteIP: "")
    }

    /// A local API request: its body is read whole (bounded), then handed to the API.
    final class LocalExchange {
        let call: Admission.LocalCall
        let started = DispatchTime.now().uptimeNanoseconds
        var body: [UInt8] = []
        var remaining: Int
        var dispatched = false
        init(_ call: Admission.LocalCall) {
            self.call = call
            remaining = call.bodyLength
            body.reserveCapacity(call.bodyLength)
        }
    }

    /// One request on the direct path.
    final class Exchange {
        let route: RouteEntry
        /// The request head as the client sent it (a slice of the connection's bytes, not a
        /// copy). Method, target and request id become strings only when logged or answered.
        let head: ByteBuffer
        let methodRange: Range<Int>
        let targetRange: Range<Int>
        let isHead: Bool
        let idempotent: Bool
        let keepAlive: Bool
        let identity: Identity?
        let started = DispatchTime.now().uptimeNanoseconds
        /// The request for `upstream`: its request line, then the header block from `headerStart`,
        /// which ends with the request id (the last header value).
        var request: ByteBuffer
        let headerStart: Int
        var upstreams: [Upstream]
        var upstream: Upstream
        var attempt = 0
        var retriedStale = false
        var reused = false
        var channel: (any Channel)?
        var handler: RawUpstreamHandler?
        var upstreamStarted: UInt64 = 0
        /// Upstream bytes of a response head not complete yet.
        var responseHead: ByteBuffer?
        var framing: Framing?
        var status = 0
        var bytesOut = 0
        var upstreamKeepAlive = true
        var clientClose = false
        var lastActivity: UInt64 = 0
        /// `[cors]` was on when the request was read (a reload meanwhile does not change its answer).
        let corsOn: Bool
        /// The CORS headers its answers get.
        let cors: [(String, String)]?
        /// The query as forwarded, when token parameters were cut from it.
        let forwardedQuery: Substring??
        /// The route's timeouts, for the state machine.
        var timeouts: ConnectionStateMachine.Timeouts { .init(connect: route.connectNanos, firstByte: route.firstByteNanos, idle: route.idleNanos) }

        lazy var method: String = head.getString(at: head.readerIndex + methodRange.lowerBound, length: methodRange.count) ?? ""
        lazy var target: String = head.getString(at: head.readerIndex + targetRange.lowerBound, length: targetRange.count) ?? ""
        /// The request id (the client's, if valid, or one made here), read back from the last
        /// header value of `request`, where it was written once as bytes.
        lazy var requestID: String = request.withUnsafeReadableBytes { p in
            String(decoding: UnsafeRawBufferPointer(rebasing: p[(p.count - 4 - requestIDLength)..<(p.count - 4)]), as: UTF8.self)
        }
        /// The target's path and query (for the request line to a second upstream).
        var path: String { target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target }
        var query: Substring? { target.firstIndex(of: "?").map { target[target.index(after: $0)...] } }

        /// The id's length: it is the last header value of `request`, before the final CRLF CRLF.
        let requestIDLength: Int

        /// `x-request-id: ID` and the end of the response head (with `connection: close` if asked).
        func writeRequestIDField(into buffer: inout ByteBuffer, close: Bool) {
            _ = request.withUnsafeReadableBytes { p in
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: requestIDLength + 40) { room in
                    var out = ByteWriter(room)
                    out.put("x-request-id: ")
                    out.put(p, (p.count - 4 - requestIDLength)..<(p.count - 4))
                    if close { out.put("\r\nconnection: close\r\n\r\n") } else { out.put("\r\n\r\n") }
                    return out.count
                }
            }
        }

        /// Content-Length body: bytes not yet read from the client, parts read before the
        /// upstream connection was ready, bytes read in all.
        let bodyLength: Int
        var bodyRemaining: Int
        var pendingBody: [ByteBuffer] = []
        var bytesIn = 0
        /// The client waits for `100 Continue` before it sends the body.
        let expectContinue: Bool

        init(_ admitted: Admitted) {
            bodyLength = admitted.bodyLength
            bodyRemaining = admitted.bodyLength
            route = admitted.route
            head = admitted.head
            methodRange = admitted.methodRange
            targetRange = admitted.targetRange
            requestIDLength = admitted.requestIDLength
            isHead = admitted.isHead
            idempotent = admitted.idempotent
            keepAlive = admitted.keepAlive
            identity = admitted.identity
            request = admitted.request
            headerStart = admitted.headerStart
            upstreams = admitted.upstreams
            upstream = admitted.upstreams[0]
            expectContinue = admitted.expectContinue
            corsOn = admitted.corsOn
            forwardedQuery = admitted.forwardedQuery
            cors = admitted.cors
        }
    }

    // MARK: Connection

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        remoteIP = context.channel.remoteAddress?.ipAddress ?? ""
        allocator = context.channel.allocator
        admission = Admission(localAPI: server.localAPI, remoteIP: remoteIP, allocator: allocator)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        server.metrics.connectionOpened()
        server.connections.opened(context.channel)
        becameIdle()
        context.fireChannelActive()
    }

    /// A connection with no request in flight must send the next complete head within
    /// `[server] idle_timeout` (which also bounds a head sent slowly), or it is closed.
    private func becameIdle(at now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        machine.answered(now: now)
        armDeadline()
    }

    /// Makes sure the timer fires by the state machine's next deadline.
    private func armDeadline() {
        if let due = machine.deadline { armTimer(due: due) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        // Handed over and closed before this handler left the pipeline (the full path answered
        // the bytes handed over and closed): the full path counts the close.
        if handedOver { return context.fireChannelInactive() }
        server.metrics.connectionClosed()
        server.connections.closed(context.channel)
        if let exchange {
            self.exchange = nil
            let close = server.inFlightCloseNote
            finish(exchange, status: exchange.status == 0 ? close.status : exchange.status, reusable: false, note: close.note)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is DrainEvent {
            // Idle between requests: close once what was written went out (the end of a slow
            // client's download may still be queued).
            if exchange == nil, local == nil, !closing, machine.closesOnDrain { closeAfterWrites() }
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            if let exchange, machine.inputClosed(bodyToCome: exchange.bodyRemaining > 0) == .abandon {
                // The client stopped sending before its body was whole and no answer has begun:
                // the request can never be complete, so neither connection waits for the idle
                // timeout. (An answer already under way, say an early 413, is let finish.)
                self.exchange = nil
                finish(exchange, status: 499, reusable: false, note: "client closed with \(exchange.bodyRemaining) body bytes to go")
                return context.close(promise: nil)
            }
            if local != nil, machine.inputClosed(bodyToCome: true) == .abandon {
                // Its body can never be whole: nobody to answer.
                self.local = nil
                return context.close(promise: nil)
            }
            if exchange == nil, local == nil { nextRequest() }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Reads go on while a request is in flight (holding them would change the socket's epoll
    /// interest twice per request); what arrives waits in `inbound`, up to `inboundLimit`.
    func read(context: ChannelHandlerContext) {
        if !mayReadClient {
            pendingRead = true
            return
        }
        context.read()
    }

    /// Reads wait while too much is buffered, and while a request body cannot go on to the
    /// upstream (not connected yet, or not writable: backpressure).
    private var mayReadClient: Bool {
        if closing || (inbound?.readableBytes ?? 0) > Self.inboundLimit { return false }
        if let exchange, exchange.bodyRemaining > 0, !(exchange.channel?.isWritable ?? false) { return false }
        return true
    }

    private func resumeClientReads() {
        if inputClosed, exchange == nil, local == nil, !closing, !handedOver { return closeAfterWrites() }
        guard pendingRead, !handedOver, mayReadClient else { return }
        pendingRead = false
        context?.read()
    }

    func upstreamWritabilityChanged() {
        resumeClientReads()
    }

    /// Moves request-body bytes from `inbound` to the upstream (or to the exchange while it
    /// connects).
    private func pumpBody(_ exchange: Exchange) {
        guard exchange.bodyRemaining > 0, var buffered = inbound, buffered.readableBytes > 0 else { return }
        let take = min(exchange.bodyRemaining, buffered.readableBytes)
        let part = buffered.readSlice(length: take)!
        inbound = buffered.readableBytes > 0 ? buffered : nil
        exchange.bodyRemaining -= take
        exchange.bytesIn += take
        let now = DispatchTime.now().uptimeNanoseconds
        machine.clientBody(now: now)
        guard let handler = exchange.handler else {
            exchange.pendingBody.append(part)
            return
        }
        handler.write(part)
        if exchange.bodyRemaining == 0 {
            handler.flush()
            requestSent(at: now)
        } else {
            upstreamNeedsFlush = true
        }
    }

    private func requestSent(at now: UInt64) {
        machine.requestSent(now: now)
        armDeadline()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        clientWritable = context.channel.isWritable
        if clientWritable {
            if let exchange { exchange.handler?.resumeReading() } else if local == nil { nextRequest() }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if closing { return }
        if inbound == nil || inbound!.readableBytes == 0 {
            inbound = bytes
        } else {
            var incoming = bytes
            inbound!.writeBuffer(&incoming)
        }
        if let exchange {
            pumpBody(exchange)
        } else if let local {
            pumpLocalBody(local)
        } else {
            nextRequest()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Nothing follows this handler on the direct path (after a hand-over it is gone).
        flushClient()
        if upstreamNeedsFlush {
            upstreamNeedsFlush = false
            exchange?.handler?.flush()
        }
    }

    private var cachedState: GatewayState?
    private var cachedGeneration = -1

    /// The server's state, read again only after a reload (reading it takes a lock).
    private func currentState() -> GatewayState {
        let generation = server.stateGeneration.load(ordering: .acquiring)
        if generation != cachedGeneration || cachedState == nil {
            cachedState = server.state
            cachedGeneration = generation
        }
        return cachedState!
    }

    /// `nextRequest` is running; a call made meanwhile (from a write it made, say) asks it to
    /// look again rather than nesting.
    private var takingRequests = false
    private var lookAgain = false

    /// Takes the next complete requests from `inbound` while nothing is in flight: requests
    /// answered here (refused, no route) one after another in a loop, so a client that pipelines
    /// thousands of them gets as many answers and no deeper stack.
    private func nextRequest() {
        if takingRequests {
            lookAgain = true
            return
        }
        takingRequests = true
        defer { takingRequests = false }
        repeat {
            lookAgain = false
            takeRequests()
        } while lookAgain
        // Answers written here go out now: this may run from a writability change or a timer,
        // after which no read completes to flush them (the last answers of a long pipeline
        // waited for bytes that never came).
        if clientNeedsFlush, !handedOver { flushClient() }
    }

    private func takeRequests() {
        while exchange == nil, local == nil, !handedOver, !closing, let buffered = inbound, buffered.readableBytes > 0 {
            // Answers made here wait while the client is not reading them: a client that
            // pipelines requests and never reads cannot make the gateway hold their answers.
            // Reads stop too once `inbound` is full; writability coming back resumes.
            guard clientWritable else { return flushClient() }
            let state = currentState()
            switch admission.decide(buffered, state: state) {
            case .incomplete:
                let limit = state.config.server.maxHeaderBytes
                if buffered.readableBytes > limit + 4 {
                    // No end of head within the limit: 431, and the connection ends (what
                    // follows cannot be read as requests).
                    inbound = nil
                    return answerAndClose(.headersTooLarge("request head is over \(limit) bytes, the limit"))
                }
                return resumeClientReads()
            case .fullReader:
                return handOver()
            case .answer(let refusal):
                inbound!.moveReaderIndex(forwardBy: refusal.consumed)
                if inbound!.readableBytes == 0 { inbound = nil }
                if let reason = refusal.verification { server.metrics.verification(reason) }
                server.answeredHere(refusal.response, requestID: refusal.requestID, route: refusal.route, method: refusal.method, uri: refusal.target)
                becameIdle()
                let keepAlive = refusal.keepAlive && !server.isDraining
                context?.write(wrapOutboundOut(refusal.response.bytes(requestID: refusal.requestID, keepAlive: keepAlive, toHEAD: refusal.method == "HEAD",
                                                                     varyOrigin: state.config.cors != nil, cors: refusal.cors,
                                                                     allocator: allocator)), promise: nil)
                clientNeedsFlush = true
                if !keepAlive { return closeAfterWrites() }
            case .builtIn(let call):
                inbound!.moveReaderIndex(forwardBy: call.consumed)
                if inbound!.readableBytes == 0 { inbound = nil }
                becameIdle()
                let keepAlive = call.keepAlive && !server.isDraining
                // `*` (OPTIONS): the methods the gateway passes on.
                let star = "\(call.path)" == "*"
                let answer = star ? GatewayServer.BuiltIn(status: .ok, contentType: "text/plain", body: [])
                    : server.builtIn(path: "\(call.path)", state: state) ?? GatewayServer.BuiltIn(status: .notFound, contentType: "text/plain", body: [])
                let extra = (star ? [("allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")] : []) + (call.cors ?? [])
                context?.write(wrapOutboundOut(answer.bytes(requestID: call.requestID, keepAlive: keepAlive, toHEAD: call.isHead,
                                                            varyOrigin: state.config.cors != nil, cors: extra, allocator: allocator)), promise: nil)
                clientNeedsFlush = true
                if !keepAlive { return closeAfterWrites() }
            case .local(let call):
                inbound!.moveReaderIndex(forwardBy: call.consumed)
                if inbound!.readableBytes == 0 { inbound = nil }
                let local = LocalExchange(call)
                self.local = local
                if call.expectContinue, call.bodyLength > 0 {
                    context?.writeAndFlush(wrapOutboundOut(ByteBuffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
                }
                machine.localStarted(now: DispatchTime.now().uptimeNanoseconds, bodyToCome: call.bodyLength > 0)
                armDeadline()
                return pumpLocalBody(local)
            case .preflight(let preflight):
                inbound!.moveReaderIndex(forwardBy: preflight.consumed)
                if inbound!.readableBytes == 0 { inbound = nil }
                becameIdle()
                let keepAlive = preflight.keepAlive && !server.isDraining
                server.requestFinished(route: "-", status: 204, method: preflight.method, uri: preflight.target, requestID: preflight.requestID,
                                       started: DispatchTime.now().uptimeNanoseconds, upstream: nil, identity: nil, bytesIn: 0, bytesOut: 0, note: "CORS preflight")
                context?.write(wrapOutboundOut(preflight.bytes(allocator: allocator, keepAlive: keepAlive)), promise: nil)
                clientNeedsFlush = true
                if !keepAlive { return closeAfterWrites() }
            case .forward(let admitted):
                return begin(Exchange(admitted), consumed: admitted.head.readableBytes, sessionID: nil)
            case .awaitSession(let admitted, let sessionID):
                return begin(Exchange(admitted), consumed: admitted.head.readableBytes, sessionID: sessionID)
            }
        }
        resumeClientReads()
    }

    /// An admitted request becomes the exchange in flight: its body (if any) starts to move,
    /// and the upstream is connected, after the runtime found its session when the route needs one.
    private func begin(_ exchange: Exchange, consumed: Int, sessionID: String?) {
        inbound!.moveReaderIndex(forwardBy: consumed)
        if inbound!.readableBytes == 0 { inbound = nil }
        self.exchange = exchange
        if exchange.identity != nil {
            if validCounter == nil { validCounter = server.metrics.verificationCounter("valid") }
            validCounter!.increment()
        }
        machine.admitted(now: exchange.started, timeouts: exchange.timeouts, sessionCheck: sessionID != nil)
        armDeadline()
        if let sessionID, let identity = exchange.identity {
            // Body bytes wait in the exchange meanwhile (reads are held: no upstream yet).
            pumpBody(exchange)
            let lookup = server.sessions
            context?.eventLoop.makeFutureWithTask { try await lookup.status(of: sessionID, for: identity) }.assumeIsolated().whenComplete { result in
                guard self.exchange === exchange else { return }
                switch result {
                case .failure(let error as RuntimeTimeout):
                    self.fail(exchange, .runtimeUnavailable("\(error)"))
                case .failure(let error):
                    // The store's own error is for the log, not the client.
                    self.fail(exchange, .runtimeUnavailable("the session store failed"), note: "the session store failed: \(String(reflecting: error))")
                case .success(let status):
                    if let (reason, message) = status.check(identity, now: Timestamp.now()) {
                        self.server.metrics.verification(reason.rawValue)
                        self.fail(exchange, .auth(AuthFailure(reason, message)))
                    } else {
                        self.machine.sessionFound(now: DispatchTime.now().uptimeNanoseconds)
                        self.proceed(exchange)
                    }
                }
            }
            return
        }
        proceed(exchange)
    }

    /// Admitted, session included: the client may send its body, and the upstream is connected.
    private func proceed(_ exchange: Exchange) {
        if exchange.expectContinue {
            context?.writeAndFlush(wrapOutboundOut(ByteBuffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
        }
        pumpBody(exchange)
        connect(exchange)
    }

    /// Gives the connection to the full HTTP stack, with the bytes not used yet.
    private func handOver() {
        guard let context else { return }
        handedOver = true
        timer?.cancel()
        timer = nil
        // The full path holds reads while it works, so it never needs half-closure.
        _ = context.channel.setOption(.allowRemoteHalfClosure, value: false)
        // One read per readiness: reads stop while pipelined requests wait to be handled, and
        // a read cycle of several reads could decode thousands of them first.
        _ = context.channel.setOption(.maxMessagesPerRead, value: 1)
        let sync = context.pipeline.syncOperations
        do {
            // No NIO error handler (it answers a bare 400): ProxyServerHandler answers bytes that
            // do not parse in the gateway's vocabulary, after the requests before them.
            try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
            try sync.addHandler(ProxyServerHandler(server: server, pool: httpPool))
        } catch {
            handedOver = false  // still this handler's connection: it counts the close
            context.close(promise: nil)
            return
        }
        if let buffered = inbound {
            inbound = nil
            context.fireChannelRead(wrapInboundOut(buffered))
            context.fireChannelReadComplete()
        }
        if inputClosed { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        if pendingRead {
            pendingRead = false
            context.read()
        }
        sync.removeHandler(context: context, promise: nil)
    }

    // MARK: Local API

    /// Moves the local request's body from `inbound`; dispatches it once whole.
    private func pumpLocalBody(_ local: LocalExchange) {
        if local.remaining > 0, var buffered = inbound, buffered.readableBytes > 0 {
            let take = min(local.remaining, buffered.readableBytes)
            buffered.readWithUnsafeReadableBytes { p in
                local.body.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[..<take]))
                return take
            }
            inbound = buffered.readableBytes > 0 ? buffered : nil
            local.remaining -= take
            machine.clientBody(now: DispatchTime.now().uptimeNanoseconds)
        }
        if local.remaining == 0, !local.dispatched { dispatch(local) } else { resumeClientReads() }
    }

    /// Hands a complete local request to the API and writes its answer when it comes.
    private func dispatch(_ local: LocalExchange) {
        local.dispatched = true
        machine.localDispatched(now: DispatchTime.now().uptimeNanoseconds)
        let call = local.call
        let api = server.localAPI
        let request = LocalRequest(method: HTTPMethod(rawValue: call.method), path: call.path, query: LocalRequest.parseQuery(call.query),
                                   headers: HTTPHeaders(call.headers), body: local.body, remoteIP: remoteIP, requestID: call.requestID)
        let state = currentState()
        context?.eventLoop.makeFutureWithTask { try await withDeadline(seconds: ProxyServerHandler.localTimeout) { await api.handle(request, state: state) } }
            .assumeIsolated().whenComplete { result in
                guard self.local === local else { return }
                self.local = nil
                var response: LocalResponse
                switch result {
                case .success(let answer): response = answer
                case .failure(let error):
                    // The store hung (a database gone): 503, not a hang.
                    response = api.unavailable(request, error is RuntimeTimeout ? "\(error)" : "the runtime failed")
                    response.note = "\(String(reflecting: error))"
                }
                let keepAlive = call.keepAlive && !self.server.isDraining
                self.server.requestFinished(route: "local", status: Int(response.status.code), method: call.method, uri: call.target,
                                            requestID: call.requestID, started: local.started, upstream: nil, identity: nil,
                                            bytesIn: local.body.count, bytesOut: response.body.count, note: response.note)
                self.becameIdle()
                self.context?.write(self.wrapOutboundOut(response.bytes(requestID: call.requestID, keepAlive: keepAlive, toHEAD: call.isHead,
                                                                        cors: state.config.cors == nil ? nil : call.cors ?? [], allocator: self.allocator)), promise: nil)
                self.clientNeedsFlush = true
                if keepAlive {
                    self.flushClient()
                    self.nextRequest()
                } else {
                    self.closeAfterWrites()
                }
            }
    }

    // MARK: Upstream

    private func connect(_ exchange: Exchange) {
        if !exchange.retriedStale, let pooled = pool.takeIdle(exchange.upstream) {
            exchange.reused = true
            return send(exchange, on: pooled.channel, handler: pooled.handler)
        }
        pool.acquire(exchange.upstream, connectTimeout: exchange.route.config.connectTimeout, fresh: true).assumeIsolated().whenComplete { result in
            guard self.exchange === exchange else {
                if case .success(let acquired) = result { acquired.channel.close(promise: nil) }
                return
            }
            switch result {
            case .success(let acquired):
                exchange.reused = acquired.reused
                if !acquired.reused { self.server.upstreamHealth.connected(exchange.upstream.origin) }
                self.send(exchange, on: acquired.channel, handler: nil)
            case .failure(let error):
                self.server.upstreamHealth.connectFailed(exchange.upstream.origin, error: error)
                self.server.metrics.upstreamConnectError(exchange.upstream.origin)
                if ConnectionStateMachine.retriesConnect(idempotent: exchange.idempotent, attempt: exchange.attempt, upstreams: exchange.upstreams.count) {
                    exchange.attempt = 1
                    self.machine.reconnecting(now: DispatchTime.now().uptimeNanoseconds)
                    exchange.upstream = exchange.upstreams[1]
                    // The request line depends on the upstream (its base path); the headers do not.
                    let uri = Router.upstreamURI(route: exchange.route.config, upstream: exchange.upstream, path: exchange.path, query: exchange.forwardedQuery ?? exchange.query)
                    var request = ByteBuffer()
                    request.reserveCapacity(exchange.request.readableBytes + uri.utf8.count)
                    Admission.writeRequestLine(&request, method: exchange.method, uri: uri)
                    request.writeImmutableBuffer(exchange.request.getSlice(at: exchange.headerStart, length: exchange.request.writerIndex - exchange.headerStart)!)
                    exchange.request = request
                    return self.connect(exchange)
                }
                self.fail(exchange, .connectFailed(route: exchange.route.name, error), note: "cannot connect to \(exchange.upstream): \(ProxyServerHandler.describe(error))")
            }
        }
    }

    private func send(_ exchange: Exchange, on channel: any Channel, handler known: RawUpstreamHandler?) {
        guard let handler = known ?? (try? channel.pipeline.syncOperations.handler(type: RawUpstreamHandler.self)) else {
            channel.close(promise: nil)
            return fail(exchange, .badGateway("upstream connection unusable"))
        }
        exchange.channel = channel
        exchange.handler = handler
        handler.delegate = self
        // A pooled connection taken as the request was read: no need to read the clock again.
        let now = known != nil && exchange.attempt == 0 && !exchange.retriedStale ? exchange.started : DispatchTime.now().uptimeNanoseconds
        exchange.upstreamStarted = now
        if exchange.pendingBody.isEmpty, exchange.bodyRemaining == 0 {
            handler.send(exchange.request)
        } else {
            handler.write(exchange.request)
            for part in exchange.pendingBody { handler.write(part) }
            exchange.pendingBody.removeAll()
            handler.flush()
        }
        machine.connected(now: now, bodyToCome: exchange.bodyRemaining > 0)
        armDeadline()
        if exchange.bodyRemaining > 0 { resumeClientReads() }
    }

    /// Makes sure the connection's timer fires no later than `due`.
    private func armTimer(due: UInt64) {
        if timer != nil, timerDue <= due { return }
        timer?.cancel()
        timerDue = due
        let now = DispatchTime.now().uptimeNanoseconds
        timer = context?.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(due > now ? due - now : 0))) {
            self.timer = nil
            self.timerFired()
        }
    }

    /// Carries out what the state machine finds due.
    private func timerFired() {
        guard !closing, !handedOver else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        switch machine.check(now: now, partialHead: exchange == nil && local == nil && (inbound?.readableBytes ?? 0) > 0) {
        case .none:
            return
        case .wake(let due):
            return armTimer(due: due)
        case .expired(.idle):
            return closeAfterWrites()
        case .expired(.partialHead):
            // Part of a head came, not its end: 408 with the reason (HAProxy's http-request
            // timeout does the same); an idle connection just closes.
            let partial = inbound?.readableBytes ?? 0
            inbound = nil
            return answerAndClose(ErrorResponse(status: .requestTimeout, error: "request_timeout",
                                                reason: "the request head was not complete within \(Duration.describe(Double(machine.clientIdle) / 1e9)) (idle_timeout)"),
                                  started: now &- machine.clientIdle, bytesIn: partial)
        case .expired(.localBodyStalled):
            local = nil
            return closeAfterWrites()
        case .expired(let expiry):
            guard let exchange else { return }
            let route = exchange.route.config
            switch expiry {
            case .sessionCheck: fail(exchange, .runtimeUnavailable("the runtime did not answer the session check"))
            case .connect: fail(exchange, .gatewayTimeout("connecting to the upstream of route \(route.name) timed out"))
            case .requestBody:
                fail(exchange, ErrorResponse(status: .requestTimeout, error: "request_timeout",
                                             reason: "the request body stalled for \(Duration.describe(route.idleTimeout)) with \(exchange.bodyRemaining) bytes to go"))
            case .firstByte: fail(exchange, .gatewayTimeout("no response from upstream within \(Duration.describe(route.firstByteTimeout))"))
            default: abort(exchange, note: "upstream idle for \(Duration.describe(route.idleTimeout))")
            }
        }
    }

    var upstreamMayRead: Bool { clientWritable }

    func upstreamReadComplete() { flushClient() }

    func upstream(bytes: ByteBuffer) {
        guard let exchange else { return }
        var bytes = bytes
        if exchange.framing == nil {
            if exchange.responseHead == nil {
                exchange.responseHead = bytes
            } else {
                exchange.responseHead!.writeBuffer(&bytes)
            }
            guard let rest = readResponseHead(exchange) else { return }
            bytes = rest
        } else {
            exchange.lastActivity = DispatchTime.now().uptimeNanoseconds
            machine.upstreamBytes(now: exchange.lastActivity)
        }
        forwardBody(exchange, bytes)
        writeStaged()
    }

    /// Parses the buffered response head once complete: stages the client's head and returns
    /// the bytes after it. Nil while incomplete or when the exchange ended.
    private func readResponseHead(_ exchange: Exchange) -> ByteBuffer? {
        let corsOn = exchange.corsOn
        while var buffered = exchange.responseHead {
            var out = takeScratch(&responseScratch, capacity: buffered.readableBytes + 96)
            let head = buffered.withUnsafeReadableBytes { responseReader.read($0, requestIsHead: exchange.isHead, corsOn: corsOn, into: &out) }
            switch head {
            case .incomplete:
                responseScratch = out
                return nil
            case .malformed(let why):
                responseScratch = out
                fail(exchange, .badGateway("upstream answered badly: \(why)"))
                return nil
            case .informational(let end):
                responseScratch = out
                buffered.moveReaderIndex(forwardBy: end)
                exchange.responseHead = buffered.readableBytes > 0 ? buffered : nil
                continue
            case .ready(let head):
                buffered.moveReaderIndex(forwardBy: head.end)
                exchange.responseHead = nil
                exchange.status = head.status
                let now = DispatchTime.now().uptimeNanoseconds
                latencyTimer(exchange.route.name).recordNanoseconds(Int64(now - exchange.upstreamStarted))
                let untilClose = if case .untilClose = head.framing { true } else { false }
                exchange.framing = head.framing
                // A body that ends at close ends both connections; an answer that came before the
                // request body was all sent leaves its rest unread, so neither carries another request.
                let keepAlive = ConnectionStateMachine.keepAlive(clientKeepAlive: exchange.keepAlive, draining: server.isDraining, upstreamClose: head.upstreamClose,
                                                                 untilClose: untilClose, bodyToCome: exchange.bodyRemaining > 0)
                exchange.upstreamKeepAlive = keepAlive.upstream
                exchange.clientClose = !keepAlive.client
                // The answer to this request (no Origin) would differ for one with an Origin.
                if corsOn { out.writeStaticString("vary: Origin\r\n") }
                for (name, value) in exchange.cors ?? [] { out.writeString("\(name): \(value)\r\n") }
                exchange.writeRequestIDField(into: &out, close: exchange.clientClose)
                staged = out
                clientNeedsFlush = true
                exchange.lastActivity = now
                machine.upstreamBytes(now: now)
                armDeadline()
                return buffered
            }
        }
        return nil
    }

    private func forwardBody(_ exchange: Exchange, _ bytes: ByteBuffer) {
        guard let framing = exchange.framing else { return }
        var bytes = bytes
        switch framing {
        case .none:
            complete(exchange, excess: bytes.readableBytes > 0, at: exchange.lastActivity)
        case .length(let remaining):
            let take = min(remaining, bytes.readableBytes)
            if take > 0, let part = bytes.readSlice(length: take) { write(exchange, part) }
            if take == remaining {
                complete(exchange, excess: bytes.readableBytes > 0, at: exchange.lastActivity)
            } else {
                exchange.framing = .length(remaining - take)
            }
        case .chunked(var scanner):
            let outcome = bytes.withUnsafeReadableBytes { scanner.scan($0) }
            switch outcome {
            case .more:
                exchange.framing = .chunked(scanner)
                if bytes.readableBytes > 0 { write(exchange, bytes) }
            case .ends(let count):
                if let part = bytes.readSlice(length: count) { write(exchange, part) }
                complete(exchange, excess: bytes.readableBytes > 0, at: exchange.lastActivity)
            case .malformed:
                abort(exchange, note: "upstream sent malformed chunked framing")
            }
        case .untilClose:
            if bytes.readableBytes > 0 { write(exchange, bytes) }
        }
    }

    private func write(_ exchange: Exchange, _ bytes: ByteBuffer) {
        exchange.bytesOut += bytes.readableBytes
        clientNeedsFlush = true
        if staged != nil, bytes.readableBytes <= Self.coalesceLimit {
            staged!.writeImmutableBuffer(bytes)
            return
        }
        writeStaged()
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    /// A small body part that arrived with the response head goes out in the same buffer.
    private static let coalesceLimit = 16 * 1024

    private func writeStaged() {
        guard let head = staged else { return }
        staged = nil
        context?.write(wrapOutboundOut(head), promise: nil)
        if head.capacity <= Self.scratchLimit { responseScratch = head }
    }

    private func flushClient() {
        if let head = staged {
            staged = nil
            clientNeedsFlush = false
            context?.writeAndFlush(wrapOutboundOut(head), promise: nil)
            if head.capacity <= Self.scratchLimit { responseScratch = head }
            return
        }
        guard clientNeedsFlush else { return }
        clientNeedsFlush = false
        context?.flush()
    }

    /// The response went out whole.
    /// `now`: the time of the upstream read that ended it, if it just happened.
    private func complete(_ exchange: Exchange, excess: Bool, at now: UInt64? = nil) {
        self.exchange = nil
        finish(exchange, status: exchange.status, reusable: exchange.upstreamKeepAlive && !excess, note: nil)
        becameIdle(at: now ?? DispatchTime.now().uptimeNanoseconds)
        // The upstream connection is detached now, so its read-complete will not flush for us.
        flushClient()
        if exchange.clientClose {
            closeAfterWrites()
        } else {
            nextRequest()
        }
    }

    /// The response broke off after its head went out: the client connection ends too, so the
    /// client sees a truncated response rather than a wrong one.
    private func abort(_ exchange: Exchange, note: String) {
        self.exchange = nil
        finish(exchange, status: exchange.status, reusable: false, note: note)
        closeAfterWrites()
    }

    /// Answers what is not a request that can be read (no request id of its own, no route),
    /// then closes: what follows in the connection cannot be read as requests.
    private func answerAndClose(_ response: ErrorResponse, started: UInt64 = DispatchTime.now().uptimeNanoseconds, bytesIn: Int = 0) {
        let requestID = RequestIDs.next()
        server.answeredHere(response, requestID: requestID, started: started, bytesIn: bytesIn)
        context?.write(wrapOutboundOut(response.bytes(requestID: requestID, keepAlive: false, allocator: allocator)), promise: nil)
        closeAfterWrites()
    }

    private func closeAfterWrites() {
        writeStaged()
        closing = true
        machine.close()
        inbound = nil
        clientNeedsFlush = false
        guard let context else { return }
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { _ in self.context?.close(promise: nil) }
    }

    func upstreamClosed(error: (any Error)?) {
        guard let exchange else { return }
        if exchange.framing == nil {
            if ConnectionStateMachine.retriesStale(reused: exchange.reused, responseStarted: exchange.responseHead != nil, alreadyRetried: exchange.retriedStale,
                                                   idempotent: exchange.idempotent, hasBody: exchange.bodyLength > 0) {
                // A pooled connection the upstream had closed meanwhile: once more on a fresh one.
                exchange.retriedStale = true
                machine.reconnecting(now: DispatchTime.now().uptimeNanoseconds)
                exchange.handler?.delegate = nil
                exchange.channel = nil
                exchange.handler = nil
                return connect(exchange)
            }
            return fail(exchange, .badGateway(error.map { "upstream connection failed: \(ProxyServerHandler.describe($0))" } ?? "upstream closed the connection before answering"))
        }
        if case .untilClose = exchange.framing {
            exchange.upstreamKeepAlive = false
            return complete(exchange, excess: false)
        }
        abort(exchange, note: "upstream closed mid-response")
    }

    /// The exchange failed before a response head went out: answer here. The connection stays
    /// usable unless body bytes are still to come.
    /// `note`: the access log's reason, when it says more than the answer may.
    private func fail(_ exchange: Exchange, _ response: ErrorResponse, note: String? = nil) {
        self.exchange = nil
        // The answer's body is what goes out (none to HEAD).
        if !exchange.isHead { exchange.bytesOut = response.body(requestID: exchange.requestID).utf8.count }
        finish(exchange, status: Int(response.status.code), reusable: false, note: note ?? response.reason)
        becameIdle()
        // With body bytes still to come, the connection cannot be read as requests again.
        let keepAlive = exchange.keepAlive && !server.isDraining && exchange.bodyRemaining == 0
        context?.write(wrapOutboundOut(response.bytes(requestID: exchange.requestID, keepAlive: keepAlive, toHEAD: exchange.isHead,
                                                     varyOrigin: exchange.corsOn, cors: exchange.cors, allocator: allocator)), promise: nil)
        clientNeedsFlush = true
        if keepAlive {
            flushClient()
            nextRequest()
        } else {
            closeAfterWrites()
        }
    }

    /// Ends an exchange that is no longer current: the upstream connection goes back to the pool
    /// or is closed, and the request is counted and logged.
    private func finish(_ exchange: Exchange, status: Int, reusable: Bool, note: String?) {
        if let channel = exchange.channel {
            exchange.handler?.delegate = nil
            if reusable {
                pool.release(channel, exchange.upstream, handler: exchange.handler)
                if server.upstreamHealth.anyRecorded { server.upstreamHealth.served(exchange.upstream.origin) }
            } else {
                channel.close(promise: nil)
            }
        }
        requestCounter(exchange.route.name, status).increment()
        server.requestFinished(route: exchange.route.name, status: status, counted: true, method: exchange.method, uri: exchange.target,
                               requestID: exchange.requestID, started: exchange.started, upstream: exchange.channel == nil ? nil : exchange.upstream,
                               identity: exchange.identity, bytesIn: exchange.bytesIn, bytesOut: exchange.bytesOut, note: note)
    }
}
