import NIOCore

/// How a response body ends.
enum Framing {
    case none
    case length(Int)
    case chunked(ChunkedScanner)
    case untilClose
}

/// Reads an upstream's response head as bytes and writes the client's: HTTP/1.1, the status
/// line's rest and the fields kept, copied in runs. Hop-by-hop fields, the fields a
/// Connection header names, the upstream's X-Request-Id, framing fields a 204/304 may not
/// have and (under `[cors]`) Access-Control-* go. Decides the body's framing. No channels.
struct ResponseHeadReader {
    static let limit = 64 * 1024

    enum Outcome {
        /// The head has not all arrived.
        case incomplete
        /// A 1xx other than 101: skipped, `end` bytes.
        case informational(end: Int)
        /// Not an answer the gateway passes on; the client gets a 502 with this reason.
        case malformed(String)
        /// `end` bytes were the head; the client's head (without its final CRLF) was written.
        case ready(Head)
    }

    struct Head {
        let end: Int
        let status: Int
        /// The upstream asked to close (Connection: close, or HTTP/1.0).
        let upstreamClose: Bool
        let framing: Framing
    }

    private var fields: [HTTPScan.Field] = []

    init() { fields.reserveCapacity(32) }

    /// `requestIsHead`: the request was HEAD (no body follows whatever the fields say).
    /// `corsOn`: the gateway is the CORS authority. `http10Client`: the client spoke HTTP/1.0,
    /// so the head says HTTP/1.0 and a chunked body reaches it decoded (Transfer-Encoding goes).
    /// The client's head goes to `out`.
    mutating func read(_ p: UnsafeRawBufferPointer, requestIsHead: Bool, corsOn: Bool, http10Client: Bool = false, into out: inout ByteBuffer) -> Outcome {
        // The limit holds whether the head arrived in one read or in several.
        guard let end = HTTPScan.headEnd(p) else { return p.count > Self.limit ? .malformed("response head over 64 KiB") : .incomplete }
        guard end <= Self.limit else { return .malformed("response head over 64 KiB") }
        // Status line: HTTP/1.x SP 3DIGIT SP reason CRLF.
        guard end >= 14, HTTPScan.equals(p, 0, "HTTP/1."), p[7] == 0x30 || p[7] == 0x31,
              p[8] == HTTPScan.sp, let code = HTTPScan.decimal(p, 9..<12), (100...999).contains(code) else {
            return .malformed("malformed status line")
        }
        let http10 = p[7] == 0x30
        // The code is three digits followed by SP (or the line's end); the reason phrase is
        // passed on, so it may not hold control characters.
        guard p[12] == HTTPScan.sp || p[12] == HTTPScan.cr else { return .malformed("malformed status line") }
        var lineEnd = 12
        while lineEnd < end, p[lineEnd] != HTTPScan.lf { lineEnd += 1 }
        guard lineEnd < end, p[lineEnd - 1] == HTTPScan.cr else { return .malformed("malformed status line") }
        // A CR right after the code ends the line there (no reason phrase).
        guard p[12] != HTTPScan.cr || lineEnd == 13 else { return .malformed("malformed status line") }
        for k in 13..<max(13, lineEnd - 1) where HTTPScan.isControl(p[k]) {
            return .malformed("control character in the status line")
        }
        if code < 200 { return code == 101 ? .malformed("upstream switched protocols unasked") : .informational(end: end) }
        fields.removeAll(keepingCapacity: true)
        guard HTTPScan.fields(p, from: lineEnd + 1, to: end, into: &fields) else { return .malformed("malformed response header") }
        var contentLength: Int? = nil, upstreamClose = http10
        var listed: [String] = []
        var sawCoding = false, chunked = false
        var lastCoding: Range<Int>? = nil, otherCodingName: Range<Int>? = nil
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
                // Under a [cors] policy the gateway is the CORS authority: an upstream's own
                // Access-Control-* headers go (a cache could hand them to a browser).
                if corsOn, name.count > 15, HTTPScan.equalsLowercase(p, name.lowerBound..<(name.lowerBound + 15), "access-control-") { dropped.insert(index) }
            }
        }
        let bodiless = requestIsHead || code == 204 || code == 304
        if sawCoding, !bodiless {
            // Only chunked is relayed, as HAProxy does: another coding (gzip, identity) would
            // reach the client unlabelled from a reader that re-chunks.
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
            for (index, field) in fields.enumerated() where HTTPScan.equalsLowercase(p, field.name, "content-length")
                || (http10Client && HTTPScan.equalsLowercase(p, field.name, "transfer-encoding")) {
                dropped.insert(index)
            }
        }
        let fields = self.fields
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: end) { room in
            var writer = ByteWriter(room)
            writer.put(http10Client ? "HTTP/1.0" : "HTTP/1.1")
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
        let framing: Framing
        if bodiless {
            framing = .none
        } else if chunked {
            framing = .chunked(ChunkedScanner())
        } else if let contentLength {
            framing = contentLength == 0 ? .none : .length(contentLength)
        } else {
            framing = .untilClose
        }
        return .ready(Head(end: end, status: code, upstreamClose: upstreamClose, framing: framing))
    }
}
