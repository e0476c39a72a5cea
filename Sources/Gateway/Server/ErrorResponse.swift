import Foundation
import JOSE
import NIOCore
import NIOHTTP1
import NIOPosix

/// The gateway's own answers, in one vocabulary: a JSON body `{"error", "reason",
/// "request_id"}` and, for token problems, an RFC 6750 challenge. Never a stack trace.
struct ErrorResponse {
    let status: HTTPResponseStatus
    let error: String
    let reason: String
    var challenge: String? = nil

    static func auth(_ failure: AuthFailure) -> ErrorResponse {
        let error = failure.reason == .forbidden ? "insufficient_scope" : (failure.httpStatus == .forbidden ? "forbidden" : "invalid_token")
        return ErrorResponse(status: failure.httpStatus, error: error, reason: "\(failure.reason.rawValue): \(failure.message)",
                             challenge: failure.httpStatus == .unauthorized || failure.reason == .forbidden ? failure.challenge : nil)
    }

    static let noRoute = ErrorResponse(status: .notFound, error: "no_route", reason: "no route matches this request")
    static func badRequest(_ why: String) -> ErrorResponse { ErrorResponse(status: .badRequest, error: "bad_request", reason: why) }
    static let connectNotSupported = badRequest("CONNECT is not supported: the gateway proxies requests, it does not open tunnels")
    static let fragmentInTarget = badRequest("the request target holds a fragment (#): clients do not send one, and an upstream would drop what follows it")
    static func tooLarge(_ why: String) -> ErrorResponse { ErrorResponse(status: .payloadTooLarge, error: "payload_too_large", reason: why) }
    static func headersTooLarge(_ why: String) -> ErrorResponse {
        ErrorResponse(status: .requestHeaderFieldsTooLarge, error: "request_header_fields_too_large", reason: why)
    }
    /// RFC 6750 invalid_request: the token's place in the request is ambiguous.
    static func invalidRequest(_ why: String) -> ErrorResponse {
        ErrorResponse(status: .badRequest, error: "invalid_request", reason: why,
                      challenge: "Bearer realm=\"gateway\", error=\"invalid_request\", error_description=\"\(why)\"")
    }
    static func badGateway(_ why: String) -> ErrorResponse { ErrorResponse(status: .badGateway, error: "bad_gateway", reason: why) }
    static func gatewayTimeout(_ why: String) -> ErrorResponse { ErrorResponse(status: .gatewayTimeout, error: "gateway_timeout", reason: why) }
    /// A CORS preflight the `[cors]` policy does not allow.
    static func corsRefused(_ why: String) -> ErrorResponse { ErrorResponse(status: .forbidden, error: "cors_refused", reason: why) }
    /// The runtime (session store) did not answer, or failed: the word the local API uses too.
    static func runtimeUnavailable(_ why: String) -> ErrorResponse { ErrorResponse(status: .serviceUnavailable, error: "runtime_unavailable", reason: why) }

    func body(requestID: String) -> String {
        "{\"error\":\(JSONLineLogHandler.quote(error)),\"reason\":\(JSONLineLogHandler.quote(reason)),\"request_id\":\(JSONLineLogHandler.quote(requestID))}\n"
    }

    func head(version: HTTPVersion, requestID: String, contentLength: Int, keepAlive: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(contentLength))
        headers.add(name: "x-request-id", value: requestID)
        headers.add(name: "cache-control", value: "no-store")
        if let challenge { headers.add(name: "www-authenticate", value: challenge) }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        return HTTPResponseHead(version: version, status: status, headers: headers)
    }
}

extension ErrorResponse {
    /// A failed upstream connect: 504 when it timed out, 502 otherwise. The client is told the
    /// route and the kind of failure; the upstream's address and the error's detail go to the
    /// access log only (they describe the network behind the gateway).
    static func connectFailed(route: String, _ error: any Error) -> ErrorResponse {
        if case ChannelError.connectTimeout = error { return .gatewayTimeout("connecting to the upstream of route \(route) timed out") }
        return .badGateway("cannot connect to the upstream of route \(route): \(connectFailureKind(error))")
    }

    /// An error as the access log says it.
    static func describe(_ error: any Error) -> String {
        if let io = error as? IOError { return io.description }
        return String(describing: error)
    }

    /// "connection refused", "host unreachable", ...: what a connect error says, without addresses.
    static func connectFailureKind(_ error: any Error) -> String {
        var errnos: [CInt] = []
        if let io = error as? IOError { errnos.append(io.errnoCode) }
        if let failure = error as? NIOConnectionError {
            for attempt in failure.connectionErrors { if let io = attempt.error as? IOError { errnos.append(io.errnoCode) } }
            if failure.dnsAError != nil || failure.dnsAAAAError != nil, errnos.isEmpty { return "the host name did not resolve" }
        }
        switch errnos.first {
        case ECONNREFUSED?: return "connection refused"
        case EHOSTUNREACH?, ENETUNREACH?: return "host unreachable"
        case ETIMEDOUT?: return "timed out"
        case ECONNRESET?: return "connection reset"
        default: return "connect failed"
        }
    }

    /// The whole response as bytes (the same head as `head(...)`), for handlers that write bytes.
    /// An answer to HEAD has the head only (its Content-Length still says what GET would get).
    /// `varyOrigin`: a `[cors]` policy is on, so the answer would differ for a request with an Origin.
    /// `cors`: the CORS headers for an allowed Origin.
    /// `http10`: the client spoke HTTP/1.0, and so does the answer.
    func bytes(requestID: String, keepAlive: Bool, toHEAD: Bool = false, varyOrigin: Bool = false, cors: [(String, String)]? = nil,
               http10: Bool = false, allocator: ByteBufferAllocator) -> ByteBuffer {
        let body = body(requestID: requestID)
        var head = head(version: .http1_1, requestID: requestID, contentLength: body.utf8.count, keepAlive: keepAlive)
        if varyOrigin { head.headers.add(name: "vary", value: "Origin") }
        for (name, value) in cors ?? [] { head.headers.add(name: name, value: value) }
        var out = allocator.buffer(capacity: body.utf8.count + 256)
        out.writeString("HTTP/1.\(http10 ? 0 : 1) \(status.code) \(status.reasonPhrase)\r\n")
        for (name, value) in head.headers { out.writeString("\(name): \(value)\r\n") }
        out.writeStaticString("\r\n")
        if !toHEAD { out.writeString(body) }
        return out
    }
}

extension GatewayServer.BuiltIn {
    /// The answer as bytes, with the headers the full reader gives it: content type and length,
    /// request id, `cache-control: no-store`, and `vary: Origin` under a `[cors]` policy.
    func bytes(requestID: String, keepAlive: Bool, toHEAD: Bool, varyOrigin: Bool, cors: [(String, String)]?, http10: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: body.count + 192)
        out.writeString("HTTP/1.\(http10 ? 0 : 1) \(status.code) \(status.reasonPhrase)\r\ncontent-type: \(contentType)\r\ncontent-length: \(body.count)\r\n")
        out.writeString("x-request-id: \(requestID)\r\ncache-control: no-store\r\n")
        if !keepAlive { out.writeStaticString("connection: close\r\n") }
        if varyOrigin { out.writeStaticString("vary: Origin\r\n") }
        for (name, value) in cors ?? [] { out.writeString("\(name): \(value)\r\n") }
        out.writeStaticString("\r\n")
        if !toHEAD { out.writeBytes(body) }
        return out
    }
}

extension Admission.Preflight {
    /// 204 with the policy's headers, as the full reader answers a preflight.
    func bytes(allocator: ByteBufferAllocator, keepAlive: Bool) -> ByteBuffer {
        // (`http10`: the client spoke HTTP/1.0.)
        var out = allocator.buffer(capacity: 512)
        out.writeString("HTTP/1.\(http10 ? 0 : 1) 204 No Content\r\ncontent-length: 0\r\nx-request-id: \(requestID)\r\n")
        out.writeStaticString("vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers\r\n")
        for (name, value) in headers { out.writeString("\(name): \(value)\r\n") }
        if !keepAlive { out.writeStaticString("connection: close\r\n") }
        out.writeStaticString("\r\n")
        return out
    }
}

extension LocalResponse {
    /// The local API's answer as bytes, with the headers the full reader gives it: its own,
    /// content-length, x-request-id, `cache-control: no-store` unless it set one, `connection:
    /// close` when the connection ends, and under `[cors]` (`cors` not nil) `vary: Origin` and
    /// the CORS headers of an allowed Origin.
    func bytes(requestID: String, keepAlive: Bool, toHEAD: Bool, cors: [(String, String)]?, http10: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var headers = self.headers
        headers.replaceOrAdd(name: "content-length", value: String(body.count))
        headers.replaceOrAdd(name: "x-request-id", value: requestID)
        headers.replaceOrAdd(name: "cache-control", value: headers.first(name: "cache-control") ?? "no-store")
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        if let cors {
            if !headers[canonicalForm: "vary"].contains(where: { $0.lowercased() == "origin" || $0 == "*" }) { headers.add(name: "vary", value: "Origin") }
            for (name, value) in cors { headers.add(name: name, value: value) }
        }
        var out = allocator.buffer(capacity: body.count + 256)
        out.writeString("HTTP/1.\(http10 ? 0 : 1) \(status.code) \(status.reasonPhrase)\r\n")
        for (name, value) in headers { out.writeString("\(name): \(value)\r\n") }
        out.writeStaticString("\r\n")
        if !toHEAD { out.writeBytes(body) }
        return out
    }
}
