import Foundation
import CoreMetrics
import JOSE
import NIOCore
import NIOHTTP1
import Synchronization

/// The handler on every client connection. It carries out what the admission decides
/// (Edge/Admission: forward, check the session, answer, a built-in, a preflight, the local
/// API) and moves the bytes: the head is read as bytes, the upstream request is written as
/// bytes (the client's header lines copied, the gateway's own added), and the response passes
/// through as bytes, its head read by ResponseHeadReader. Its phases and deadlines are
/// ConnectionStateMachine's. The files:
///
///     ClientConnectionHandler.swift            connection events, reads, the request loop
///     ClientConnectionHandler+Admission.swift  carrying out each decision
///     ClientConnectionHandler+Exchange.swift   one request in flight (upstream or local)
///     ClientConnectionHandler+Local.swift      the local API's requests
///     ClientConnectionHandler+Upstream.swift   connect, send, the response, endings
///     ClientConnectionHandler+Timer.swift      the one timer, and what expires
///
/// A head the byte scanner does not read is read by NIOHTTP1's parser (HTTP1/HeadParser) for
/// the reason it is refused; nothing else reads requests, and no connection changes handlers.
final class ClientConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler, RawUpstreamDelegate {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let server: GatewayServer
    let pool: UpstreamPool
    /// Set while the handler is in the pipeline, nil once it left (closed or handed over): the
    /// context holds the handler, so holding the context after that kept both and everything
    /// they reach alive (every connection leaked). Work that completes later finds it nil.
    var context: ChannelHandlerContext?
    /// Client bytes not used yet (a partial head, or pipelined requests).
    var inbound: ByteBuffer?
    var exchange: Exchange?
    /// A local API request in progress: its body being read, or the runtime answering it.
    var local: LocalExchange?
    var pendingRead = false
    var closing = false
    /// The client shut its sending side: answer what it sent, then close.
    var inputClosed = false
    /// Client bytes buffered beyond this hold further reads (pipelined requests wait in the
    /// socket). Above the largest head allowed (max_header_bytes is at most 64 KiB) and its
    /// CRLF CRLF, so a head over the limit is always seen whole enough to be refused.
    static let inboundLimit = (1 << 16) + 8
    var clientNeedsFlush = false
    var remoteIP = ""
    /// Decides each request from its head's bytes; made once the client's address is known.
    var admission: Admission
    var responseReader = ResponseHeadReader()
    /// The channel's, kept (reading it through the channel costs a lock and a retain).
    var allocator = ByteBufferAllocator()
    /// Tracked from writability events, so the upstream's reads need not ask the channel.
    var clientWritable = true
    /// Body bytes were written upstream in this read cycle and await a flush.
    var upstreamNeedsFlush = false
    /// One timer per connection, re-armed when it fires rather than per request: it checks
    /// the exchange's deadline then (scheduling and cancelling per request cost more than
    /// the rest of a request's bookkeeping).
    var timer: Scheduled<Void>?
    var timerDue: UInt64 = 0
    /// The connection's phase and deadlines (HTTP1/ConnectionStateMachine): the timer asks it
    /// what is due.
    var machine: ConnectionStateMachine
    /// A response head not written yet, so a small body can join it in one write.
    var staged: ByteBuffer?
    /// The last upstream request and response head written: their storage is used again
    /// for the next ones once nothing else holds it (written out, exchange over), which
    /// saves two allocations per request.
    var responseScratch: ByteBuffer?

    /// A cleared buffer of at least `capacity` bytes: the scratch's storage when only the
    /// scratch holds it, else a new one (`clear` never copies).
    static let scratchLimit = 4096

    @inline(__always)
    func takeScratch(_ scratch: inout ByteBuffer?, capacity: Int) -> ByteBuffer {
        guard var buffer = scratch.take() else { return allocator.buffer(capacity: capacity) }
        buffer.clear(minimumCapacity: capacity)
        return buffer
    }
    /// The metric handles of the last route served (connections mostly stay on one route).
    var lastCounter: (route: String, status: Int, counter: CoreMetrics.Counter)?
    var lastTimer: (route: String, timer: CoreMetrics.Timer)?
    /// Counts tokens that verified (the handle kept: taking it costs a lock and a lookup).
    var validCounter: CoreMetrics.Counter?

    func requestCounter(_ route: String, _ status: Int) -> CoreMetrics.Counter {
        if let last = lastCounter, last.status == status, last.route == route { return last.counter }
        let counter = server.metrics.requestCounter(route: route, status: status)
        lastCounter = (route, status, counter)
        return counter
    }

    func latencyTimer(_ route: String) -> CoreMetrics.Timer {
        if let last = lastTimer, last.route == route { return last.timer }
        let timer = server.metrics.latencyTimer(route: route)
        lastTimer = (route, timer)
        return timer
    }

    init(server: GatewayServer, pool: UpstreamPool) {
        self.server = server
        self.pool = pool
        machine = ConnectionStateMachine(clientIdle: UInt64(server.state.config.server.clientIdleTimeout * 1e9), now: DispatchTime.now().uptimeNanoseconds)
        admission = Admission(localAPI: server.localAPI, remoteIP: "")
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
    func becameIdle(at now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        machine.answered(now: now)
        armDeadline()
    }

    /// Makes sure the timer fires by the state machine's next deadline.
    func armDeadline() {
        if let due = machine.deadline { armTimer(due: due) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
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
                finish(exchange, status: 499, reusable: false, note: exchange.requestChunks == nil ? "client closed with \(exchange.bodyRemaining) body bytes to go" : "client closed before its chunked body ended")
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
    var mayReadClient: Bool {
        if closing || (inbound?.readableBytes ?? 0) > Self.inboundLimit { return false }
        if let exchange, exchange.bodyRemaining > 0, !(exchange.channel?.isWritable ?? false) { return false }
        return true
    }

    func resumeClientReads() {
        if inputClosed, exchange == nil, local == nil, !closing { return closeAfterWrites() }
        guard pendingRead, mayReadClient else { return }
        pendingRead = false
        context?.read()
    }

    func upstreamWritabilityChanged() {
        resumeClientReads()
    }

    /// Moves request-body bytes from `inbound` to the upstream (or to the exchange while it
    /// connects).
    func pumpBody(_ exchange: Exchange) {
        if exchange.requestChunks != nil { return pumpChunks(exchange) }
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

    /// Moves a chunked request body from `inbound` as it is, up to its last chunk; the trailer
    /// section is dropped (the last chunk is closed with a bare CRLF), and the body's data may
    /// not pass `max_body_bytes`.
    func pumpChunks(_ exchange: Exchange) {
        while exchange.bodyRemaining > 0, var buffered = inbound, buffered.readableBytes > 0, var scanner = exchange.requestChunks {
            let outcome = buffered.withUnsafeReadableBytes { scanner.scan($0) }
            exchange.requestChunks = scanner
            let now = DispatchTime.now().uptimeNanoseconds
            machine.clientBody(now: now)
            var forward: ByteBuffer? = nil, ended = false
            switch outcome {
            case .more:
                let part = buffered.readSlice(length: buffered.readableBytes)
                if !exchange.inTrailers { forward = part }
            case .lastChunk(let count):
                forward = buffered.readSlice(length: count)
                forward?.writeStaticString("\r\n")
                exchange.inTrailers = true
            case .ends(let count):
                let part = buffered.readSlice(length: count)
                if !exchange.inTrailers { forward = part }
                ended = true
            case .malformed:
                // The rest cannot be read as requests: answered (or cut, mid-response), then closed.
                inbound = nil
                let response = ErrorResponse.badRequest("a chunk of the chunked request body has an invalid size line")
                if exchange.framing == nil { return fail(exchange, response) }
                return abort(exchange, note: response.reason)
            }
            inbound = buffered.readableBytes > 0 ? buffered : nil
            exchange.bytesIn = Int(clamping: scanner.payload)
            let limit = currentState().config.server.maxBodyBytes
            if limit > 0, scanner.payload > UInt64(limit) {
                inbound = nil
                if exchange.framing == nil { return fail(exchange, .tooLarge("request body exceeds \(limit) bytes")) }
                return abort(exchange, note: "request body exceeds \(limit) bytes")
            }
            if ended { exchange.bodyRemaining = 0 }
            guard let part = forward else { continue }
            guard let handler = exchange.handler else {
                exchange.pendingBody.append(part)
                continue
            }
            handler.write(part)
            if ended {
                handler.flush()
                requestSent(at: now)
            } else {
                upstreamNeedsFlush = true
            }
        }
    }

    func requestSent(at now: UInt64) {
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

    var cachedState: GatewayState?
    var cachedGeneration = -1

    /// The server's state, read again only after a reload (reading it takes a lock).
    func currentState() -> GatewayState {
        let generation = server.stateGeneration.load(ordering: .acquiring)
        if generation != cachedGeneration || cachedState == nil {
            cachedState = server.state
            cachedGeneration = generation
        }
        return cachedState!
    }

    /// `nextRequest` is running; a call made meanwhile (from a write it made, say) asks it to
    /// look again rather than nesting.
    var takingRequests = false
    var lookAgain = false

    /// Takes the next complete requests from `inbound` while nothing is in flight: requests
    /// answered here (refused, no route) one after another in a loop, so a client that pipelines
    /// thousands of them gets as many answers and no deeper stack.
    func nextRequest() {
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
        if clientNeedsFlush { flushClient() }
    }

}
