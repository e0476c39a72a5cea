import Foundation
import NIOHTTP1

/// Connection-scoped headers (RFC 9110 section 7.6.1) are not forwarded.
enum HopByHop {
    static let names = ["connection", "proxy-connection", "keep-alive", "te", "trailer", "upgrade", "proxy-authenticate", "proxy-authorization"]
    /// Forwarding headers a client may not set: the gateway writes its own.
    static let setByGateway = ["forwarded", "x-real-ip", "x-forwarded-host", "x-forwarded-proto"]
    /// Every forwarding header the gateway writes (X-Forwarded-For is appended to, and a valid
    /// X-Request-Id kept): spelled with underscores by a client, they are dropped.
    static let writtenByGateway = setByGateway + ["x-forwarded-for", "x-request-id"]
    /// As bytes, for the direct path's byte-level header scan.
    static let nameBytes = names.map { Array($0.utf8) }
    /// Headers that ask a framework to act as another method (Express's method-override,
    /// Rails, Laravel, ASP.NET): a GET admitted as a GET could run as a DELETE. Dropped, also
    /// spelled with underscores, unless the route allows one by name.
    static let methodOverrides = ["x-http-method-override", "x-http-method", "x-method-override"]
    static let methodOverrideBytes = methodOverrides.map { Array($0.utf8) }
    /// A response's Trailer field stays: the trailers it announces are passed on (a request's
    /// trailers are not, so its Trailer field goes).
    static let responseNames = names.filter { $0 != "trailer" }
    static let responseNameBytes = responseNames.map { Array($0.utf8) }
    static let writtenByGatewayBytes = writtenByGateway.map { Array($0.utf8) }

    /// Names a Connection header may list without the field being removed.
    static let notNominable: Set<String> = ["close", "keep-alive", "host", "content-length", "transfer-encoding"]

    /// What is wrong with the message's Transfer-Encoding, if anything: the gateway relays
    /// chunked, once, and nothing else (as HAProxy does), the same reasons as the direct path.
    static func codingProblem(_ headers: HTTPHeaders) -> String? {
        guard headers.contains(name: "transfer-encoding") else { return nil }
        let codings = headers[canonicalForm: "transfer-encoding"]
        if codings.isEmpty { return "empty Transfer-Encoding" }
        if let other = codings.first(where: { $0.lowercased() != "chunked" }) { return "transfer coding \"\(other)\" is not supported (only chunked)" }
        return codings.count > 1 ? "chunked is applied more than once" : nil
    }

    /// `headers` with trailing SP and HTAB taken off every value (untouched when none has any).
    static func trimmingValues(_ headers: HTTPHeaders) -> HTTPHeaders {
        func padded(_ value: String) -> Bool { value.utf8.last == UInt8(ascii: " ") || value.utf8.last == UInt8(ascii: "\t") }
        guard headers.contains(where: { padded($0.value) }) else { return headers }
        var out = HTTPHeaders()
        for (name, value) in headers {
            var bytes = Substring(value).utf8
            while let last = bytes.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { bytes = bytes.dropLast() }
            out.add(name: name, value: String(Substring(bytes)))
        }
        return out
    }

    static func strip(_ headers: inout HTTPHeaders, keepChunked: Bool, names: [String] = names) {
        for value in headers["connection"] {
            for token in value.split(separator: ",") {
                let name = token.trimmingCharacters(in: .whitespaces).lowercased()
                // Host and the framing are not the sender's to drop (HAProxy keeps them too).
                if !name.isEmpty, !Self.notNominable.contains(name) { headers.remove(name: name) }
            }
        }
        for name in names { headers.remove(name: name) }
        let chunked = headers["transfer-encoding"].contains { $0.lowercased().contains("chunked") }
        headers.remove(name: "transfer-encoding")
        if keepChunked, chunked, !headers.contains(name: "content-length") { headers.add(name: "transfer-encoding", value: "chunked") }
    }
}
