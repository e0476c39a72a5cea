import Foundation
import CoreMetrics
import JOSE
import NIOCore
import NIOHTTP1

extension ClientConnectionHandler {
    func takeRequests() {
        while exchange == nil, local == nil, !closing, let buffered = inbound, buffered.readableBytes > 0 {
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
            case .fullReader(let why):
                answerUnreadable(buffered, why: why)
                if closing { return }
            case .rewritten:
                answerUnreadable(buffered, why: "written again twice")
                if closing { return }
            case .answer(let refusal):
                inbound!.moveReaderIndex(forwardBy: refusal.consumed)
                if inbound!.readableBytes == 0 { inbound = nil }
                if let reason = refusal.verification { server.metrics.verification(reason) }
                server.answeredHere(refusal.response, requestID: refusal.requestID, route: refusal.route, method: refusal.method, uri: refusal.target)
                becameIdle()
                let keepAlive = refusal.keepAlive && !server.isDraining
                context?.write(wrapOutboundOut(refusal.response.bytes(requestID: refusal.requestID, keepAlive: keepAlive, toHEAD: refusal.method == "HEAD",
                                                                     varyOrigin: state.config.cors != nil, cors: refusal.cors, http10: refusal.http10,
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
                                                            varyOrigin: state.config.cors != nil, cors: extra, http10: call.http10, allocator: allocator)), promise: nil)
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
                return begin(Exchange(admitted), consumed: admitted.consumed, sessionID: nil)
            case .awaitSession(let admitted, let sessionID):
                return begin(Exchange(admitted), consumed: admitted.consumed, sessionID: sessionID)
            }
        }
        resumeClientReads()
    }

    /// An admitted request becomes the exchange in flight: its body (if any) starts to move,
    /// and the upstream is connected, after the runtime found its session when the route needs one.
    func begin(_ exchange: Exchange, consumed: Int, sessionID: String?) {
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
    func proceed(_ exchange: Exchange) {
        if exchange.admitted.expectContinue {
            context?.writeAndFlush(wrapOutboundOut(ByteBuffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
        }
        pumpBody(exchange)
        // The body may have ended it already (its framing broke, or it is over the limit).
        guard self.exchange === exchange else { return }
        connect(exchange)
    }

    /// A head the byte scanner does not read: NIOHTTP1's parser says why (400 with its reason,
    /// and the connection ends: what follows cannot be read as requests), or, where it reads
    /// the head, the gateway says why it is still refused.
    func answerUnreadable(_ buffered: ByteBuffer, why: StaticString) {
        let end = buffered.withUnsafeReadableBytes { HTTPScan.headEnd($0) } ?? buffered.readableBytes
        guard let head = buffered.getSlice(at: buffered.readerIndex, length: end) else { return answerAndClose(.badRequest("the request is not valid HTTP/1.1")) }
        switch HeadParser.parse(head) {
        case .refused(let response):
            inbound = nil
            answerAndClose(response)
        case .head(let parsed):
            let response: ErrorResponse
            switch "\(why)" {
            case "target form":
                response = .badRequest(parsed.uri.lowercased().hasPrefix("http") ? "an absolute request target must be http(s)://host[:port]/path, without user information"
                                                                                  : "request target must be an absolute path")
            case "chunked local API request":
                response = ErrorResponse(status: .lengthRequired, error: "length_required", reason: "the gateway's own endpoints read a body with a Content-Length")
            case "Transfer-Encoding in HTTP/1.0":
                response = .badRequest("an HTTP/1.0 request has no Transfer-Encoding")
            default:
                response = .badRequest("the request head is not one the gateway reads (\(why))")
            }
            // Its body, if it has one, is not read: the connection ends after the answer.
            let bodyless = (parsed.headers.first(name: "content-length").flatMap(Int.init) ?? 0) == 0 && !parsed.headers.contains(name: "transfer-encoding")
            let keepAlive = parsed.isKeepAlive && bodyless && !server.isDraining
            let requestID = parsed.headers.first(name: "x-request-id").flatMap { RequestIDs.isValid($0.utf8) ? $0 : nil } ?? RequestIDs.next()
            inbound!.moveReaderIndex(forwardBy: end)
            if inbound!.readableBytes == 0 { inbound = nil }
            server.answeredHere(response, requestID: requestID, method: parsed.method.rawValue, uri: parsed.uri)
            becameIdle()
            context?.write(wrapOutboundOut(response.bytes(requestID: requestID, keepAlive: keepAlive, toHEAD: parsed.method == .HEAD,
                                                         varyOrigin: currentState().config.cors != nil, http10: parsed.version.minor == 0,
                                                         allocator: allocator)), promise: nil)
            clientNeedsFlush = true
            if !keepAlive { closeAfterWrites() }
        }
    }
}
