import Foundation
import JOSE
import NIOCore
import NIOHTTP1

/// The one place a request is admitted. It takes the bytes of a request head and the config
/// snapshot and returns a decision: forward (the upstream request ready, as bytes), check the
/// runtime session first, answer here, or read the request with the full reader. It owns no
/// channel and does no I/O; the connection handler carries its decision out.
///
/// The head is read as bytes, once: the request line, then each field noted as one the edge
/// reads (Host, the token sources, framing, the forwarding headers) or drops (hop-by-hop, the
/// identity namespace, spoofed forwarding headers), the rest to be copied as it came.
struct Admission {
    /// The largest local API request body.
    static let localBodyLimit = 1 << 20
    /// How long a local API request (a login, a session call) may wait for the runtime.
    static let localTimeout = 10.0

    let localAPI: LocalAPI
    /// `x-forwarded-for: IP\r\nx-forwarded-proto: http\r\nx-real-ip: IP\r\n`
    /// for the connection's client.
    let forwarding: [UInt8]
    static let forwardedForName = Array("x-forwarded-for: ".utf8)
    /// The fields of the head being read (kept to reuse its storage).
    var fields: [HTTPScan.Field] = []
    /// The last upstream request's storage, used again once nothing else holds it.
    var requestScratch: ByteBuffer?
    var allocator = ByteBufferAllocator()
    static let scratchLimit = 4096

    init(localAPI: LocalAPI, remoteIP: String, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.localAPI = localAPI
        self.allocator = allocator
        forwarding = Self.forwardedForName + Array("\(remoteIP)\r\nx-forwarded-proto: http\r\nx-real-ip: \(remoteIP)\r\n".utf8)
        fields.reserveCapacity(32)
    }

    /// What happens to the request whose head starts `buffer`'s readable bytes.
    mutating func decide(_ buffer: ByteBuffer, state: GatewayState) -> Decision {
        let decision = buffer.withUnsafeReadableBytes { decide($0, buffer: buffer, state: state) }
        switch decision {
        case .rewritten(let canonical, let consumed):
            // The head again in the form the scanner reads (origin-form target, the Host it
            // names): decided as any other, accounting for the bytes the client sent.
            var again = canonical.withUnsafeReadableBytes { decide($0, buffer: canonical, state: state) }
            if case .rewritten = again { again = .fullReader("rewritten twice") }
            if canonical.withUnsafeReadableBytes(Self.isHTTP10) { again = again.inHTTP10() }
            return again.consuming(consumed)
        case .forward, .awaitSession, .incomplete, .fullReader:
            return decision
        default:
            // An answer made here speaks the client's version.
            return buffer.withUnsafeReadableBytes(Self.isHTTP10) ? decision.inHTTP10() : decision
        }
    }

    /// Whether the request line in `p` ends in HTTP/1.0.
    static func isHTTP10(_ p: UnsafeRawBufferPointer) -> Bool {
        guard let base = p.baseAddress, let found = memchr(base, Int32(HTTPScan.lf), p.count) else { return false }
        let lf = base.distance(to: UnsafeRawPointer(found))
        return lf >= 9 && HTTPScan.equals(p, lf - 9, "HTTP/1.0") && p[lf - 1] == HTTPScan.cr
    }

    /// What the head says about itself, as ranges of its bytes.
    struct HeadFacts {
        var host: Range<Int>? = nil, authorization: Range<Int>? = nil, apikey: Range<Int>? = nil
        var requestID: Range<Int>? = nil, forwardedFor: Range<Int>? = nil
        var hostTwice = false
        /// Connection: keep-alive (what keeps an HTTP/1.0 connection open).
        var keepAliveAsked = false
        /// Transfer-Encoding is chunked, once; or what is wrong with it.
        var chunked = false
        var codingProblem: String? = nil
        /// X-Forwarded-For fields after the first (their values join the list, in order).
        var moreForwardedFor: [Range<Int>] = []
        /// Field names a Connection header lists (lower case): those fields are hop-by-hop.
        var connectionListed: [String] = []
        /// Authorization and apikey fields given more than once (a token source may not be).
        var authorizationTwice = false, apikeyTwice = false
        /// The Cookie fields' values, and the fields.
        var cookies: [Range<Int>] = []
        var cookieFields: [Int] = []
        var keepAlive = true
        var contentLength: Int? = nil
        var expectContinue = false
        /// Fields not copied to the upstream.
        var dropped = HTTPScan.FieldMask()
        /// Origin fields (under `[cors]`), and a preflight's Access-Control-Request-* fields.
        var origins: [Range<Int>] = []
        var requestMethod: Range<Int>? = nil
        var requestHeaders: [Range<Int>] = []
        /// Method-override headers, dropped unless the route allows them.
        var overrides: [Int] = []
    }

    private mutating func decide(_ p: UnsafeRawBufferPointer, buffer: ByteBuffer, state: GatewayState) -> Decision {
        guard let end = HTTPScan.headEnd(p) else { return .incomplete }
        let headLimit = state.config.server.maxHeaderBytes

        // Request line: method SP origin-form SP HTTP/1.1 CRLF. A method here is upper-case
        // letters and '-' (every method NIOHTTP1 knows is): any other token (get, patch) goes to
        // the full reader, which refuses what its parser does not know, so a route's `methods`
        // are never passed by a spelling an upstream might read as the same method.
        var i = 0
        while i < end, (p[i] >= 0x41 && p[i] <= 0x5A) || p[i] == UInt8(ascii: "-") { i += 1 }
        guard i > 0, i < end, p[i] == HTTPScan.sp else { return .fullReader("method") }
        let methodRange = 0..<i
        i += 1
        let targetStart = i
        if methodRange.count == 7, HTTPScan.equals(p, methodRange, "CONNECT") {
            // Whatever the target's form: answered here, with its reason (NIOHTTP1 would take
            // what follows as a tunnel and give the answer no body), and the connection ends.
            while i < end, p[i] > 0x20 { i += 1 }
            return .answer(Refusal(response: .connectNotSupported, verification: nil, route: "-", method: "CONNECT",
                                   target: HTTPScan.string(p, targetStart..<i), requestID: RequestIDs.next(), keepAlive: false, consumed: end))
        }
        // Origin form, or `*` (asterisk form, OPTIONS only); the absolute form goes to the full
        // reader, which reads its authority as the Host.
        let asterisk = i + 1 < end && p[i] == UInt8(ascii: "*") && p[i + 1] == HTTPScan.sp && HTTPScan.equals(p, methodRange, "OPTIONS")
        guard asterisk || (i < end && p[i] == UInt8(ascii: "/")) else {
            // RFC 9112 section 3.2.2: a server accepts the absolute form, and its authority is
            // the host (the Host field is ignored). Routed and forwarded in origin form.
            var targetEnd = i
            while targetEnd < end, p[targetEnd] > 0x20 { targetEnd += 1 }
            guard let (authority, target) = Self.absoluteForm(HTTPScan.string(p, i..<targetEnd)), let authority else { return .fullReader("target form") }
            return rewrite(p, end: end, method: methodRange, targetEnd: targetEnd, target: Array(target.utf8), host: authority)
        }
        // A fragment ('#') is refused below, with the target up to it (what follows it is never logged).
        var fragment: Int? = nil
        while i < end, p[i] > 0x20, p[i] != 0x7F {
            if p[i] == UInt8(ascii: "#"), fragment == nil { fragment = i }
            i += 1
        }
        let targetRange = targetStart..<(fragment ?? i)
        guard i + 10 <= end, p[i] == HTTPScan.sp else { return .fullReader("target") }
        // HTTP/1.1, or HTTP/1.0 (answered in 1.0: no chunked body, kept alive only if asked).
        guard HTTPScan.equals(p, i + 1, "HTTP/1."), p[i + 8] == 0x31 || p[i + 8] == 0x30, p[i + 9] == HTTPScan.cr, p[i + 10] == HTTPScan.lf else {
            return .fullReader("version")
        }
        let http10 = p[i + 8] == 0x30
        let linesStart = i + 11

        fields.removeAll(keepingCapacity: true)
        guard HTTPScan.fields(p, from: linesStart, to: end, into: &fields) else { return .fullReader("field syntax") }
        var facts = HeadFacts()
        if let why = Self.readFields(p, fields, state: state, into: &facts) { return .fullReader(why) }
        if http10 {
            // HTTP/1.0 closes unless the client asked to keep the connection; it has no chunked
            // bodies and no 100-continue.
            facts.keepAlive = facts.keepAlive && facts.keepAliveAsked
            if facts.chunked || facts.codingProblem != nil { return .fullReader("Transfer-Encoding in HTTP/1.0") }
            facts.expectContinue = false
        }
        // A Host name with its trailing dot is routed and forwarded without it: the full reader
        // rewrites it (rare; the bytes here are matched as they are).
        if let host = facts.host, HTTPScan.isValidHost(p, host), let dot = HTTPScan.hostTrailingDot(p, host) {
            // `secure.example.` is `secure.example`: routed and forwarded without the dot, so an
            // upstream's virtual hosts and the route's `host` read the same name.
            let name = HTTPScan.string(p, host.lowerBound..<dot) + HTTPScan.string(p, (dot + 1)..<host.upperBound)
            return rewrite(p, end: end, method: methodRange, targetEnd: i, target: Array(UnsafeRawBufferPointer(rebasing: p[targetStart..<i])), host: name)
        }

        // The path, read as bytes. Raw non-ASCII goes to the full reader, which routes it as a
        // string; anything that could spell a dot segment or an encoding is checked as there.
        var pathEnd = targetRange.lowerBound
        var suspicious = false, previousSlash = false
        while pathEnd < targetRange.upperBound, p[pathEnd] != UInt8(ascii: "?") {
            let b = p[pathEnd]
            if b >= 0x80 { suspicious = true }
            if b == UInt8(ascii: "%") || b == UInt8(ascii: ".") || b == UInt8(ascii: "\\") || b == UInt8(ascii: ";") || (b == UInt8(ascii: "/") && previousSlash) { suspicious = true }
            previousSlash = b == UInt8(ascii: "/")
            pathEnd += 1
        }
        let pathRange = targetRange.lowerBound..<pathEnd
        let queryRange: Range<Int>? = pathEnd < targetRange.upperBound ? (pathEnd + 1)..<targetRange.upperBound : nil
        let unsafePath = suspicious ? Router.unsafePath(HTTPScan.string(p, pathRange)) : nil
        let givenRequestID = facts.requestID.flatMap { RequestIDs.isValid(UnsafeRawBufferPointer(rebasing: p[$0])) ? $0 : nil }
        // Under `[cors]` the gateway is the CORS authority: one Origin (browsers never send two;
        // two allow nothing) that the policy allows gets the CORS headers on every answer.
        let hasBody = (facts.contentLength ?? 0) > 0 || facts.chunked || facts.codingProblem != nil
        let policy = state.config.cors
        let origin = policy != nil && facts.origins.count == 1 ? HTTPScan.string(p, facts.origins[0]) : nil
        let cors: [(String, String)]? = origin.flatMap { origin in policy.flatMap { $0.allows(origin) ? $0.responseHeaders(origin: origin) : nil } }
        func refusal(_ response: ErrorResponse, verification: String? = nil, route: String) -> Decision {
            // A refused request's body is not read: the connection closes after the answer, so
            // body bytes can never be taken for the next request.
            .answer(Refusal(response: response, verification: verification, route: route, method: HTTPScan.string(p, methodRange),
                            target: HTTPScan.string(p, targetRange), requestID: givenRequestID.map { HTTPScan.string(p, $0) } ?? RequestIDs.next(),
                            keepAlive: facts.keepAlive && !hasBody, consumed: end, cors: cors, http10: http10))
        }
        // What is wrong with the head itself, in the order the full reader said it.
        if fragment != nil { return refusal(.fragmentInTarget, route: "-") }
        if let why = unsafePath { return refusal(.badRequest(why), route: "-") }
        if end > headLimit { return refusal(.headersTooLarge("request head is \(end) bytes, the limit is \(headLimit)"), route: "-") }
        if facts.contentLength != nil, facts.chunked || facts.codingProblem != nil {
            // Which one frames the body? (RFC 9112 section 6.3: a request smuggling vector.)
            return refusal(.badRequest("Content-Length is given more than once or beside Transfer-Encoding"), route: "-")
        }
        if facts.hostTwice { return refusal(.badRequest("more than one Host header"), route: "-") }
        if facts.host == nil, !http10 { return refusal(.badRequest("HTTP/1.1 requests need a Host header"), route: "-") }
        let host = facts.host
        if let host, !HTTPScan.isValidHost(p, host) { return refusal(.badRequest("the Host header is not a host name or [IPv6] with an optional :port"), route: "-") }
        if let problem = facts.codingProblem {
            // RFC 9112 section 6.1: a coding the gateway does not know is 501; only chunked is
            // relayed, as HAProxy does.
            return refusal(ErrorResponse(status: .notImplemented, error: "not_implemented", reason: problem), route: "-")
        }
        if asterisk {
            // About the server, not a resource: answered here with the methods the gateway passes on.
            return .builtIn(BuiltInCall(path: "*", requestID: givenRequestID.map { HTTPScan.string(p, $0) } ?? RequestIDs.next(),
                                        keepAlive: facts.keepAlive && !hasBody, isHead: false, consumed: end, cors: cors))
        }
        if let policy, let origin, HTTPScan.equals(p, methodRange, "OPTIONS"), let method = facts.requestMethod {
            // A preflight is answered here, before routes and tokens (it carries no credentials).
            let asked = facts.requestHeaders.map { HTTPScan.string(p, $0) }.joined(separator: ",")
            switch policy.preflight(origin: origin, method: HTTPScan.string(p, method), headers: asked) {
            case .success(let headers):
                return .preflight(Preflight(headers: headers, method: "OPTIONS", target: HTTPScan.string(p, targetRange),
                                            requestID: givenRequestID.map { HTTPScan.string(p, $0) } ?? RequestIDs.next(),
                                            keepAlive: facts.keepAlive && !hasBody, consumed: end))
            case .failure(let refused):
                // A refused preflight allows nothing.
                return .answer(Refusal(response: .corsRefused(refused.reason), verification: nil, route: "-", method: "OPTIONS",
                                       target: HTTPScan.string(p, targetRange), requestID: givenRequestID.map { HTTPScan.string(p, $0) } ?? RequestIDs.next(),
                                       keepAlive: facts.keepAlive && !hasBody, consumed: end))
            }
        }
        let isHead = HTTPScan.equals(p, methodRange, "HEAD")
        if isHead || HTTPScan.equals(p, methodRange, "GET"), let builtIn = Self.builtInPath(p, pathRange) {
            return .builtIn(BuiltInCall(path: builtIn, requestID: givenRequestID.map { HTTPScan.string(p, $0) } ?? RequestIDs.next(),
                                        keepAlive: facts.keepAlive && !hasBody, isHead: isHead, consumed: end, cors: cors))
        }
        if localAPI.owns(UnsafeRawBufferPointer(rebasing: p[pathRange])) {
            if facts.chunked { return .fullReader("chunked local API request") }
            let length = facts.contentLength ?? 0
            if length > Self.localBodyLimit { return refusal(.tooLarge("request body exceeds \(Self.localBodyLimit) bytes"), route: "local") }
            return .local(LocalCall(method: HTTPScan.string(p, methodRange), target: HTTPScan.string(p, targetRange), path: HTTPScan.string(p, pathRange),
                                    query: queryRange.map { Substring(HTTPScan.string(p, $0)) },
                                    headers: fields.map { (HTTPScan.string(p, $0.name), HTTPScan.string(p, $0.value)) },
                                    requestID: givenRequestID.map { HTTPScan.string(p, $0) } ?? RequestIDs.next(), keepAlive: facts.keepAlive,
                                    isHead: isHead, bodyLength: length, expectContinue: facts.expectContinue, consumed: end, cors: cors))
        }
        // Route.
        guard let entry = state.route(p, method: methodRange, host: host.map { HTTPScan.hostNameRange(p, $0) } ?? 0..<0, path: pathRange) else {
            return refusal(.noRoute, route: "-")
        }
        // Method-override headers go unless the route allows that one by name (never spelled
        // with underscores).
        let allowedOverrides = entry.config.methodOverrides
        for index in facts.overrides {
            let name = fields[index].name
            if allowedOverrides.isEmpty || p[name].contains(UInt8(ascii: "_")) || !allowedOverrides.contains(HTTPScan.canonicalName(p, name)) {
                facts.dropped.insert(index)
            }
        }
        let bodyLimit = state.config.server.maxBodyBytes
        if bodyLimit > 0, let length = facts.contentLength, length > bodyLimit {
            return refusal(.tooLarge("request body of \(length) bytes exceeds \(bodyLimit)"), route: entry.name)
        }

        // Token and policy.
        var identity: Identity? = nil
        let sources = state.config.auth.tokenSources
        if entry.auth != .public {
            let outcome: Authenticator.Outcome
            switch TokenSources.find(p, sources: sources, facts: facts, query: queryRange) {
            case .duplicate(let why): return refusal(.invalidRequest(why), route: entry.name)
            case .none where entry.auth == .optional: outcome = .pass(nil)
            case .none: outcome = state.authenticator.authenticate(route: entry.config, token: nil)
            case .found(let range): outcome = state.authenticator.authenticate(route: entry.config, token: UnsafeRawBufferPointer(rebasing: p[range]))
            case .decoded(var token): outcome = token.withUTF8 { state.authenticator.authenticate(route: entry.config, token: UnsafeRawBufferPointer($0)) }
            }
            switch outcome {
            case .pass(let who):
                identity = who
            case .refuse(let failure):
                return refusal(.auth(failure), verification: failure.reason.rawValue, route: entry.name)
            }
        }
        if entry.sessionRequired, identity?.sessionID == nil {
            // (A session route is never public or optional: the config refuses it.)
            return refusal(.auth(AuthFailure(.missingClaim, "token has no \"session_id\"; this route needs a runtime session")), route: entry.name)
        }
        // Every place a token may come from is cut when the route does not forward it: the
        // Authorization and apikey fields, the token cookies (only those cookies), the query
        // parameters.
        var cut = Cut()
        if !entry.forwardAuthorization {
            for (index, field) in fields.enumerated()
            where HTTPScan.equalsLowercase(p, field.name, "authorization") || HTTPScan.equalsLowercase(p, field.name, "apikey") {
                facts.dropped.insert(index)
            }
            cut = Cut(p, sources: sources, cookies: facts.cookies, query: queryRange)
            if cut.cookieLine != nil || cut.removedCookies { for index in facts.cookieFields { facts.dropped.insert(index) } }
        }

        let upstreams = state.upstreams(for: entry)
        let written = writeUpstreamRequest(p, entry: entry, upstream: upstreams[0], method: methodRange, path: pathRange, query: queryRange,
                                           cut: cut, http10: http10, linesStart: linesStart, end: end, facts: facts, host: host,
                                           requestID: givenRequestID, identity: identity, state: state)
        let idempotent = isHead || HTTPScan.equals(p, methodRange, "GET") || HTTPScan.equals(p, methodRange, "PUT")
            || HTTPScan.equals(p, methodRange, "DELETE") || HTTPScan.equals(p, methodRange, "OPTIONS") || HTTPScan.equals(p, methodRange, "TRACE")
        let admitted = Admitted(route: entry, head: buffer.getSlice(at: buffer.readerIndex, length: end)!, methodRange: methodRange,
                                targetRange: targetRange, isHead: isHead, idempotent: idempotent, keepAlive: facts.keepAlive,
                                identity: identity, request: written.request, headerStart: written.headerStart,
                                requestIDLength: written.requestIDLength, upstreams: upstreams, bodyLength: facts.contentLength ?? 0,
                                chunked: facts.chunked, http10: http10, expectContinue: facts.expectContinue && ((facts.contentLength ?? 0) > 0 || facts.chunked), corsOn: state.config.cors != nil,
                                cors: cors, consumed: end, forwardedQuery: cut.query)
        if entry.sessionRequired, let sessionID = identity?.sessionID { return .awaitSession(admitted, sessionID: sessionID) }
        return .forward(admitted)
    }
}
