import Foundation

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
}
