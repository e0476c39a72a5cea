import Foundation
import CoreMetrics
import JOSE
import NIOCore
import NIOHTTP1

extension ClientConnectionHandler {
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

    /// One request in flight to an upstream: what the admission decided (`admitted`), and
    /// how the exchange stands.
    final class Exchange {
        let admitted: Admitted
        let started = DispatchTime.now().uptimeNanoseconds
        /// The request for `upstream`: its request line, then the header block from
        /// `admitted.headerStart` (a retry on another upstream writes its own request line).
        var request: ByteBuffer
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
        /// Content-Length body bytes not yet read from the client, parts read before the
        /// upstream connection was ready, bytes read in all.
        var bodyRemaining: Int
        var pendingBody: [ByteBuffer] = []
        var bytesIn = 0

        /// A chunked body: its scanner (1 in `bodyRemaining` until it ends), and whether its
        /// trailer section (dropped) has begun.
        var requestChunks: ChunkedScanner?
        var inTrailers = false

        init(_ admitted: Admitted) {
            self.admitted = admitted
            request = admitted.request
            upstream = admitted.upstreams[0]
            bodyRemaining = admitted.chunked ? 1 : admitted.bodyLength
            if admitted.chunked { requestChunks = ChunkedScanner(stopAtTrailers: true) }
        }

        var route: RouteEntry { admitted.route }
        var identity: Identity? { admitted.identity }
        var isHead: Bool { admitted.isHead }
        var keepAlive: Bool { admitted.keepAlive }
        var corsOn: Bool { admitted.corsOn }
        var cors: [(String, String)]? { admitted.cors }
        /// The route's timeouts, for the state machine.
        var timeouts: ConnectionStateMachine.Timeouts { .init(connect: route.connectNanos, firstByte: route.firstByteNanos, idle: route.idleNanos) }

        lazy var method: String = admitted.head.getString(at: admitted.head.readerIndex + admitted.methodRange.lowerBound, length: admitted.methodRange.count) ?? ""
        lazy var target: String = admitted.head.getString(at: admitted.head.readerIndex + admitted.targetRange.lowerBound, length: admitted.targetRange.count) ?? ""
        /// The request id (the client's, if valid, or one made here), read back from the last
        /// header value of the request, where it was written once as bytes.
        lazy var requestID: String = request.withUnsafeReadableBytes { p in
            String(decoding: UnsafeRawBufferPointer(rebasing: p[(p.count - 4 - admitted.requestIDLength)..<(p.count - 4)]), as: UTF8.self)
        }
        /// The target's path and query (for the request line to a second upstream).
        var path: String { target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target }
        var query: Substring? { target.firstIndex(of: "?").map { target[target.index(after: $0)...] } }

        /// `x-request-id: ID` and the end of the response head (with `connection: close` if asked,
        /// or `connection: keep-alive`, which an HTTP/1.0 client needs to keep the connection).
        func writeRequestIDField(into buffer: inout ByteBuffer, close: Bool, keepAlive: Bool = false) {
            let length = admitted.requestIDLength
            _ = request.withUnsafeReadableBytes { p in
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length + 48) { room in  // "x-request-id: " and the longest ending, "\r\nconnection: keep-alive\r\n\r\n"
                    var out = ByteWriter(room)
                    out.put("x-request-id: ")
                    out.put(p, (p.count - 4 - length)..<(p.count - 4))
                    if close { out.put("\r\nconnection: close\r\n\r\n") } else if keepAlive { out.put("\r\nconnection: keep-alive\r\n\r\n") } else { out.put("\r\n\r\n") }
                    return out.count
                }
            }
        }
    }
}
