import Foundation
import JOSE
import Logging
import NIOCore
import NIOHTTP1

/// One client connection: each request is routed, authenticated and either answered here or
/// streamed to an upstream and back, with backpressure both ways.
///
/// Reads from the client are held while the upstream cannot take more (or is not connected
/// yet); reads from the upstream are held while the client cannot take more. All of it runs on
/// the connection's event loop, which is also the loop of its upstream connections.
final class ProxyServerHandler: ChannelDuplexHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: GatewayServer
    private let pool: UpstreamPool
    /// Set while the handler is in the pipeline, nil once it left (the connection closed): the
    /// context holds the handler, so holding the context after that kept both and everything
    /// they reach alive (every connection leaked). Work that completes later finds it nil.
    private var context: ChannelHandlerContext?
    private var exchange: Exchange?
    /// A request answered by the gateway itself (identity endpoints, session API).
    private var local: LocalExchange?
    /// The rest of a request body is read and dropped (answered early). The client must keep
    /// sending it: the idle timer runs meanwhile, and starts afresh once it ends.
    private var discarding = false {
        didSet {
            if discarding, !oldValue { armIdle() } else if !discarding, oldValue { idleTask?.cancel(); idleTask = nil }
        }
    }
    /// When the client last sent bytes (a local request's body, a discarded body).
    private var lastClientBytes: UInt64 = 0
    private var closeAfterDiscard = false
    private var pendingRead = false
    private var inputClosed = false
    /// The client's bytes stopped parsing as HTTP after the requests before them: the answer
    /// (400 or 431 with the reason) goes out once those are answered, then the connection closes.
    private var malformed: ErrorResponse?
    private var malformedAnswered = false
    /// The last answer the gateway wrote itself, written once this completes.
    private var answered: EventLoopFuture<Void>?
    /// `[cors]` is on for the request being answered, and the headers its answers get (nil
    /// when its Origin is not allowed, or it has none). Set as each request begins: requests
    /// are answered one at a time, in order.
    private var corsOn = false
    private var cors: [(String, String)]? = nil

    /// With `[cors]` on, the gateway is the CORS authority: an upstream's own CORS headers go,
    /// the gateway's are added for an allowed origin, and the answer varies by Origin.
    private func applyCORS(_ headers: inout HTTPHeaders, fromUpstream: Bool = false) {
        guard corsOn else { return }
        if fromUpstream {
            let names = Set(headers.map { $0.name.lowercased() }.filter { $0.hasPrefix("access-control-") })
            for name in names { headers.remove(name: name) }
        }
        if !headers[canonicalForm: "vary"].contains(where: { $0.lowercased() == "origin" || $0 == "*" }) { headers.add(name: "vary", value: "Origin") }
        for (name, value) in cors ?? [] { headers.add(name: name, value: value) }
    }
    /// Closes the connection once it has been idle for `[server] idle_timeout`.
    private var idleTask: Scheduled<Void>?
    /// Pipelined requests that arrived while another was in progress, replayed in order once
    /// it is answered (this handler does HTTP/1.1 pipelining itself).
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    /// Parts of pipelined requests decoded but not handled yet (taken from the front in O(1)).
    /// Reads stop while any wait, and after a hand-over each read cycle is one read of at most
    /// 64 KiB; but the bytes handed over (up to a read cycle of the direct path, about 1 MiB)
    /// are decoded at once. Thousands of requests pipelined in one burst are answered; past
    /// this many parts (8,192 requests) the connection closes.
    private static let queueLimit = 16_384
    private var remoteIP = ""
    /// Writes are flushed once per read cycle, not once per part.
    private var inReadCycle = false
    private var upstreamNeedsFlush = false
    private var clientNeedsFlush = false

    init(server: GatewayServer, pool: UpstreamPool) {
        self.server = server
        self.pool = pool
    }

    /// A request for the local API: its body is gathered, then handed over whole.
    final class LocalExchange {
        let head: HTTPRequestHead
        let path: String
        let query: Substring?
        let requestID: String
        let started = DispatchTime.now().uptimeNanoseconds
        var body: [UInt8] = []
        var dispatched = false
        init(head: HTTPRequestHead, path: String, query: Substring?, requestID: String) {
            self.head = head
            self.path = path
            self.query = query
            self.requestID = requestID
        }
    }

    static let localBodyLimit = 1 << 20
    /// How long a local API request (a login, a session call) may wait for the runtime.
    static let localTimeout = 10.0

    /// One request on its way through.
    final class Exchange {
        let requestID: String
        let route: RouteConfig
        let head: HTTPRequestHead
        let keepAlive: Bool
        let started: UInt64
        var identity: Identity?
        var upstreams: [Upstream]
        var upstream: Upstream
        var attempt = 0
        var channel: (any Channel)?
        var handler: UpstreamHandler?
        var upstreamHead: HTTPRequestHead
        /// The query sent upstream (token parameters cut when the route does not forward them).
        var forwardedQuery: Substring?
        var buffered: [HTTPClientRequestPart] = []
        var requestEnded = false
        var responseHead: HTTPResponseHead?
        /// The response head is written when its first body part or end comes, or at the end
        /// of the upstream's read: until then a response that fails to parse is still a 502.
        var headWritten = false
        var responseEnded = false
        var status = 0
        var bytesIn = 0, bytesOut = 0
        var timer: Scheduled<Void>?
        /// When the upstream last sent something; the idle timer checks it instead of being
        /// re-armed for every body part.
        var lastActivity: UInt64 = 0
        var idleTimerArmed = false
        var upstreamStarted: UInt64 = 0
        /// The upstream's own answer allowed reusing its connection.
        var upstreamKeepAlive = true
        /// The connection came from the pool (it may have been closed by the upstream meanwhile).
        var reusedConnection = false
        var retriedStale = false

        init(requestID: String, route: RouteConfig, head: HTTPRequestHead, upstreamHead: HTTPRequestHead, upstreams: [Upstream]) {
            self.requestID = requestID
            self.route = route
            self.head = head
            self.keepAlive = head.isKeepAlive
            self.upstreamHead = upstreamHead
            self.upstreams = upstreams
            self.upstream = upstreams[0]
            self.started = DispatchTime.now().uptimeNanoseconds
        }
    }

    // MARK: Connection

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        remoteIP = context.channel.remoteAddress?.ipAddress ?? ""
        // Added when the direct path hands over; the bytes handed over may not hold a whole head.
        if context.channel.isActive { armIdle() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTask?.cancel()
        idleTask = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        server.metrics.connectionOpened()
        server.connections.opened(context.channel)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTask?.cancel()
        idleTask = nil
        local = nil
        server.metrics.connectionClosed()
        server.connections.closed(context.channel)
        if let exchange {
            self.exchange = nil
            let close = server.inFlightCloseNote
            finish(exchange, status: exchange.status == 0 ? close.status : exchange.status, reusable: false, note: close.note)
        }
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if malformed != nil || closingWhenSent { return }
        guard mayReadClient else {
            pendingRead = true
            return
        }
        context.read()
    }

    /// Reads wait while pipelined parts are queued, while the runtime is answering, while a
    /// request body cannot go on to the upstream, and while the client is not taking its
    /// answers (nginx and HAProxy stop reading such a connection too): a client that pipelines
    /// requests and never reads cannot make the gateway hold their answers.
    private var mayReadClient: Bool {
        if !queued.isEmpty || local?.dispatched == true { return false }
        if let exchange, exchange.channel == nil || exchange.channel?.isWritable == false { return false }
        return context?.channel.isWritable ?? false
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            exchange?.handler?.resumeReading()
            if exchange == nil { resumeClientReads() }
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError {
            // The client closed in the middle of a request (the decoder says so as it ends):
            // nobody to answer; channelInactive logs what was in flight.
            if error == .invalidEOFState || error == .closedConnection || !context.channel.isActive { return }
            return malformed(error)
        }
        // Bytes that came after a parse error: the answer to that error is already decided.
        if error is ByteToMessageDecoderError, malformed != nil { return }
        context.close(promise: nil)
    }

    /// The request decoder gave up on the client's bytes. What it was reading decides the
    /// answer's place: the body of the request in progress (answered now, if nothing of its
    /// response went out yet), or a later request (answered after those before it).
    private func malformed(_ error: HTTPParserError) {
        guard malformed == nil else { return }
        let response = Self.answer(for: error)
        malformed = response
        pendingRead = false
        if let local, !local.dispatched {
            self.local = nil
            return answerMalformed(ownRequest: true)
        }
        if let exchange, !exchange.requestEnded {
            self.exchange = nil
            finish(exchange, status: exchange.headWritten ? exchange.status : Int(response.status.code), reusable: false, note: response.reason)
            // Part of its response already went out: all the client can be told is the close.
            if exchange.headWritten { context?.close(promise: nil); return }
            queued.removeAll()
            return answerMalformed(requestID: exchange.requestID, logged: true, ownRequest: true)
        }
        // A request queued behind the one in flight whose body did not end: the bad bytes are
        // its own. It is answered by the 400 (the requests before it are answered first).
        if let lastHead = queued.lastIndex(where: { $0.isHead }), !queued[lastHead...].contains(where: { if case .end = $0 { return true } else { return false } }) {
            queued.removeSubrange(lastHead...)
        }
        if discarding {
            // Its answer went out already; the rest of its body is what did not parse.
            discarding = false
            queued.removeAll()
            guard let answered else { context?.close(promise: nil); return }
            answered.assumeIsolated().whenComplete { _ in self.context?.close(promise: nil) }
            return
        }
        answerMalformedIfDue()
    }

    /// Nothing before the malformed bytes is left to answer: answer them and close.
    private func answerMalformedIfDue() {
        guard malformed != nil, exchange == nil, local == nil, queued.isEmpty, !discarding else { return }
        answerMalformed()
    }

    /// `ownRequest`: the bad bytes are the body of the request begun last, whose CORS headers
    /// the answer keeps; otherwise they are a request never read (no Origin known).
    private func answerMalformed(requestID: String = RequestIDs.next(), logged: Bool = false, ownRequest: Bool = false) {
        guard let response = malformed, !malformedAnswered else { return }
        malformedAnswered = true
        if !ownRequest { cors = nil }
        idleTask?.cancel()
        idleTask = nil
        if !logged {
            server.answeredHere(response, requestID: requestID)
        }
        respond(response, version: .http1_1, requestID: requestID, keepAlive: false)
    }

    /// What the client is told about bytes that are not HTTP/1.1 (the decoder's errors).
    static func answer(for error: HTTPParserError) -> ErrorResponse {
        let why: String
        switch error {
        case .headerOverflow:
            return .headersTooLarge("the request head exceeds 80 KiB")
        case .invalidMethod:
            // llhttp knows a fixed set of methods (case-sensitive): garbage and an unknown
            // extension method look the same to it.
            why = "the request line does not start with a method the gateway's HTTP/1.1 parser knows (methods are case-sensitive: GET, not get)"
        case .invalidURL, .invalidPath, .invalidQueryString, .invalidFragment, .invalidHost, .invalidPort:
            why = "the request target is not valid"
        case .invalidVersion: why = "the request line does not end in a valid HTTP version"
        case .invalidConstant: why = "the request line is not METHOD SP target SP HTTP/1.x"
        case .lfExpected: why = "a line of the request head does not end in CRLF"
        case .invalidHeaderToken: why = "a header field is not name: value, or holds a character HTTP does not allow in its name or value"
        case .invalidCharactersUsed: why = "the request head holds a character HTTP does not allow"
        case .invalidContentLength: why = "Content-Length is not a number"
        case .unexpectedContentLength: why = "Content-Length is given more than once or beside Transfer-Encoding"
        case .invalidChunkSize: why = "a chunk of the chunked request body has an invalid size line"
        case .trailingGarbage: why = "bytes follow the request that are not a request"
        default: why = "the request is not valid HTTP/1.1"
        }
        return .badRequest(why)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is DrainEvent {
            // Idle between requests: close once what was written went out (the end of a slow
            // client's download may still be queued). Busy: the response goes out with Connection: close.
            if exchange == nil, local == nil, !discarding { closeWhenSent() }
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            // Only when the direct path saw the client shut its side before handing over.
            inputClosed = true
            closeIfFinished()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Nothing in flight: the next complete head must come within `[server] idle_timeout`.
    /// While a local request's body is read, or a body is discarded, the client may pause for
    /// that long between bytes.
    private func armIdle(after seconds: Double? = nil) {
        guard idleTask == nil else { return }
        let timeout = server.state.config.server.clientIdleTimeout
        idleTask = context?.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64((seconds ?? timeout) * 1e9))) {
            self.idleTask = nil
            guard self.exchange == nil, self.queued.isEmpty, self.local?.dispatched != true else { return }
            if self.local == nil, !self.discarding { self.context?.close(promise: nil); return }
            let idle = Double(DispatchTime.now().uptimeNanoseconds - self.lastClientBytes) / 1e9
            if idle < timeout { return self.armIdle(after: timeout - idle) }
            self.context?.close(promise: nil)
        }
    }

    /// The client sent all it will: close once everything it asked for is answered.
    private func closeIfFinished() {
        guard inputClosed, exchange == nil, local == nil, !discarding, queued.isEmpty else { return }
        context?.close(promise: nil)
    }

    private func resumeClientReads() {
        drainQueue()
        if malformed != nil { return answerMalformedIfDue() }
        closeIfFinished()
        if exchange == nil, local == nil, !discarding { armIdle() }
        guard pendingRead, mayReadClient else { return }
        pendingRead = false
        context?.read()
    }

    // MARK: Request

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadCycle = false
        flushUpstream()
        context.fireChannelReadComplete()
    }

    private func flushUpstream() {
        guard upstreamNeedsFlush else { return }
        upstreamNeedsFlush = false
        exchange?.channel?.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Closing once the last answer went out (a drain): nothing more is taken.
        if closingWhenSent { return }
        inReadCycle = true
        lastClientBytes = DispatchTime.now().uptimeNanoseconds
        let part = unwrapInboundIn(data)
        if !queued.isEmpty || (part.isHead && (exchange != nil || local != nil)) {
            queued.append(part)
            if queued.count > Self.queueLimit { context.close(promise: nil) }
            return
        }
        handle(part)
    }

    /// Replays queued pipelined parts while no request is in progress.
    private func drainQueue() {
        while let next = queued.first {
            if next.isHead, exchange != nil || local != nil { return }
            // The next request waits while the answers before it are not going out; the
            // writability change takes it up.
            if next.isHead, !(context?.channel.isWritable ?? false) { return }
            queued.removeFirst()
            handle(next)
        }
    }

    private func handle(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            begin(head)
        case .body(let buffer):
            if discarding {
                return
            }
            if let local {
                if local.body.count + buffer.readableBytes > Self.localBodyLimit {
                    self.local = nil
                    return reject(.tooLarge("request body exceeds \(Self.localBodyLimit) bytes"), head: local.head, requestID: local.requestID, route: "local")
                }
                local.body += buffer.readableBytesView
                return
            }
            guard let exchange else { return }
            exchange.bytesIn += buffer.readableBytes
            exchange.lastActivity = DispatchTime.now().uptimeNanoseconds
            let limit = server.state.config.server.maxBodyBytes
            if limit > 0, exchange.bytesIn > limit, exchange.responseHead == nil {
                let e = exchange
                self.exchange = nil
                finish(e, status: 413, reusable: false, note: "body too large")
                respond(.tooLarge("request body exceeds \(limit) bytes"), version: e.head.version, requestID: e.requestID, keepAlive: false)
                return
            }
            send(.body(.byteBuffer(buffer)), exchange)
        case .end:
            if discarding {
                discarding = false
                if closeAfterDiscard { context?.close(promise: nil) } else { resumeClientReads() }
                return
            }
            if let local {
                dispatch(local)
                return
            }
            guard let exchange else { return }
            exchange.requestEnded = true
            // A request's trailers are not forwarded (Envoy's HTTP/1 default): they could carry
            // what the head may not (identity headers, forwarding headers, a token), and no
            // upstream needs a client's trailers to read its body.
            send(.end(nil), exchange)
            if exchange.responseHead == nil {
                armTimer(exchange, seconds: exchange.route.firstByteTimeout, why: "no response from upstream within \(Duration.describe(exchange.route.firstByteTimeout))")
            }
        }
    }

    private func begin(_ received: HTTPRequestHead) {
        idleTask?.cancel()
        idleTask = nil
        let state = server.state
        // A field value's trailing spaces and tabs are not part of it (RFC 9112 section 5), as
        // the direct path reads them; NIOHTTP1 keeps them.
        var head = received
        head.headers = HopByHop.trimmingValues(head.headers)
        let requestID = Self.requestID(from: head.headers)
        let keepAlive = head.isKeepAlive && !server.isDraining
        // One Origin field or none (browsers never send two; two allow nothing).
        let origins = state.config.cors == nil ? [] : head.headers["origin"]
        let origin = origins.count == 1 ? origins[0] : nil
        corsOn = state.config.cors != nil
        cors = origin.flatMap { origin in state.config.cors.flatMap { $0.allows(origin) ? $0.responseHeaders(origin: origin) : nil } }
        if head.method != .CONNECT, let (authority, target) = Admission.absoluteForm(head.uri) {
            // RFC 9112 section 3.2.2: a server accepts the absolute form, and its authority is
            // the host (the Host field is ignored). Routed and forwarded in origin form.
            guard let authority else {
                head.uri = target  // logged without the user information
                return reject(.badRequest("an absolute request target must be http(s)://host[:port]/path, without user information"), head: head, requestID: requestID, route: "-")
            }
            head.uri = target
            head.headers.replaceOrAdd(name: "host", value: authority)
        }
        let uri = head.uri
        if head.method == .CONNECT {
            // The decoder reads what follows as a tunnel: nothing more can be read as requests.
            // NIOHTTP1's encoder gives an answer to CONNECT no body, so the answer goes out as
            // bytes below it, with its reason, and the connection closes.
            let response = ErrorResponse.connectNotSupported
            server.answeredHere(response, requestID: requestID, method: head.method.rawValue, uri: head.uri)
            malformed = response  // nothing more is read or answered
            malformedAnswered = true
            guard let context, let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self) else {
                context?.close(promise: nil)
                return
            }
            let promise = context.eventLoop.makePromise(of: Void.self)
            encoder.writeAndFlush(NIOAny(response.bytes(requestID: requestID, keepAlive: false, allocator: context.channel.allocator)), promise: promise)
            promise.futureResult.assumeIsolated().whenComplete { _ in self.context?.close(promise: nil) }
            return
        }
        // Asterisk-form (RFC 9112 section 3.2.4): about the server, not a resource.
        let asterisk = uri == "*" && head.method == .OPTIONS
        guard asterisk || uri.hasPrefix("/") else {
            return reject(.badRequest("request target must be an absolute path"), head: head, requestID: requestID, route: "-")
        }
        if uri.utf8.contains(UInt8(ascii: "#")) {
            // Routed with it, the path would not be the one the upstream serves.
            return reject(.fragmentInTarget, head: head, requestID: requestID, route: "-")
        }
        let queryStart = uri.firstIndex(of: "?")
        let path = String(uri[..<(queryStart ?? uri.endIndex)])
        let query = queryStart.map { uri[uri.index(after: $0)...] }
        if let why = Router.unsafePath(path) {
            return reject(.badRequest(why), head: head, requestID: requestID, route: "-")
        }

        var headerBytes = uri.utf8.count
        for (name, value) in head.headers { headerBytes += name.utf8.count + value.utf8.count + 4 }
        if headerBytes > state.config.server.maxHeaderBytes {
            return reject(.headersTooLarge("request head is \(headerBytes) bytes, the limit is \(state.config.server.maxHeaderBytes)"), head: head, requestID: requestID, route: "-")
        }
        let hosts = head.headers["host"]
        if hosts.count > 1 || (hosts.isEmpty && head.version.minor >= 1) {
            return reject(.badRequest(hosts.isEmpty ? "HTTP/1.1 requests need a Host header" : "more than one Host header"), head: head, requestID: requestID, route: "-")
        }
        if let value = hosts.first {
            var value = value
            if !value.withUTF8({ HTTPScan.isValidHost(UnsafeRawBufferPointer($0), 0..<$0.count) }) {
                return reject(.badRequest("the Host header is not a host name or [IPv6] with an optional :port"), head: head, requestID: requestID, route: "-")
            }
            // `secure.example.` is `secure.example`: routed and forwarded without the dot, so an
            // upstream's virtual hosts and the route's `host` read the same name.
            if let dot = value.withUTF8({ HTTPScan.hostTrailingDot(UnsafeRawBufferPointer($0), 0..<$0.count) }) {
                var bytes = Array(value.utf8)
                bytes.remove(at: dot)
                head.headers.replaceOrAdd(name: "host", value: String(decoding: bytes, as: UTF8.self))
            }
        }
        if asterisk {
            // No route can take it: answered here with the methods the gateway passes on.
            let answer = GatewayServer.BuiltIn(status: .ok, contentType: "text/plain", body: [])
            return respondBuiltIn(answer, head: head, requestID: requestID, keepAlive: keepAlive,
                                  extra: [("allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")])
        }
        if let problem = HopByHop.codingProblem(head.headers) {
            // RFC 9112 section 6.1: a coding the gateway does not know is 501. NIOHTTP1 would
            // take the chunks off and the coding's label would be lost on the way up.
            return reject(ErrorResponse(status: .notImplemented, error: "not_implemented", reason: problem),
                          head: head, requestID: requestID, route: "-", close: true)
        }
        if let policy = state.config.cors, let origin, head.method == .OPTIONS, let method = head.headers.first(name: "access-control-request-method") {
            // A preflight: answered here, before routes and tokens (it carries no credentials).
            switch policy.preflight(origin: origin, method: method, headers: head.headers[canonicalForm: "access-control-request-headers"].joined(separator: ",")) {
            case .success(let headers):
                return respondPreflight(headers, head: head, requestID: requestID, keepAlive: keepAlive)
            case .failure(let refusal):
                cors = nil  // a refused preflight allows nothing
                return reject(.corsRefused(refusal.reason), head: head, requestID: requestID, route: "-")
            }
        }
        if head.method == .GET || head.method == .HEAD, let answer = server.builtIn(path: path, state: state) {
            return respondBuiltIn(answer, head: head, requestID: requestID, keepAlive: keepAlive)
        }
        if server.localAPI.owns(path) {
            local = LocalExchange(head: head, path: path, query: query, requestID: requestID)
            // Its body must keep coming (the idle timeout between bytes).
            armIdle()
            return
        }
        let host = hosts.first.map { value in
            var value = value
            return value.withUTF8 { HTTPScan.hostName(UnsafeRawBufferPointer($0), 0..<$0.count) }
        }
        guard let route = state.router.match(method: head.method.rawValue, host: host, path: path) else {
            return reject(.noRoute, head: head, requestID: requestID, route: "-")
        }
        let limit = state.config.server.maxBodyBytes
        if limit > 0, let length = head.headers.first(name: "content-length").flatMap(Int.init), length > limit {
            return reject(.tooLarge("request body of \(length) bytes exceeds \(limit)"), head: head, requestID: requestID, route: route.name)
        }

        if route.auth != .public, let why = Authenticator.duplicateCredential(in: head, query: query, sources: state.config.auth.tokenSources) {
            return reject(.invalidRequest(why), head: head, requestID: requestID, route: route.name)
        }
        var identity: Identity? = nil
        switch state.authenticator.authenticate(route: route, head: head, query: query) {
        case .refuse(let failure):
            server.metrics.verification(failure.reason.rawValue)
            return reject(.auth(failure), head: head, requestID: requestID, route: route.name)
        case .pass(let who):
            identity = who
            if who != nil { server.metrics.verification("valid") }
        }
        if route.session == .required, let who = identity, who.sessionID == nil {
            return reject(.auth(AuthFailure(.missingClaim, "token has no \"session_id\"; this route needs a runtime session")), head: head, requestID: requestID, route: route.name)
        }

        let upstreams = state.upstreams(for: route)
        let forwarded = forwardHead(head, route: route, upstream: upstreams[0], path: path, query: query, identity: identity,
                                    requestID: requestID, state: state)
        let exchange = Exchange(requestID: requestID, route: route, head: head, upstreamHead: forwarded.head, upstreams: upstreams)
        exchange.forwardedQuery = forwarded.query
        exchange.identity = identity
        self.exchange = exchange
        // Until the request has ended, a body that stalls for the route's idle timeout is
        // answered 408 (the first-byte timer takes over at its end).
        exchange.lastActivity = DispatchTime.now().uptimeNanoseconds
        armIdleTimer(exchange, after: route.idleTimeout)
        if route.session == .required, let who = identity, let sessionID = who.sessionID {
            // The runtime answers asynchronously; body parts wait in the exchange meanwhile and
            // further reads are held (the exchange has no upstream channel yet).
            let lookup = server.sessions
            context?.eventLoop.makeFutureWithTask { try await lookup.status(of: sessionID, for: who) }.assumeIsolated().whenComplete { result in
                guard self.exchange === exchange else { return }
                switch result {
                case .failure(let error as RuntimeTimeout):
                    self.fail(exchange, .runtimeUnavailable("\(error)"))
                case .failure(let error):
                    // The store's own error is for the log, not the client.
                    self.fail(exchange, .runtimeUnavailable("the session store failed"),
                              note: "the session store failed: \(String(reflecting: error))")
                case .success(let status):
                    if let (reason, message) = status.check(who, now: Timestamp.now()) {
                        self.server.metrics.verification(reason.rawValue)
                        self.fail(exchange, .auth(AuthFailure(reason, message)))
                    } else {
                        self.proceed(exchange)
                    }
                }
            }
            return
        }
        proceed(exchange)
    }

    /// Admitted: answer `Expect: 100-continue` and go to the upstream.
    private func proceed(_ exchange: Exchange) {
        if exchange.head.version.minor >= 1, exchange.head.headers.first(name: "expect")?.lowercased() == "100-continue" {
            context?.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: exchange.head.version, status: .continue))), promise: nil)
        }
        connect(exchange)
    }

    /// The request as the upstream sees it: hop-by-hop headers gone, the identity namespace
    /// replaced by verified values, forwarding headers added.
    private func forwardHead(_ head: HTTPRequestHead, route: RouteConfig, upstream: Upstream, path: String, query: Substring?,
                             identity: Identity?, requestID: String, state: GatewayState) -> (head: HTTPRequestHead, query: Substring?) {
        let identityConfig = state.config.identity
        var headers = head.headers
        HopByHop.strip(&headers, keepChunked: true)
        headers.remove(name: "expect")
        // The identity namespace, also spelled with underscores (CGI-style backends read
        // X_User_Id as X-User-Id), and the default names even when renamed or disabled.
        let owned = state.ownedHeaders
        var spoofed: [String] = []
        for (name, _) in headers {
            let underscore = name.utf8.contains(UInt8(ascii: "_"))
            guard underscore || state.ownedHeaderLengths.contains(name.utf8.count) else { continue }
            let canonical = name.lowercased().replacingOccurrences(of: "_", with: "-")
            // The forwarding headers the gateway writes, spelled with underscores, go too.
            if owned.contains(canonical) || (underscore && HopByHop.writtenByGateway.contains(canonical)) { spoofed.append(name) }
        }
        for name in spoofed { headers.remove(name: name) }
        for name in HopByHop.setByGateway { headers.remove(name: name) }
        var overrides: [String] = []
        for (name, _) in headers where name.utf8.count >= 13 && name.utf8.count <= 22 {
            let canonical = name.lowercased().replacingOccurrences(of: "_", with: "-")
            if HopByHop.methodOverrides.contains(canonical), !route.methodOverrides.contains(canonical) || name.contains("_") { overrides.append(name) }
        }
        for name in overrides { headers.remove(name: name) }
        var query = query
        if !route.forwardAuthorization {
            // Every place a token may come from: the headers, the configured cookies (only
            // that cookie is cut) and query parameters.
            headers.remove(name: "authorization")
            headers.remove(name: "apikey")
            for source in state.config.auth.tokenSources {
                switch source {
                case .cookie(let name):
                    let kept = headers["cookie"].flatMap { $0.split(separator: ";") }
                        .map { $0.trimmingCharacters(in: .whitespaces) }
                        .filter { !$0.hasPrefix(name + "=") }
                    headers.remove(name: "cookie")
                    if !kept.isEmpty { headers.add(name: "cookie", value: kept.joined(separator: "; ")) }
                case .query(let name):
                    if let q = query {
                        let kept = q.split(separator: "&").filter { Authenticator.parameterName($0) != name }
                        query = kept.isEmpty ? nil : Substring(kept.joined(separator: "&"))
                    }
                case .authorization, .apikey:
                    break
                }
            }
        }
        if let identity {
            if let user = identity.userID, !identityConfig.userID.isEmpty { headers.add(name: identityConfig.userID, value: user) }
            if let role = identity.role, !identityConfig.role.isEmpty { headers.add(name: identityConfig.role, value: role) }
            if let session = identity.sessionID, !identityConfig.sessionID.isEmpty { headers.add(name: identityConfig.sessionID, value: session) }
            if !identityConfig.tenantID.isEmpty { headers.add(name: identityConfig.tenantID, value: identity.tenantID) }
            if !identityConfig.claims.isEmpty { headers.add(name: identityConfig.claims, value: identity.token.payloadSegment) }
        }
        // Several X-Forwarded-For fields make one list (RFC 9110 section 5.3), as on the direct path.
        let given = headers["x-forwarded-for"]  // after the strip: a Connection header may have named it
        let forwardedFor = given.isEmpty ? remoteIP : given.joined(separator: ", ") + ", \(remoteIP)"
        headers.replaceOrAdd(name: "x-forwarded-for", value: forwardedFor)
        headers.replaceOrAdd(name: "x-forwarded-proto", value: "http")
        headers.replaceOrAdd(name: "x-real-ip", value: remoteIP)
        if let host = head.headers.first(name: "host") { headers.replaceOrAdd(name: "x-forwarded-host", value: host) }
        headers.replaceOrAdd(name: "x-request-id", value: requestID)
        let uri = Router.upstreamURI(route: route, upstream: upstream, path: path, query: query)
        return (HTTPRequestHead(version: .http1_1, method: head.method, uri: uri, headers: headers), query)
    }

    // MARK: Upstream

    private func connect(_ exchange: Exchange) {
        guard let loop = context?.eventLoop else { return }
        pool.acquire(exchange.upstream, connectTimeout: exchange.route.connectTimeout, fresh: exchange.retriedStale).hop(to: loop).assumeIsolated().whenComplete { result in
            guard self.exchange === exchange else {
                if case .success(let acquired) = result { acquired.channel.close(promise: nil) }
                return
            }
            switch result {
            case .success(let acquired):
                exchange.reusedConnection = acquired.reused
                if !acquired.reused { self.server.upstreamHealth.connected(exchange.upstream.origin) }
                self.attach(exchange, acquired.channel)
            case .failure(let error):
                self.server.upstreamHealth.connectFailed(exchange.upstream.origin, error: error)
                self.server.metrics.upstreamConnectError(exchange.upstream.origin)
                let idempotent = [.GET, .HEAD, .PUT, .DELETE, .OPTIONS, .TRACE].contains(exchange.head.method)
                if idempotent, exchange.attempt == 0, exchange.upstreams.count > 1 {
                    exchange.attempt = 1
                    exchange.upstream = exchange.upstreams[1]
                    // The query as first forwarded: token parameters stay cut.
                    exchange.upstreamHead.uri = Router.upstreamURI(route: exchange.route, upstream: exchange.upstream,
                                                                   path: String(exchange.head.uri.prefix { $0 != "?" }), query: exchange.forwardedQuery)
                    self.connect(exchange)
                    return
                }
                self.fail(exchange, .connectFailed(route: exchange.route.name, error), note: "cannot connect to \(exchange.upstream): \(Self.describe(error))")
            }
        }
    }

    private func attach(_ exchange: Exchange, _ channel: any Channel) {
        guard let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) else {
            channel.close(promise: nil)
            return fail(exchange, .badGateway("upstream connection unusable"))
        }
        exchange.channel = channel
        exchange.handler = handler
        handler.delegate = self
        exchange.upstreamStarted = DispatchTime.now().uptimeNanoseconds
        channel.write(HTTPClientRequestPart.head(exchange.upstreamHead), promise: nil)
        for part in exchange.buffered { channel.write(part, promise: nil) }
        exchange.buffered.removeAll()
        upstreamNeedsFlush = true
        if !inReadCycle { flushUpstream() }
        if exchange.requestEnded {
            armTimer(exchange, seconds: exchange.route.firstByteTimeout, why: "no response from upstream within \(Duration.describe(exchange.route.firstByteTimeout))")
        }
        if channel.isWritable { resumeClientReads() }
    }

    private func send(_ part: HTTPClientRequestPart, _ exchange: Exchange) {
        guard let channel = exchange.channel else {
            exchange.buffered.append(part)
            return
        }
        channel.write(part, promise: nil)
        upstreamNeedsFlush = true
        if !inReadCycle { flushUpstream() }
    }

    func upstream(received part: HTTPClientResponsePart) {
        guard let exchange else { return }
        switch part {
        case .head(let head):
            if head.status == .switchingProtocols {
                // The client's Upgrade was not forwarded, so this answers nothing it asked; the
                // decoder would take what follows as another protocol.
                return fail(exchange, .badGateway("upstream switched protocols unasked"))
            }
            guard (100...999).contains(head.status.code) else {
                // NIOHTTP1 passes a status line with a code like 000 or 42 (the direct path
                // refuses it). Taken as an interim answer, its body went to the client with no
                // head before it (found by fuzz-response).
                return fail(exchange, .badGateway("upstream answered badly: malformed status line"))
            }
            if head.status.code < 200 { return }  // 100 Continue from upstream: we already answered the client
            if head.status.mayHaveResponseBody, exchange.head.method != .HEAD, let problem = HopByHop.codingProblem(head.headers) {
                // NIOHTTP1 takes the chunks off and the encoder puts `chunked` alone back: another
                // coding's label would be lost. Refused as on the direct path (and by HAProxy).
                return fail(exchange, .badGateway("upstream answered badly: \(problem)"))
            }
            var headBytes = 0
            for (name, value) in head.headers { headBytes += name.utf8.count + value.utf8.count + 4 }
            if headBytes > ResponseHeadReader.limit {
                // As on the direct path (NIOHTTP1 alone would take up to 80 KiB).
                return fail(exchange, .badGateway("upstream answered badly: response head over \(ResponseHeadReader.limit / 1024) KiB"))
            }
            exchange.timer?.cancel()
            exchange.timer = nil
            // From the head on, the upstream may be idle for the route's idle timeout between
            // parts, the first body part included.
            exchange.idleTimerArmed = false
            exchange.lastActivity = DispatchTime.now().uptimeNanoseconds
            armIdleTimer(exchange, after: exchange.route.idleTimeout)
            server.metrics.upstreamLatency(route: exchange.route.name, nanoseconds: DispatchTime.now().uptimeNanoseconds - exchange.upstreamStarted)
            exchange.upstreamKeepAlive = head.isKeepAlive
            var headers = head.headers
            HopByHop.strip(&headers, keepChunked: false, names: HopByHop.responseNames)
            headers.replaceOrAdd(name: "x-request-id", value: exchange.requestID)
            applyCORS(&headers, fromUpstream: true)
            var keepAlive = exchange.keepAlive && !server.isDraining
            if exchange.head.version.minor == 0, !headers.contains(name: "content-length") { keepAlive = false }
            if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
            else if exchange.head.version.minor == 0 { headers.replaceOrAdd(name: "connection", value: "keep-alive") }
            let response = HTTPResponseHead(version: exchange.head.version, status: head.status, headers: headers)
            exchange.responseHead = response
            exchange.status = Int(head.status.code)
            // Written with what follows it in this read, and flushed at the end of the read even
            // if no body part came with it (a stream's first event may be a while).
            clientNeedsFlush = true
        case .body(let buffer):
            // Body bytes with no final head to go before them would reach the client as bytes
            // that are not HTTP.
            guard exchange.responseHead != nil else { return fail(exchange, .badGateway("upstream answered badly: a body before any final response head")) }
            writeHead(exchange)
            exchange.bytesOut += buffer.readableBytes
            exchange.lastActivity = DispatchTime.now().uptimeNanoseconds
            if !exchange.idleTimerArmed { armIdleTimer(exchange, after: exchange.route.idleTimeout) }
            context?.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            clientNeedsFlush = true
        case .end(let trailers):
            writeHead(exchange)
            exchange.timer?.cancel()
            exchange.responseEnded = true
            let keepAlive = exchange.responseHead?.headers.first(name: "connection") != "close"
            let reusable = exchange.requestEnded && exchange.upstreamKeepAlive
            // State changes come before the write: with pipelining, writing `.end` hands the next
            // buffered request to channelRead at once, and it must find this exchange over.
            self.exchange = nil
            finish(exchange, status: exchange.status, reusable: reusable, note: nil)
            if !exchange.requestEnded {
                // Upstream answered before the request body ended: drop the rest of it.
                discarding = true
                closeAfterDiscard = !keepAlive
            }
            clientNeedsFlush = false
            if let context {
                let promise = context.eventLoop.makePromise(of: Void.self)
                context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: promise)
                answered = promise.futureResult
                if !keepAlive { promise.futureResult.assumeIsolated().whenComplete { _ in self.context?.close(promise: nil) } }
            }
            resumeClientReads()
        }
    }

    func upstreamClosed(error: (any Error)?) {
        guard let exchange, !exchange.responseEnded else { return }
        if exchange.responseHead == nil, exchange.reusedConnection, !exchange.retriedStale, exchange.bytesIn == 0, exchange.requestEnded {
            // A kept-alive connection the upstream had closed while it idled: send the
            // (bodyless, fully received) request once more on a fresh connection.
            exchange.retriedStale = true
            exchange.timer?.cancel()
            exchange.handler?.delegate = nil
            exchange.channel = nil
            exchange.handler = nil
            exchange.buffered = [.end(nil)]
            connect(exchange)
            return
        }
        if !exchange.headWritten {
            let why: String
            switch error {
            case let error as HTTPParserError: why = "upstream answered badly: not valid HTTP/1.1 (\(error))"
            case let error?: why = "upstream connection failed: \(Self.describe(error))"
            case nil: why = exchange.responseHead == nil ? "upstream closed the connection before answering" : "upstream closed the connection mid-response"
            }
            exchange.responseHead = nil
            fail(exchange, .badGateway(why))
        } else {
            // Mid-response: the only honest signal left is to cut the client connection.
            self.exchange = nil
            finish(exchange, status: exchange.status, reusable: false, note: "upstream closed mid-response")
            context?.close(promise: nil)
        }
    }

    private func writeHead(_ exchange: Exchange) {
        guard !exchange.headWritten, let head = exchange.responseHead else { return }
        exchange.headWritten = true
        context?.write(wrapOutboundOut(.head(head)), promise: nil)
    }

    func upstreamReadComplete() {
        if let exchange { writeHead(exchange) }
        guard clientNeedsFlush else { return }
        clientNeedsFlush = false
        context?.flush()
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        if writable { resumeClientReads() }
    }

    var upstreamMayRead: Bool { context?.channel.isWritable ?? true }

    private func armTimer(_ exchange: Exchange, seconds: Double, why: String) {
        exchange.timer?.cancel()
        exchange.idleTimerArmed = false
        exchange.timer = context?.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(seconds * 1000))) {
            guard self.exchange === exchange else { return }
            if exchange.responseHead == nil {
                self.fail(exchange, .gatewayTimeout(why))
            } else {
                self.exchange = nil
                self.finish(exchange, status: exchange.status, reusable: false, note: why)
                self.context?.close(promise: nil)
            }
        }
    }

    /// Idle timeout while the response streams: one scheduled check that re-arms itself for
    /// the time left since the last body part.
    private func armIdleTimer(_ exchange: Exchange, after seconds: Double) {
        exchange.idleTimerArmed = true
        exchange.timer = context?.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) {
            guard self.exchange === exchange else { return }
            let idle = Double(DispatchTime.now().uptimeNanoseconds - exchange.lastActivity) / 1e9
            let limit = exchange.route.idleTimeout
            if idle < limit {
                self.armIdleTimer(exchange, after: limit - idle)
                return
            }
            if exchange.responseHead == nil {
                // Still reading the request: its body stalled (the connection then closes).
                return self.fail(exchange, ErrorResponse(status: .requestTimeout, error: "request_timeout",
                                                         reason: "the request body stalled for \(Duration.describe(limit))"))
            }
            self.exchange = nil
            self.finish(exchange, status: exchange.status, reusable: false, note: "upstream idle for \(Duration.describe(limit))")
            self.context?.close(promise: nil)
        }
    }

    /// The exchange failed before a response head reached the client: answer it here.
    /// `note`: the access log's reason, when it says more than the answer may (a store's error).
    private func fail(_ exchange: Exchange, _ response: ErrorResponse, note: String? = nil) {
        exchange.timer?.cancel()
        self.exchange = nil
        if exchange.head.method != .HEAD { exchange.bytesOut = response.body(requestID: exchange.requestID).utf8.count }
        let keepAlive = exchange.keepAlive && exchange.requestEnded && !server.isDraining
        finish(exchange, status: Int(response.status.code), reusable: false, note: note ?? response.reason)
        if !exchange.requestEnded {
            discarding = true
            closeAfterDiscard = true
        }
        respond(response, version: exchange.head.version, requestID: exchange.requestID, keepAlive: keepAlive)
        resumeClientReads()
    }

    /// Ends an exchange that is no longer `self.exchange`: the upstream connection goes back to
    /// the pool or is closed (its handler detached first, so closing cannot call back into an
    /// exchange that is over), and the request is counted and logged.
    private func finish(_ exchange: Exchange, status: Int, reusable: Bool, note: String?) {
        exchange.timer?.cancel()
        if let channel = exchange.channel {
            exchange.handler?.delegate = nil
            if reusable {
                pool.release(channel, exchange.upstream)
                if server.upstreamHealth.anyRecorded { server.upstreamHealth.served(exchange.upstream.origin) }
            } else {
                channel.close(promise: nil)
            }
        }
        server.requestFinished(route: exchange.route.name, status: status, method: exchange.head.method.rawValue, uri: exchange.head.uri,
                               requestID: exchange.requestID, started: exchange.started, upstream: exchange.channel == nil ? nil : exchange.upstream,
                               identity: exchange.identity, bytesIn: exchange.bytesIn, bytesOut: exchange.bytesOut, note: note)
    }

    // MARK: Local answers

    /// Hands a complete local request to the API and writes its answer when it comes.
    private func dispatch(_ local: LocalExchange) {
        let api = server.localAPI
        local.dispatched = true
        idleTask?.cancel()
        idleTask = nil
        let request = LocalRequest(method: local.head.method, path: local.path, query: LocalRequest.parseQuery(local.query),
                                   headers: local.head.headers, body: local.body, remoteIP: remoteIP, requestID: local.requestID)
        let state = server.state
        context?.eventLoop.makeFutureWithTask { try await withDeadline(seconds: Self.localTimeout) { await api.handle(request, state: state) } }
            .assumeIsolated().whenComplete { result in
            guard self.local === local else { return }
            self.local = nil
            var response: LocalResponse
            switch result {
            case .success(let answer): response = answer
            case .failure(let error):
                // The store hung (a database gone): 503, not a hang.
                let message = error is RuntimeTimeout ? "\(error)" : "the runtime failed"
                response = api.unavailable(request, message)
                response.note = "\(String(reflecting: error))"
            }
            var headers = response.headers
            headers.replaceOrAdd(name: "content-length", value: String(response.body.count))
            headers.replaceOrAdd(name: "x-request-id", value: local.requestID)
            headers.replaceOrAdd(name: "cache-control", value: headers.first(name: "cache-control") ?? "no-store")
            let keepAlive = local.head.isKeepAlive && !self.server.isDraining
            if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
            self.applyCORS(&headers)
            if let context = self.context {
                context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: local.head.version, status: response.status, headers: headers))), promise: nil)
                if !response.body.isEmpty, local.head.method != .HEAD {
                    var buffer = context.channel.allocator.buffer(capacity: response.body.count)
                    buffer.writeBytes(response.body)
                    context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                }
                let promise = context.eventLoop.makePromise(of: Void.self)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: promise)
                if !keepAlive { promise.futureResult.assumeIsolated().whenComplete { _ in self.context?.close(promise: nil) } }
            }
            self.server.requestFinished(route: "local", status: Int(response.status.code), method: local.head.method.rawValue, uri: local.head.uri,
                                        requestID: local.requestID, started: local.started, upstream: nil, identity: nil,
                                        bytesIn: local.body.count, bytesOut: response.body.count, note: response.note)
            self.resumeClientReads()
        }
    }

    private func reject(_ response: ErrorResponse, head: HTTPRequestHead, requestID: String, route: String, close: Bool = false) {
        let hasBody = (head.headers.first(name: "content-length").flatMap(Int.init) ?? 0) > 0 || head.headers.contains(name: "transfer-encoding")
        let keepAlive = head.isKeepAlive && !server.isDraining && !hasBody && !close
        server.answeredHere(response, requestID: requestID, route: route, method: head.method.rawValue, uri: head.uri)
        discarding = true
        closeAfterDiscard = !keepAlive
        respond(response, version: head.version, requestID: requestID, keepAlive: keepAlive)
    }

    private func respond(_ response: ErrorResponse, version: HTTPVersion, requestID: String, keepAlive: Bool) {
        guard let context else { return }
        let body = response.body(requestID: requestID)
        var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
        buffer.writeString(body)
        var responseHead = response.head(version: version, requestID: requestID, contentLength: buffer.readableBytes, keepAlive: keepAlive)
        applyCORS(&responseHead.headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        answered = promise.futureResult
        if !keepAlive { promise.futureResult.assumeIsolated().whenComplete { _ in self.context?.close(promise: nil) } }
    }

    private func respondBuiltIn(_ answer: GatewayServer.BuiltIn, head: HTTPRequestHead, requestID: String, keepAlive: Bool, extra: [(String, String)] = []) {
        guard let context else { return }
        var headers = HTTPHeaders(extra)
        headers.add(name: "content-type", value: answer.contentType)
        headers.add(name: "content-length", value: String(answer.body.count))
        headers.add(name: "x-request-id", value: requestID)
        headers.add(name: "cache-control", value: "no-store")
        if !keepAlive { headers.add(name: "connection", value: "close") }
        applyCORS(&headers)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: answer.status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            var buffer = context.channel.allocator.buffer(capacity: answer.body.count)
            buffer.writeBytes(answer.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        endAnswer(keepAlive: keepAlive)
    }

    /// Ends an answer made here: the rest of the request is read and dropped, and the
    /// connection closes after the answer unless it is kept alive.
    private func endAnswer(keepAlive: Bool) {
        discarding = true
        closeAfterDiscard = !keepAlive
        guard let context else { return }
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        answered = promise.futureResult
        if !keepAlive { promise.futureResult.assumeIsolated().whenComplete { _ in self.context?.close(promise: nil) } }
    }

    private var closingWhenSent = false

    /// Closes once everything written so far went out: an empty write below the HTTP encoder
    /// completes after the ones before it.
    private func closeWhenSent() {
        guard !closingWhenSent else { return }
        closingWhenSent = true
        guard let context, let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self) else {
            context?.close(promise: nil)
            return
        }
        let promise = context.eventLoop.makePromise(of: Void.self)
        encoder.writeAndFlush(NIOAny(ByteBuffer()), promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { _ in self.context?.close(promise: nil) }
    }

    /// 204 to a preflight the `[cors]` policy allows.
    private func respondPreflight(_ allowed: [(String, String)], head: HTTPRequestHead, requestID: String, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "content-length", value: "0")
        headers.add(name: "x-request-id", value: requestID)
        headers.add(name: "vary", value: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
        for (name, value) in allowed { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        server.requestFinished(route: "-", status: 204, method: head.method.rawValue, uri: head.uri, requestID: requestID, started: DispatchTime.now().uptimeNanoseconds,
                               upstream: nil, identity: nil, bytesIn: 0, bytesOut: 0, note: "CORS preflight")
        context?.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .noContent, headers: headers))), promise: nil)
        endAnswer(keepAlive: keepAlive)
    }

    // MARK: Helpers

    /// A client's X-Request-Id is kept when it is 1-128 of [A-Za-z0-9._:-]; otherwise one is made.
    static func requestID(from headers: HTTPHeaders) -> String {
        if let given = headers.first(name: "x-request-id"), RequestIDs.isValid(given.utf8) { return given }
        return RequestIDs.next()
    }

    static func describe(_ error: any Error) -> String {
        if let io = error as? IOError { return io.description }
        return String(describing: error)
    }
}

extension HTTPServerRequestPart {
    var isHead: Bool {
        if case .head = self { return true }
        return false
    }
}
