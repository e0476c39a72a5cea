import Foundation
import CoreMetrics
import JOSE
import NIOCore
import NIOHTTP1

extension ClientConnectionHandler {
    func takeRequests() {
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
            case .fullReader, .rewritten:
                return handOver()
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

    /// Gives the connection to the full HTTP stack, with the bytes not used yet.
    func handOver() {
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
}
