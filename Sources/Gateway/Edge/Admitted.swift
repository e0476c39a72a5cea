import Foundation
import JOSE
import NIOCore

/// A request admitted for an upstream: its route, who sent it, and the request to write
/// upstream, as bytes. Method, target and request id become strings only when logged.
/// A class: the decision and the exchange hold it by reference (as a struct of a dozen
/// references it was copied, retained and released field by field on the way).
final class Admitted {
    let route: RouteEntry
    /// The request head as the client sent it (a slice of the connection's bytes, not a copy).
    let head: ByteBuffer
    let methodRange: Range<Int>
    let targetRange: Range<Int>
    let isHead: Bool
    let idempotent: Bool
    let keepAlive: Bool
    let identity: Identity?
    /// The request for the first upstream: its request line, then the header block from
    /// `headerStart`, which ends with the request id (the last header value).
    let request: ByteBuffer
    let headerStart: Int
    let requestIDLength: Int
    let upstreams: [Upstream]
    /// The Content-Length body still to come from the client (0: none).
    let bodyLength: Int
    /// The body is chunked: relayed as it comes, its trailers dropped.
    let chunked: Bool
    /// The client spoke HTTP/1.0 (the upstream is spoken to in HTTP/1.1; the answer goes back
    /// in 1.0, a chunked body decoded).
    let http10: Bool
    /// The client waits for `100 Continue` before it sends the body.
    let expectContinue: Bool
    /// `[cors]` was on when the request was read (a reload meanwhile does not change its answer).
    let corsOn: Bool
    /// The CORS headers the answer gets (an allowed Origin under `[cors]`).
    let cors: [(String, String)]?
    /// The client's bytes the head took (its own length, unless it was written again).
    var consumed: Int
    /// The query as forwarded when token parameters were cut from it (`.some(nil)`: none is left).
    let forwardedQuery: Substring??

    init(route: RouteEntry, head: ByteBuffer, methodRange: Range<Int>, targetRange: Range<Int>, isHead: Bool, idempotent: Bool, keepAlive: Bool,
         identity: Identity?, request: ByteBuffer, headerStart: Int, requestIDLength: Int, upstreams: [Upstream], bodyLength: Int, chunked: Bool,
         http10: Bool, expectContinue: Bool, corsOn: Bool, cors: [(String, String)]?, consumed: Int, forwardedQuery: Substring??) {
        self.route = route
        self.head = head
        self.methodRange = methodRange
        self.targetRange = targetRange
        self.isHead = isHead
        self.idempotent = idempotent
        self.keepAlive = keepAlive
        self.identity = identity
        self.request = request
        self.headerStart = headerStart
        self.requestIDLength = requestIDLength
        self.upstreams = upstreams
        self.bodyLength = bodyLength
        self.chunked = chunked
        self.http10 = http10
        self.expectContinue = expectContinue
        self.corsOn = corsOn
        self.cors = cors
        self.consumed = consumed
        self.forwardedQuery = forwardedQuery
    }
}

extension Admission {
    /// The upstream request: the request line (as it came when the target is unchanged), the
    /// client's header lines not dropped (copied in runs), then the gateway's own: identity,
    /// forwarding, Host, request id.
    mutating func writeUpstreamRequest(_ p: UnsafeRawBufferPointer, entry: RouteEntry, upstream: Upstream, method: Range<Int>, path: Range<Int>,
                                       query: Range<Int>?, cut: Cut, http10: Bool, linesStart: Int, end: Int, facts: HeadFacts, host: Range<Int>?,
                                       requestID givenRequestID: Range<Int>?, identity: Identity?,
                                       state: GatewayState) -> (request: ByteBuffer, headerStart: Int, requestIDLength: Int) {
        var block: ByteBuffer
        if var scratch = requestScratch.take() {
            scratch.clear(minimumCapacity: end + 320 + (identity == nil ? 0 : 512))
            block = scratch
        } else {
            block = allocator.buffer(capacity: end + 320 + (identity == nil ? 0 : 512))
        }
        let lineUnchanged = entry.targetUnchanged && cut.query == nil && !http10
        if !lineUnchanged {
            let uri = Router.upstreamURI(route: entry.config, upstream: upstream, path: HTTPScan.string(p, path),
                                         query: cut.query ?? query.map { Substring(HTTPScan.string(p, $0)) })
            Self.writeRequestLine(&block, method: HTTPScan.string(p, method), uri: uri)
        }
        let headerStart = lineUnchanged ? linesStart : block.writerIndex
        // The request line when unchanged, and the client's header lines not dropped, in runs.
        let fields = self.fields
        block.writeWithUnsafeMutableBytes(minimumWritableBytes: end) { room in
            var out = ByteWriter(room)
            out.putRuns(p, fields: fields, dropped: facts.dropped, first: lineUnchanged ? 0..<linesStart : nil)
            return out.count
        }
        func add(_ name: String, _ value: String) {
            block.writeString(name)
            block.writeStaticString(": ")
            block.writeString(value)
            block.writeStaticString("\r\n")
        }
        if let cookies = cut.cookieLine {
            block.writeStaticString("cookie: ")
            block.writeBytes(cookies)
            block.writeStaticString("\r\n")
        }
        if let identity {
            let names = state.config.identity
            if let user = identity.userID, !names.userID.isEmpty { add(names.userID, user) }
            if let role = identity.role, !names.role.isEmpty { add(names.role, role) }
            if let session = identity.sessionID, !names.sessionID.isEmpty { add(names.sessionID, session) }
            if !names.tenantID.isEmpty { add(names.tenantID, identity.tenantID) }
            if !names.claims.isEmpty { add(names.claims, identity.token.payloadSegment) }
        }
        // The forwarding headers (made once per connection: x-forwarded-for, -proto, x-real-ip,
        // the start of x-forwarded-host), the host, the request id.
        let requestNumber: UInt64 = givenRequestID == nil ? RequestIDs.nextNumber() : 0
        var requestIDLength = 0
        let forwardedFor = facts.forwardedFor, more = facts.moreForwardedFor
        let room: Int = forwarding.count + (forwardedFor?.count ?? 0) + more.reduce(0) { $0 + $1.count + 2 } + (host?.count ?? 0) + 20
            + (givenRequestID?.count ?? RequestIDs.maximumLength) + 24
        _ = forwarding.withUnsafeBytes { forwarding in
            block.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { room in
                var out = ByteWriter(room)
                if let forwardedFor {
                    let name = Self.forwardedForName.count
                    out.put(UnsafeRawBufferPointer(rebasing: forwarding[..<name]))
                    out.put(p, forwardedFor)
                    // Several fields make one list (RFC 9110 section 5.3).
                    for value in more {
                        out.put(", ")
                        out.put(p, value)
                    }
                    out.put(", ")
                    out.put(UnsafeRawBufferPointer(rebasing: forwarding[name...]))
                } else {
                    out.put(forwarding)
                }
                if let host {
                    out.put("x-forwarded-host: ")
                    out.put(p, host)
                    out.put("\r\n")
                }
                out.put("x-request-id: ")
                let idStart = out.count
                if let given = givenRequestID { out.put(p, given) } else { RequestIDs.put(requestNumber, into: &out) }
                requestIDLength = out.count - idStart
                out.put("\r\n\r\n")
                return out.count
            }
        }
        if block.capacity <= Self.scratchLimit { requestScratch = block }
        return (block, headerStart, requestIDLength)
    }

    static func writeRequestLine(_ buffer: inout ByteBuffer, method: String, uri: String) {
        buffer.writeString(method)
        buffer.writeStaticString(" ")
        buffer.writeString(uri)
        buffer.writeStaticString(" HTTP/1.1\r\n")
    }
}
