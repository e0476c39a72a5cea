import JOSE
import NIOHTTP1

/// Finds the token in a request (the configured sources, in order), verifies it and applies
/// the route's policy. Knows nothing of channels.
struct Authenticator: Sendable {
    let verifier: TokenVerifier
    let sources: [TokenSource]
    let tenantClaim: String
    /// Told when a token names a kid no key has (remote JWKS refetch).
    var onUnknownKid: (@Sendable () -> Void)? = nil

    enum Outcome {
        /// Passed; identity is nil on public routes and on optional routes without a token.
        case pass(Identity?)
        case refuse(AuthFailure)
    }

    func authenticate(route: RouteConfig, head: HTTPRequestHead, query: Substring?) -> Outcome {
        if route.auth == .public { return .pass(nil) }
        guard var token = Self.token(in: head, query: query, sources: sources) else {
            return authenticate(route: route, token: nil)
        }
        return token.withUTF8 { authenticate(route: route, token: UnsafeRawBufferPointer($0)) }
    }

    /// The policy for a token already found (nil: none was sent), given as its bytes.
    func authenticate(route: RouteConfig, token: UnsafeRawBufferPointer?) -> Outcome {
        if route.auth == .public { return .pass(nil) }
        guard let token else {
            if route.auth == .optional { return .pass(nil) }
            return .refuse(AuthFailure(.missingToken, "no token: send Authorization: Bearer <token>"))
        }
        do {
            let verified = try verifier.verify(bytes: token)
            let identity = verified.memoized(key: tenantClaim) { Identity(token: verified, tenantClaim: tenantClaim) }
            if let why = identity.unforwardable {
                // Refused rather than passed on changed (or not at all).
                return .refuse(AuthFailure(.invalidClaim, why))
            }
            try RoutePolicy.check(route, identity)
            return .pass(identity)
        } catch {  // an AuthFailure: verify and the policy throw nothing else
            if error.reason == .unknownKid { onUnknownKid?() }
            return .refuse(error)
        }
    }

    /// The first token found in the configured sources.
    static func token(in head: HTTPRequestHead, query: Substring?, sources: [TokenSource]) -> Substring? {
        for source in sources {
            switch source {
            case .authorization:
                for value in head.headers["authorization"] {
                    if let token = Self.scan(value, HTTPScan.bearerToken) { return token }
                }
            case .apikey:
                if let value = head.headers.first(name: "apikey"), !value.isEmpty { return Substring(value) }
            case .cookie(let name):
                for header in head.headers["cookie"] {
                    if let token = Self.scan(header, { HTTPScan.cookie($0, $1, named: name) }) { return token }
                }
            case .query(let name):
                guard let query else { continue }
                for pair in query.split(separator: "&") where Self.parameterName(pair) == name {
                    let value = Self.parameterValue(pair)
                    if !value.isEmpty { return value.removingPercentEncodingIfNeeded() }
                }
            }
        }
        return nil
    }
}

extension Authenticator {
    /// A credential given twice in one of the configured sources (two Authorization or apikey
    /// fields, the token cookie twice, the query parameter twice): which one would the upstream
    /// read? RFC 6750 section 3.1 calls it invalid_request (400).
    static func duplicateCredential(in head: HTTPRequestHead, query: Substring?, sources: [TokenSource]) -> String? {
        for source in sources {
            switch source {
            case .authorization:
                if head.headers["authorization"].count > 1 { return "more than one Authorization header" }
            case .apikey:
                if head.headers["apikey"].count > 1 { return "more than one apikey header" }
            case .cookie(let name):
                // Counted as the token is found (HTTPScan.cookie: a value that is not empty).
                var count = 0
                for header in head.headers["cookie"] {
                    var header = header
                    count += header.withUTF8 { bytes in
                        let p = UnsafeRawBufferPointer(bytes)
                        var found = 0, from = 0
                        while let value = HTTPScan.cookie(p, from..<p.count, named: name) { found += 1; from = value.upperBound }
                        return found
                    }
                }
                if count > 1 { return "the \(name) cookie is given more than once" }
            case .query(let name):
                if let query, query.split(separator: "&").filter({ parameterName($0) == name && !parameterValue($0).isEmpty }).count > 1 {
                    return "the \(name) query parameter is given more than once"
                }
            }
        }
        return nil
    }

    /// A query pair's name as an upstream's framework reads it: percent-decoded, so that
    /// `%61ccess_token=...` is found (and cut) as `access_token`.
    static func parameterName(_ pair: Substring) -> Substring {
        pair.prefix { $0 != "=" }.removingPercentEncodingIfNeeded()
    }

    /// A query pair's value as it came (after the first '='; empty without one).
    static func parameterValue(_ pair: Substring) -> Substring { pair.drop { $0 != "=" }.dropFirst() }

    /// Runs a byte-level scanner (shared with the direct path) over a header value.
    static func scan(_ value: String, _ scanner: (UnsafeRawBufferPointer, Range<Int>) -> Range<Int>?) -> Substring? {
        var value = value
        return value.withUTF8 { bytes in
            let p = UnsafeRawBufferPointer(bytes)
            return scanner(p, 0..<p.count).map { Substring(HTTPScan.string(p, $0)) }
        }
    }
}

extension Substring {
    /// Tokens are base64url and dots: percent-decoding only matters for `%2E`-style inputs.
    func removingPercentEncodingIfNeeded() -> Substring {
        guard contains("%") else { return self }
        let input = Array(utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(input.count)
        var i = 0
        while i < input.count {
            // A `%` not followed by two hex digits stays as it is.
            if input[i] == UInt8(ascii: "%"), i + 2 < input.count, let high = HTTPScan.hexDigit(input[i + 1]), let low = HTTPScan.hexDigit(input[i + 2]) {
                bytes.append(high << 4 | low)
                i += 3
            } else {
                bytes.append(input[i])
                i += 1
            }
        }
        return Substring(String(decoding: bytes, as: UTF8.self))
    }

}
