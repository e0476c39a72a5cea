import Foundation
import CoreMetrics
import JOSE
import NIOCore
import NIOHTTP1

extension ClientConnectionHandler {
    // MARK: Upstream

    func connect(_ exchange: Exchange) {
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
                if ConnectionStateMachine.retriesConnect(idempotent: exchange.admitted.idempotent, attempt: exchange.attempt, upstreams: exchange.admitted.upstreams.count) {
                    exchange.attempt = 1
                    self.machine.reconnecting(now: DispatchTime.now().uptimeNanoseconds)
                    exchange.upstream = exchange.admitted.upstreams[1]
                    // The request line depends on the upstream (its base path); the headers do not.
                    let uri = Router.upstreamURI(route: exchange.route.config, upstream: exchange.upstream, path: exchange.path, query: exchange.admitted.forwardedQuery ?? exchange.query)
                    var request = ByteBuffer()
                    request.reserveCapacity(exchange.request.readableBytes + uri.utf8.count)
                    Admission.writeRequestLine(&request, method: exchange.method, uri: uri)
                    let original = exchange.admitted.request, start = exchange.admitted.headerStart
                    request.writeImmutableBuffer(original.getSlice(at: start, length: original.writerIndex - start)!)
                    exchange.request = request
                    return self.connect(exchange)
                }
                self.fail(exchange, .connectFailed(route: exchange.route.name, error), note: "cannot connect to \(exchange.upstream): \(ErrorResponse.describe(error))")
            }
        }
    }

    func send(_ exchange: Exchange, on channel: any Channel, handler known: RawUpstreamHandler?) {
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
    func readResponseHead(_ exchange: Exchange) -> ByteBuffer? {
        let corsOn = exchange.corsOn
        while var buffered = exchange.responseHead {
            var out = takeScratch(&responseScratch, capacity: buffered.readableBytes + 96)
            let head = buffered.withUnsafeReadableBytes { responseReader.read($0, requestIsHead: exchange.isHead, corsOn: corsOn,
                                                                                  http10Client: exchange.admitted.http10, into: &out) }
            switch head {
            case .incomplete:
                responseScratch = out
                return nil
            case .malformed(let why):
                responseScratch = out
                // (A 101 says what happened in its own words.)
                fail(exchange, .badGateway(why.hasPrefix("upstream") ? why : "upstream answered badly: \(why)"))
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
                // An HTTP/1.0 client's body is delimited by its length, or by the close (a chunked
                // body reaches it decoded).
                let delimited = if case .chunked = head.framing { false } else { true }
                exchange.clientClose = !keepAlive.client || (exchange.admitted.http10 && !delimited)
                // The answer to this request (no Origin) would differ for one with an Origin.
                if corsOn { out.writeStaticString("vary: Origin\r\n") }
                for (name, value) in exchange.cors ?? [] { out.writeString("\(name): \(value)\r\n") }
                exchange.writeRequestIDField(into: &out, close: exchange.clientClose, keepAlive: exchange.admitted.http10 && !exchange.clientClose)
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

    func forwardBody(_ exchange: Exchange, _ bytes: ByteBuffer) {
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
        case .chunked(var scanner) where exchange.admitted.http10:
            // To an HTTP/1.0 client: the chunks' data only (the connection's close ends it).
            var parts: [Range<Int>] = []
            let outcome = bytes.withUnsafeReadableBytes { scanner.scan($0) { parts.append($0) } }
            for range in parts {
                if let part = bytes.getSlice(at: bytes.readerIndex + range.lowerBound, length: range.count) { write(exchange, part) }
            }
            switch outcome {
            case .more:
                exchange.framing = .chunked(scanner)
            case .ends(let count):
                bytes.moveReaderIndex(forwardBy: count)
                complete(exchange, excess: bytes.readableBytes > 0, at: exchange.lastActivity)
            case .malformed, .lastChunk:
                abort(exchange, note: "upstream sent malformed chunked framing", unsent: "upstream answered badly: not valid HTTP/1.1 (malformed chunked framing)")
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
            case .malformed, .lastChunk:
                abort(exchange, note: "upstream sent malformed chunked framing", unsent: "upstream answered badly: not valid HTTP/1.1 (malformed chunked framing)")
            }
        case .untilClose:
            if bytes.readableBytes > 0 { write(exchange, bytes) }
        }
    }

    func write(_ exchange: Exchange, _ bytes: ByteBuffer) {
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
    static let coalesceLimit = 16 * 1024

    func writeStaged() {
        guard let head = staged else { return }
        staged = nil
        context?.write(wrapOutboundOut(head), promise: nil)
        if head.capacity <= Self.scratchLimit { responseScratch = head }
    }

    func flushClient() {
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
    func complete(_ exchange: Exchange, excess: Bool, at now: UInt64? = nil) {
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
    /// `unsent`: what the client is told instead when nothing of the response reached it yet
    /// (its head is still staged): a 502 with the reason, not a head and a cut.
    func abort(_ exchange: Exchange, note: String, unsent: String? = nil) {
        if let unsent, staged != nil, self.exchange === exchange {
            staged = nil
            exchange.bytesOut = 0
            return fail(exchange, .badGateway(unsent), note: note)
        }
        self.exchange = nil
        finish(exchange, status: exchange.status, reusable: false, note: note)
        closeAfterWrites()
    }

    /// Answers what is not a request that can be read (no request id of its own, no route),
    /// then closes: what follows in the connection cannot be read as requests.
    func answerAndClose(_ response: ErrorResponse, started: UInt64 = DispatchTime.now().uptimeNanoseconds, bytesIn: Int = 0) {
        let requestID = RequestIDs.next()
        server.answeredHere(response, requestID: requestID, started: started, bytesIn: bytesIn)
        context?.write(wrapOutboundOut(response.bytes(requestID: requestID, keepAlive: false, allocator: allocator)), promise: nil)
        closeAfterWrites()
    }

    func closeAfterWrites() {
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
                                                   idempotent: exchange.admitted.idempotent, hasBody: exchange.admitted.bodyLength > 0 || exchange.admitted.chunked) {
                // A pooled connection the upstream had closed meanwhile: once more on a fresh one.
                exchange.retriedStale = true
                machine.reconnecting(now: DispatchTime.now().uptimeNanoseconds)
                exchange.handler?.delegate = nil
                exchange.channel = nil
                exchange.handler = nil
                return connect(exchange)
            }
            return fail(exchange, .badGateway(error.map { "upstream connection failed: \(ErrorResponse.describe($0))" } ?? "upstream closed the connection before answering"))
        }
        if case .untilClose = exchange.framing {
            exchange.upstreamKeepAlive = false
            return complete(exchange, excess: false)
        }
        abort(exchange, note: "upstream closed mid-response", unsent: "upstream closed the connection mid-response")
    }

    /// The exchange failed before a response head went out: answer here. The connection stays
    /// usable unless body bytes are still to come.
    /// `note`: the access log's reason, when it says more than the answer may.
    func fail(_ exchange: Exchange, _ response: ErrorResponse, note: String? = nil) {
        self.exchange = nil
        // The answer's body is what goes out (none to HEAD).
        if !exchange.isHead { exchange.bytesOut = response.body(requestID: exchange.requestID).utf8.count }
        finish(exchange, status: Int(response.status.code), reusable: false, note: note ?? response.reason)
        becameIdle()
        // With body bytes still to come, the connection cannot be read as requests again.
        let keepAlive = exchange.keepAlive && !server.isDraining && exchange.bodyRemaining == 0
        context?.write(wrapOutboundOut(response.bytes(requestID: exchange.requestID, keepAlive: keepAlive, toHEAD: exchange.isHead,
                                                     varyOrigin: exchange.corsOn, cors: exchange.cors, http10: exchange.admitted.http10,
                                                     allocator: allocator)), promise: nil)
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
    func finish(_ exchange: Exchange, status: Int, reusable: Bool, note: String?) {
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
