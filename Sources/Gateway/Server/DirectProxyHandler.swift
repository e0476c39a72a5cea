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
    private var fields: [HTTPScan.Field] = []
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
    private var idleSince: UInt64 = 0
    private let idleTimeout: UInt64
    /// A response head not written yet, so a small body can join it in one write.
    private var staged: ByteBuffer?
    /// The last upstream request and response head written: their storage is used again
    /// for the next ones once nothing else holds it (written out, exchange over), which
    /// saves two allocations per request.
    private var requestScratch: ByteBuffer?
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
        idleTimeout = UInt64(server.state.config.server.clientIdleTimeout * 1e9)
        fields.reserveCapacity(32)
    }

    /// How an upstream response body ends.
    enum Framing {
        case none
        case length(Int)
        case chunked(ChunkedScanner)
        case untilClose
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
        var corsOn = false

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

        /// When the exchange times out: no response head within the first-byte timeout, or
        /// nothing from the upstream for the idle timeout.
        var deadline: UInt64 {
            if framing != nil { return lastActivity &+ route.idleNanos }
            // Connecting: the connect timeout answers first; this is only a backstop.
            if channel == nil { return started &+ route.connectNanos &+ 1_000_000_000 }
            // The client is still sending the body: it may pause for the idle timeout.
            if bodyRemaining > 0 { return bodyActivity &+ route.idleNanos }
            return requestSent &+ route.firstByteNanos
        }

        /// Content-Length body: bytes not yet read from the client, parts read before the
        /// upstream connection was ready, bytes read in all.
        let bodyLength: Int
        var bodyRemaining: Int
        var pendingBody: [ByteBuffer] = []
        var bytesIn = 0
        var bodyActivity: UInt64 = 0
        /// The client waits for `100 Continue` before it sends the body.
        var expectContinue = false
        /// When the whole request had been written to the upstream.
        var requestSent: UInt64 = 0

        init(route: RouteEntry, head: ByteBuffer, methodRange: Range<Int>, targetRange: Range<Int>,
             requestIDLength: Int, isHead: Bool, idempotent: Bool, keepAlive: Bool, identity: Identity?, request: ByteBuffer,
             headerStart: Int, upstreams: [Upstream], bodyLength: Int) {
            self.bodyLength = bodyLength
            self.bodyRemaining = bodyLength
            self.bodyActivity = started
            self.route = route
            self.head = head
            self.methodRange = methodRange
            self.targetRange = targetRange
            self.requestIDLength = requestIDLength
            self.isHead = isHead
            self.idempotent = idempotent
            self.keepAlive = keepAlive
            self.identity = identity
            self.request = request
            self.headerStart = headerStart
            self.upstreams = upstreams
            self.upstream = upstreams[0]
        }
    }

    // MARK: Connection

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        remoteIP = context.channel.remoteAddress?.ipAddress ?? ""
        forwarding = Self.forwardedForName + Array("\(remoteIP)\r\nx-forwarded-proto: http\r\nx-real-ip: \(remoteIP)\r\nx-forwarded-host: ".utf8)
        allocator = context.channel.allocator
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
        idleSince = now
        armTimer(due: idleSince &+ idleTimeout)
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
            if exchange == nil, !closing { closeAfterWrites() }
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            if let exchange, exchange.bodyRemaining > 0, exchange.framing == nil {
                // The client stopped sending before its body was whole and no answer has begun:
                // the request can never be complete, so neither connection waits for the idle
                // timeout. (An answer already under way, say an early 413, is let finish.)
                self.exchange = nil
                finish(exchange, status: 499, reusable: false, note: "client closed with \(exchange.bodyRemaining) body bytes to go")
                return context.close(promise: nil)
            }
            if exchange == nil { nextRequest() }
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
        if inputClosed, exchange == nil, !closing, !handedOver { return closeAfterWrites() }
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
        exchange.bodyActivity = DispatchTime.now().uptimeNanoseconds
        guard let handler = exchange.handler else {
            exchange.pendingBody.append(part)
            return
        }
        handler.write(part)
        if exchange.bodyRemaining == 0 {
            handler.flush()
            requestSent(exchange)
        } else {
            upstreamNeedsFlush = true
        }
    }

    private func requestSent(_ exchange: Exchange, at now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        exchange.requestSent = now
        armTimer(due: exchange.deadline)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        clientWritable = context.channel.isWritable
        if clientWritable {
            if let exchange { exchange.handler?.resumeReading() } else { nextRequest() }
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

    private enum Decision {
        case wait
        case handOver
        case forward(Exchange, consumed: Int)
        /// Answered here: a refused token or no route (a body, if any, is never read: the
        /// connection closes after the answer).
        case reject(Rejection, consumed: Int)
    }

    final class Rejection {
        let response: ErrorResponse
        let verification: String?
        let route: String
        let method: String
        let target: String
        let requestID: String
        let keepAlive: Bool

        init(response: ErrorResponse, verification: String?, route: String, method: String, target: String, requestID: String, keepAlive: Bool) {
            self.response = response
            self.verification = verification
            self.route = route
            self.method = method
            self.target = target
            self.requestID = requestID
            self.keepAlive = keepAlive
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
        while exchange == nil, !handedOver, !closing, let buffered = inbound, buffered.readableBytes > 0 {
            // Answers made here wait while the client is not reading them: a client that
            // pipelines requests and never reads cannot make the gateway hold their answers.
            // Reads stop too once `inbound` is full; writability coming back resumes.
            guard clientWritable else { return flushClient() }
            let state = currentState()
            let decision = buffered.withUnsafeReadableBytes { examine($0, buffer: buffered, state: state) }
            switch decision {
            case .wait:
                let limit = state.config.server.maxHeaderBytes
                if buffered.readableBytes > limit + 4 {
                    // No end of head within the limit: 431, and the connection ends (what
                    // follows cannot be read as requests).
                    inbound = nil
                    return answerAndClose(.headersTooLarge("request head is over \(limit) bytes, the limit"))
                }
                return resumeClientReads()
            case .handOver:
                return handOver()
            case .reject(let rejection, let consumed):
                inbound!.moveReaderIndex(forwardBy: consumed)
                if inbound!.readableBytes == 0 { inbound = nil }
                if let reason = rejection.verification { server.metrics.verification(reason) }
                server.answeredHere(rejection.response, requestID: rejection.requestID, route: rejection.route, method: rejection.method, uri: rejection.target)
                becameIdle()
                let keepAlive = rejection.keepAlive && !server.isDraining
                context?.write(wrapOutboundOut(rejection.response.bytes(requestID: rejection.requestID, keepAlive: keepAlive, toHEAD: rejection.method == "HEAD",
                                                                       varyOrigin: state.config.cors != nil,
                                                                       allocator: allocator)), promise: nil)
                clientNeedsFlush = true
                if !keepAlive { return closeAfterWrites() }
            case .forward(let exchange, let consumed):
                inbound!.moveReaderIndex(forwardBy: consumed)
                if inbound!.readableBytes == 0 { inbound = nil }
                self.exchange = exchange
                if exchange.identity != nil {
                    if validCounter == nil { validCounter = server.metrics.verificationCounter("valid") }
                    validCounter!.increment()
                }
                if exchange.expectContinue {
                    // Admitted (route, token, policy): the client may send the body now.
                    context?.writeAndFlush(wrapOutboundOut(ByteBuffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
                }
                pumpBody(exchange)
                connect(exchange)
                return
            }
        }
        resumeClientReads()
    }

    /// Reads one request head from the client's bytes (`p`, the readable bytes of `buffer`)
    /// and decides what happens to it.
    private func examine(_ p: UnsafeRawBufferPointer, buffer: ByteBuffer, state: GatewayState) -> Decision {
        guard let end = HTTPScan.headEnd(p) else { return .wait }
        if server.isDraining || end > state.config.server.maxHeaderBytes { return .handOver }

        // Request line: method SP origin-form SP HTTP/1.1 CRLF. A method here is upper-case
        // letters and '-' (every method NIOHTTP1 knows is): any other token (get, patch) goes to
        // the full path, which refuses what its parser does not know, so a route's `methods`
        // are never passed by a spelling an upstream might read as the same method.
        var i = 0
        while i < end, (p[i] >= 0x41 && p[i] <= 0x5A) || p[i] == UInt8(ascii: "-") { i += 1 }
        guard i > 0, i < end, p[i] == HTTPScan.sp else { return .handOver }
        let methodRange = 0..<i
        i += 1
        let targetStart = i
        if methodRange.count == 7, HTTPScan.equals(p, methodRange, "CONNECT") {
            // Whatever the target's form: answered here, with its reason (NIOHTTP1 would take
            // what follows as a tunnel and give the answer no body), and the connection ends.
            while i < end, p[i] > 0x20 { i += 1 }
            return .reject(Rejection(response: .connectNotSupported, verification: nil, route: "-", method: "CONNECT",
                                     target: HTTPScan.string(p, targetStart..<i), requestID: RequestIDs.next(), keepAlive: false), consumed: end)
        }
        guard i < end, p[i] == UInt8(ascii: "/") else { return .handOver }
        // A fragment ('#') stops the target here: the full path answers it.
        while i < end, p[i] > 0x20, p[i] != 0x7F, p[i] != UInt8(ascii: "#") { i += 1 }
        let targetRange = targetStart..<i
        guard i + 10 <= end, p[i] == HTTPScan.sp else { return .handOver }
        guard HTTPScan.equals(p, i + 1, "HTTP/1.1"), p[i + 9] == HTTPScan.cr, p[i + 10] == HTTPScan.lf else { return .handOver }
        let linesStart = i + 11

        fields.removeAll(keepingCapacity: true)
        guard HTTPScan.fields(p, from: linesStart, to: end, into: &fields) else { return .handOver }

        // What the request says about itself; every header the gateway owns or drops is
        // noted, the rest is copied as it came.
        var host: Range<Int>? = nil, authorization: Range<Int>? = nil, apikey: Range<Int>? = nil
        var cookie: Range<Int>? = nil, requestIDField: Range<Int>? = nil, forwardedFor: Range<Int>? = nil
        var keepAlive = true
        var contentLength: Int? = nil
        var expectContinue = false
        var dropped = HTTPScan.FieldMask()  // not copied to the upstream
        var overrides: [Int] = []  // method-override headers, dropped unless the route allows them
        for (index, field) in fields.enumerated() {
            let name = field.name
            switch name.count {
            case 4 where HTTPScan.equalsLowercase(p, name, "host"):
                guard host == nil else { return .handOver }
                host = field.value
            case 13 where HTTPScan.equalsLowercase(p, name, "authorization"):
                guard authorization == nil else { return .handOver }
                authorization = field.value
            case 6 where HTTPScan.equalsLowercase(p, name, "apikey"):
                guard apikey == nil else { return .handOver }
                apikey = field.value
            case 6 where HTTPScan.equalsLowercase(p, name, "cookie"):
                guard cookie == nil else { return .handOver }
                cookie = field.value
            case 6 where HTTPScan.equalsLowercase(p, name, "origin"):
                // A browser's request under a [cors] policy: the full path adds the CORS headers.
                if state.config.cors != nil { return .handOver }
            case 6 where HTTPScan.equalsLowercase(p, name, "expect"):
                // 100-continue is answered here once the request is admitted; other
                // expectations go to the full path.
                guard !expectContinue, HTTPScan.equalsLowercase(p, field.value, "100-continue") else { return .handOver }
                expectContinue = true
                dropped.insert(index)
            case 7 where HTTPScan.equalsLowercase(p, name, "upgrade"):
                return .handOver
            case 14 where HTTPScan.equalsLowercase(p, name, "content-length"):
                guard contentLength == nil, let length = HTTPScan.decimal(p, field.value) else { return .handOver }
                contentLength = length
            case 17 where HTTPScan.equalsLowercase(p, name, "transfer-encoding"):
                return .handOver
            case 10 where HTTPScan.equalsLowercase(p, name, "connection"):
                var other = false
                HTTPScan.listElements(p, field.value) { token in
                    if HTTPScan.equalsLowercase(p, token, "close") {
                        keepAlive = false
                    } else if !HTTPScan.equalsLowercase(p, token, "keep-alive") {
                        other = true
                    }
                }
                if other { return .handOver }  // a header named as hop-by-hop: the full path removes it
                dropped.insert(index)
            case 12 where HTTPScan.equalsLowercase(p, name, "x-request-id"):
                // The first one, as the full path reads it.
                if requestIDField == nil { requestIDField = field.value }
                dropped.insert(index)
            case 15 where HTTPScan.equalsLowercase(p, name, "x-forwarded-for"):
                guard forwardedFor == nil else { return .handOver }
                forwardedFor = field.value
                dropped.insert(index)
            default:
                // The forwarding headers the gateway writes, also spelled with underscores
                // (CGI-style backends read X_Forwarded_For as X-Forwarded-For).
                if HTTPScan.isAny(p, name, of: HopByHop.nameBytes) || HTTPScan.isAny(p, name, of: HopByHop.writtenByGatewayBytes, underscoreAsDash: true) {
                    dropped.insert(index)
                } else if name.count >= 13, name.count <= 22, HTTPScan.isAny(p, name, of: HopByHop.methodOverrideBytes, underscoreAsDash: true) {
                    overrides.append(index)
                }
            }
            // The identity namespace, in any case and with `_` for `-`.
            if state.mayBeOwnedHeader(length: name.count), state.ownedHeaders.contains(HTTPScan.canonicalName(p, name)) { dropped.insert(index) }
        }
        // A name with its trailing dot is forwarded without it: the full path rewrites Host.
        guard let host, HTTPScan.isValidHost(p, host), HTTPScan.hostTrailingDot(p, host) == nil else { return .handOver }

        // The path, read as bytes. Raw non-ASCII goes to the full path, which routes it as a
        // string; anything that could spell a dot segment or an encoding is checked as there.
        var pathEnd = targetRange.lowerBound
        var suspicious = false, previousSlash = false
        while pathEnd < targetRange.upperBound, p[pathEnd] != UInt8(ascii: "?") {
            let b = p[pathEnd]
            if b >= 0x80 { return .handOver }
            if b == UInt8(ascii: "%") || b == UInt8(ascii: ".") || b == UInt8(ascii: "\\") || b == UInt8(ascii: ";") || (b == UInt8(ascii: "/") && previousSlash) { suspicious = true }
            previousSlash = b == UInt8(ascii: "/")
            pathEnd += 1
        }
        let pathRange = targetRange.lowerBound..<pathEnd
        let queryRange: Range<Int>? = pathEnd < targetRange.upperBound ? (pathEnd + 1)..<targetRange.upperBound : nil
        if suspicious, Router.unsafePath(HTTPScan.string(p, pathRange)) != nil { return .handOver }
        if HTTPScan.equals(p, pathRange, "/healthz") || HTTPScan.equals(p, pathRange, "/readyz") || HTTPScan.equals(p, pathRange, "/metrics")
            || server.localAPI.owns(UnsafeRawBufferPointer(rebasing: p[pathRange])) {
            return .handOver
        }
        let givenRequestID = requestIDField.flatMap { RequestIDs.isValid(UnsafeRawBufferPointer(rebasing: p[$0])) ? $0 : nil }
        func requestIDString() -> String { givenRequestID.map { HTTPScan.string(p, $0) } ?? RequestIDs.next() }
        // A refused request's body is not read: the connection closes after the answer, so
        // body bytes can never be taken for the next request.
        let keepAliveAfterRefusal = keepAlive && (contentLength ?? 0) == 0

        // Route.
        guard let entry = state.route(p, method: methodRange, host: HTTPScan.hostNameRange(p, host), path: pathRange) else {
            return .reject(Rejection(response: .noRoute, verification: nil, route: "-", method: HTTPScan.string(p, methodRange),
                                     target: HTTPScan.string(p, targetRange), requestID: requestIDString(), keepAlive: keepAliveAfterRefusal),
                           consumed: end)
        }
        if entry.sessionRequired { return .handOver }
        if !overrides.isEmpty {
            // Which of them the route takes is the full path's decision (it reads names).
            if !entry.config.methodOverrides.isEmpty { return .handOver }
            for index in overrides { dropped.insert(index) }
        }
        let bodyLimit = state.config.server.maxBodyBytes
        if bodyLimit > 0, (contentLength ?? 0) > bodyLimit { return .handOver }  // 413, said by the full path

        // Token and policy.
        var identity: Identity? = nil
        if entry.auth != .public {
            let token = findToken(p, sources: state.config.auth.tokenSources, authorization: authorization, apikey: apikey, cookie: cookie, query: queryRange)
            let outcome: Authenticator.Outcome
            switch token {
            case .unsupported: return .handOver
            case .none where entry.auth == .optional: outcome = .pass(nil)
            case .none: outcome = state.authenticator.authenticate(route: entry.config, token: nil)
            case .found(let range): outcome = state.authenticator.authenticate(route: entry.config, token: UnsafeRawBufferPointer(rebasing: p[range]))
            }
            switch outcome {
            case .pass(let who):
                identity = who
            case .refuse(let failure):
                return .reject(Rejection(response: .auth(failure), verification: failure.reason.rawValue, route: entry.name,
                                         method: HTTPScan.string(p, methodRange), target: HTTPScan.string(p, targetRange),
                                         requestID: requestIDString(), keepAlive: keepAliveAfterRefusal), consumed: end)
            }
        }
        if !entry.forwardAuthorization {
            for source in state.config.auth.tokenSources {
                switch source {
                case .cookie: if cookie != nil { return .handOver }
                case .query: if queryRange != nil { return .handOver }
                case .authorization, .apikey: break
                }
            }
            for (index, field) in fields.enumerated()
            where HTTPScan.equalsLowercase(p, field.name, "authorization") || HTTPScan.equalsLowercase(p, field.name, "apikey") {
                dropped.insert(index)
            }
        }

        // The upstream request: the request line (as it came when the target is unchanged),
        // the client's header lines not dropped (copied in runs), then the gateway's own.
        let upstreams = state.upstreams(for: entry)
        var block = takeScratch(&requestScratch, capacity: end + 320 + (identity == nil ? 0 : 512))
        if !entry.targetUnchanged {
            let query = queryRange.map { Substring(HTTPScan.string(p, $0)) }
            let uri = Router.upstreamURI(route: entry.config, upstream: upstreams[0], path: HTTPScan.string(p, pathRange), query: query)
            Self.writeRequestLine(&block, method: HTTPScan.string(p, methodRange), uri: uri)
        }
        let headerStart = entry.targetUnchanged ? linesStart : block.writerIndex
        // The request line when unchanged, and the client's header lines not dropped, in runs.
        block.writeWithUnsafeMutableBytes(minimumWritableBytes: end) { room in
            var out = ByteWriter(room)
            out.putRuns(p, fields: fields, dropped: dropped, first: entry.targetUnchanged ? 0..<linesStart : nil)
            return out.count
        }
        func add(_ name: String, _ value: String) {
            block.writeString(name)
            block.writeStaticString(": ")
            block.writeString(value)
            block.writeStaticString("\r\n")
        }
        if let identity {
            let identityConfig = state.config.identity
            if let user = identity.userID, !identityConfig.userID.isEmpty { add(identityConfig.userID, user) }
            if let role = identity.role, !identityConfig.role.isEmpty { add(identityConfig.role, role) }
            if let session = identity.sessionID, !identityConfig.sessionID.isEmpty { add(identityConfig.sessionID, session) }
            if !identityConfig.tenantID.isEmpty { add(identityConfig.tenantID, identity.tenantID) }
            if !identityConfig.claims.isEmpty { add(identityConfig.claims, identity.token.payloadSegment) }
        }
        // The forwarding headers (made once per connection: x-forwarded-for, -proto, x-real-ip,
        // the start of x-forwarded-host), the host, the request id.
        let requestNumber: UInt64 = givenRequestID == nil ? RequestIDs.nextNumber() : 0
        var requestIDLength = 0
        let forwardedForLength: Int = forwardedFor?.count ?? 0
        let requestIDRoom: Int = givenRequestID?.count ?? RequestIDs.maximumLength
        let room: Int = forwarding.count + forwardedForLength + host.count + requestIDRoom + 24
        block.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { room in
            var out = ByteWriter(room)
            forwarding.withUnsafeBytes { forwarding in
                if let forwardedFor {
                    let name = Self.forwardedForName.count
                    out.put(UnsafeRawBufferPointer(rebasing: forwarding[..<name]))
                    out.put(p, forwardedFor)
                    out.put(", ")
                    out.put(UnsafeRawBufferPointer(rebasing: forwarding[name...]))
                } else {
                    out.put(forwarding)
                }
            }
            out.put(p, host)
            out.put("\r\nx-request-id: ")
            let idStart = out.count
            if let given = givenRequestID { out.put(p, given) } else { RequestIDs.put(requestNumber, into: &out) }
            requestIDLength = out.count - idStart
            out.put("\r\n\r\n")
            return out.count
        }
        if block.capacity <= Self.scratchLimit { requestScratch = block }

        let isHead = HTTPScan.equals(p, methodRange, "HEAD")
        let idempotent = isHead || HTTPScan.equals(p, methodRange, "GET") || HTTPScan.equals(p, methodRange, "PUT")
            || HTTPScan.equals(p, methodRange, "DELETE") || HTTPScan.equals(p, methodRange, "OPTIONS") || HTTPScan.equals(p, methodRange, "TRACE")
        let exchange = Exchange(route: entry, head: buffer.getSlice(at: buffer.readerIndex, length: end)!, methodRange: methodRange,
                                targetRange: targetRange,
                                requestIDLength: requestIDLength, isHead: isHead,
                                idempotent: idempotent, keepAlive: keepAlive, identity: identity, request: block, headerStart: headerStart,
                                upstreams: upstreams, bodyLength: contentLength ?? 0)
        exchange.expectContinue = expectContinue && (contentLength ?? 0) > 0
        exchange.corsOn = state.config.cors != nil
        return .forward(exchange, consumed: end)
    }

    private static let forwardedForName = Array("x-forwarded-for: ".utf8)

    /// `x-forwarded-for: IP\r\nx-forwarded-proto: http\r\nx-real-ip: IP\r\nx-forwarded-host: `
    /// for this connection's client.
    private var forwarding: [UInt8] = []

    private enum FoundToken {
        case none
        case found(Range<Int>)
        /// Where the token is would need decoding (percent-encoded query): the full path does it.
        case unsupported
    }

    /// The first token in the configured sources, as a range of the request bytes.
    /// The first token in the configured sources. Every source is looked at: a token cookie
    /// given twice or a query token anywhere sends the request to the full path, which refuses
    /// duplicates (as it does whatever source came first) or decodes and verifies the query.
    private func findToken(_ p: UnsafeRawBufferPointer, sources: [TokenSource], authorization: Range<Int>?, apikey: Range<Int>?,
                           cookie: Range<Int>?, query: Range<Int>?) -> FoundToken {
        var found: Range<Int>? = nil
        for source in sources {
            switch source {
            case .authorization:
                if found == nil, let value = authorization, let token = HTTPScan.bearerToken(p, value) { found = token }
            case .apikey:
                if found == nil, let value = apikey, !value.isEmpty { found = value }
            case .cookie(let name):
                if let value = cookie, let token = HTTPScan.cookie(p, value, named: name) {
                    if HTTPScan.cookie(p, token.upperBound..<value.upperBound, named: name) != nil { return .unsupported }
                    if found == nil { found = token }
                }
            case .query(let name):
                guard let query else { continue }
                // A token here, or a name that is percent-encoded (it may decode to the token's
                // name): the full path decodes and verifies it.
                for pair in HTTPScan.string(p, query).split(separator: "&")
                where (pair.hasPrefix(name + "=") && pair.count > name.count + 1) || pair.prefix(while: { $0 != "=" }).contains("%") {
                    return .unsupported
                }
            }
        }
        return found.map { .found($0) } ?? .none
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
                if exchange.idempotent, exchange.attempt == 0, exchange.upstreams.count > 1 {
                    exchange.attempt = 1
                    exchange.upstream = exchange.upstreams[1]
                    // The request line depends on the upstream (its base path); the headers do not.
                    let uri = Router.upstreamURI(route: exchange.route.config, upstream: exchange.upstream, path: exchange.path, query: exchange.query)
                    var request = ByteBuffer()
                    request.reserveCapacity(exchange.request.readableBytes + uri.utf8.count)
                    Self.writeRequestLine(&request, method: exchange.method, uri: uri)
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
        if exchange.bodyRemaining == 0 {
            requestSent(exchange, at: now)
        } else {
            armTimer(due: exchange.deadline)
            resumeClientReads()
        }
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

    private func timerFired() {
        guard let exchange else {
            guard !closing, !handedOver else { return }
            let due = idleSince &+ idleTimeout
            if DispatchTime.now().uptimeNanoseconds < due { return armTimer(due: due) }
            if let partial = inbound, partial.readableBytes > 0 {
                // Part of a head came, not its end: 408 with the reason (HAProxy's
                // http-request timeout does the same); an idle connection just closes.
                inbound = nil
                return answerAndClose(ErrorResponse(status: .requestTimeout, error: "request_timeout",
                                                    reason: "the request head was not complete within \(Duration.describe(Double(idleTimeout) / 1e9)) (idle_timeout)"),
                                      started: idleSince, bytesIn: partial.readableBytes)
            }
            return closeAfterWrites()
        }
        let due = exchange.deadline
        if DispatchTime.now().uptimeNanoseconds < due { return armTimer(due: due) }
        if exchange.framing == nil, exchange.channel != nil, exchange.bodyRemaining > 0 {
            fail(exchange, ErrorResponse(status: .requestTimeout, error: "request_timeout",
                                         reason: "the request body stalled for \(Duration.describe(exchange.route.config.idleTimeout)) with \(exchange.bodyRemaining) bytes to go"))
        } else if exchange.framing == nil {
            fail(exchange, .gatewayTimeout("no response from upstream within \(Duration.describe(exchange.route.config.firstByteTimeout))"))
        } else {
            abort(exchange, note: "upstream idle for \(Duration.describe(exchange.route.config.idleTimeout))")
        }
    }

    static func writeRequestLine(_ buffer: inout ByteBuffer, method: String, uri: String) {
        buffer.writeString(method)
        buffer.writeStaticString(" ")
        buffer.writeString(uri)
        buffer.writeStaticString(" HTTP/1.1\r\n")
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
        }
        forwardBody(exchange, bytes)
        writeStaged()
    }

    /// Parses the buffered response head once complete: stages the client's head and returns
    /// the bytes after it. Nil while incomplete or when the exchange ended.
    private func readResponseHead(_ exchange: Exchange) -> ByteBuffer? {
        let corsOn = exchange.corsOn
        while var buffered = exchange.responseHead {
            enum Head { case incomplete, informational(Int), malformed(String), ready(Int) }
            var contentLength: Int? = nil, chunked = false, upstreamClose = false, status = 0, http10 = false
            var out = ByteBuffer()
            let head: Head = buffered.withUnsafeReadableBytes { p in
                // The limit holds whether the head arrived in one read or in several.
                guard let end = HTTPScan.headEnd(p) else { return p.count > Self.responseHeadLimit ? .malformed("response head over 64 KiB") : .incomplete }
                guard end <= Self.responseHeadLimit else { return .malformed("response head over 64 KiB") }
                // Status line: HTTP/1.x SP 3DIGIT SP reason CRLF.
                guard end >= 14, HTTPScan.equals(p, 0, "HTTP/1."), p[7] == 0x30 || p[7] == 0x31,
                      p[8] == HTTPScan.sp, let code = HTTPScan.decimal(p, 9..<12), (100...999).contains(code) else {
                    return .malformed("malformed status line")
                }
                http10 = p[7] == 0x30
                status = code
                // The code is three digits followed by SP (or the line's end); the reason phrase
                // is passed on, so it may not hold control characters.
                guard p[12] == HTTPScan.sp || p[12] == HTTPScan.cr else { return .malformed("malformed status line") }
                var lineEnd = 12
                while lineEnd < end, p[lineEnd] != HTTPScan.lf { lineEnd += 1 }
                guard lineEnd < end, p[lineEnd - 1] == HTTPScan.cr else { return .malformed("malformed status line") }
                // A CR right after the code ends the line there (no reason phrase).
                guard p[12] != HTTPScan.cr || lineEnd == 13 else { return .malformed("malformed status line") }
                for k in 13..<max(13, lineEnd - 1) where HTTPScan.isControl(p[k]) {
                    return .malformed("control character in the status line")
                }
                if code < 200 { return code == 101 ? .malformed("upstream switched protocols unasked") : .informational(end) }
                fields.removeAll(keepingCapacity: true)
                guard HTTPScan.fields(p, from: lineEnd + 1, to: end, into: &fields) else { return .malformed("malformed response header") }
                var listed: [String] = []
                var sawCoding = false
                var lastCoding: Range<Int>? = nil
                var otherCodingName: Range<Int>? = nil
                var chunkedCount = 0
                var dropped = HTTPScan.FieldMask()
                for (index, field) in fields.enumerated() {
                    let name = field.name
                    switch name.count {
                    case 14 where HTTPScan.equalsLowercase(p, name, "content-length"):
                        guard let value = HTTPScan.decimal(p, field.value), contentLength == nil || contentLength == value else {
                            return .malformed("invalid or conflicting Content-Length")
                        }
                        contentLength = value
                    case 17 where HTTPScan.equalsLowercase(p, name, "transfer-encoding"):
                        // Several fields make one list: its last coding decides the framing.
                        sawCoding = true
                        HTTPScan.listElements(p, field.value) { coding in
                            lastCoding = coding
                            if HTTPScan.equalsLowercase(p, coding, "chunked") { chunkedCount += 1 } else { otherCodingName = otherCodingName ?? coding }
                        }
                    case 10 where HTTPScan.equalsLowercase(p, name, "connection"):
                        HTTPScan.listElements(p, field.value) { token in
                            if HTTPScan.equalsLowercase(p, token, "close") {
                                upstreamClose = true
                            } else if !HTTPScan.equalsLowercase(p, token, "keep-alive") {
                                // Never the framing (an upstream may not make it vanish).
                                let name = HTTPScan.canonicalName(p, token)
                                if !HopByHop.notNominable.contains(name) { listed.append(name) }
                            }
                        }
                        dropped.insert(index)
                    case 12 where HTTPScan.equalsLowercase(p, name, "x-request-id"):
                        dropped.insert(index)
                    default:
                        if HTTPScan.isAny(p, name, of: HopByHop.responseNameBytes) { dropped.insert(index) }
                        // Under a [cors] policy the gateway is the CORS authority: an upstream's
                        // own Access-Control-* headers go (a cache could hand them to a browser).
                        if corsOn, name.count > 15, HTTPScan.equalsLowercase(p, name.lowerBound..<(name.lowerBound + 15), "access-control-") { dropped.insert(index) }
                    }
                }
                let bodiless = exchange.isHead || code == 204 || code == 304
                if sawCoding, !bodiless {
                    // Only chunked is relayed, as HAProxy does: another coding (gzip, identity)
                    // would reach the client unlabelled from the full path, which re-chunks.
                    if let other = otherCodingName { return .malformed("transfer coding \"\(HTTPScan.string(p, other))\" is not supported (only chunked)") }
                    guard lastCoding != nil else { return .malformed("empty Transfer-Encoding") }
                    guard chunkedCount == 1 else { return .malformed("chunked is applied more than once") }
                    chunked = true
                }
                // RFC 9112 6.1 and RFC 9110 8.6: no framing fields on a 204, no Transfer-Encoding on a 304.
                if code == 204 || code == 304 {
                    for (index, field) in fields.enumerated() where HTTPScan.equalsLowercase(p, field.name, "transfer-encoding")
                        || (code == 204 && HTTPScan.equalsLowercase(p, field.name, "content-length")) {
                        dropped.insert(index)
                    }
                }
                if !listed.isEmpty {
                    for (index, field) in fields.enumerated() where listed.contains(HTTPScan.canonicalName(p, field.name)) { dropped.insert(index) }
                }
                if chunked {
                    // Transfer-Encoding overrides Content-Length (RFC 9112 section 6.3); the length is not passed on.
                    for (index, field) in fields.enumerated() where HTTPScan.equalsLowercase(p, field.name, "content-length") { dropped.insert(index) }
                }
                out = takeScratch(&responseScratch, capacity: end + 96)
                // HTTP/1.1, the status line's rest and the fields kept, copied in runs.
                out.writeWithUnsafeMutableBytes(minimumWritableBytes: end) { room in
                    var writer = ByteWriter(room)
                    writer.put("HTTP/1.1")
                    if p[12] == HTTPScan.cr {
                        // No reason phrase: the SP after the code is still due (RFC 9112 section 4).
                        writer.put(p, 8..<12)
                        writer.put(" \r\n")
                        writer.putRuns(p, fields: fields, dropped: dropped, first: nil)
                    } else {
                        writer.putRuns(p, fields: fields, dropped: dropped, first: 8..<(lineEnd + 1))
                    }
                    return writer.count
                }
                return .ready(end)
            }
            switch head {
            case .incomplete:
                return nil
            case .malformed(let why):
                fail(exchange, .badGateway("upstream answered badly: \(why)"))
                return nil
            case .informational(let end):
                buffered.moveReaderIndex(forwardBy: end)
                exchange.responseHead = buffered.readableBytes > 0 ? buffered : nil
                continue
            case .ready(let end):
                buffered.moveReaderIndex(forwardBy: end)
                exchange.responseHead = nil
                exchange.status = status
                let now = DispatchTime.now().uptimeNanoseconds
                latencyTimer(exchange.route.name).recordNanoseconds(Int64(now - exchange.upstreamStarted))
                exchange.upstreamKeepAlive = !upstreamClose && !http10
                let framing: Framing
                if exchange.isHead || status == 204 || status == 304 {
                    framing = .none
                } else if chunked {
                    framing = .chunked(ChunkedScanner())
                } else if let contentLength {
                    framing = contentLength == 0 ? .none : .length(contentLength)
                } else {
                    framing = .untilClose
                }
                let untilClose = if case .untilClose = framing { true } else { false }
                exchange.framing = framing
                // A body that ends at close ends both connections.
                exchange.upstreamKeepAlive = exchange.upstreamKeepAlive && !untilClose
                exchange.clientClose = !exchange.keepAlive || server.isDraining || untilClose
                if exchange.bodyRemaining > 0 {
                    // Answered before the body was all sent: the rest of it is not read, so
                    // neither connection can carry another request.
                    exchange.clientClose = true
                    exchange.upstreamKeepAlive = false
                }
                // The answer to this request (no Origin) would differ for one with an Origin.
                if corsOn { out.writeStaticString("vary: Origin\r\n") }
                exchange.writeRequestIDField(into: &out, close: exchange.clientClose)
                staged = out
                clientNeedsFlush = true
                exchange.lastActivity = now
                armTimer(due: exchange.deadline)
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

    static let responseHeadLimit = 64 * 1024

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
            if exchange.reused, exchange.responseHead == nil, !exchange.retriedStale, exchange.idempotent, exchange.bodyLength == 0 {
                // A pooled connection the upstream had closed meanwhile: once more on a fresh one.
                exchange.retriedStale = true
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
                                                     varyOrigin: exchange.corsOn, allocator: allocator)), promise: nil)
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
