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
            if let claim = identity.unforwardableClaim {
                // Forwarded as a header it would end the line: refused rather than passed on changed.
                return .refuse(AuthFailure(.invalidClaim, "claim \(claim) holds a control character and cannot be forwarded as a header"))
            }
            try RoutePolicy.check(route, identity)
            return .pass(identity)
        } catch let failure as AuthFailure {
            if failure.reason == .unknownKid { onUnknownKid?() }
            return .refuse(failure)
        } catch {
            return .refuse(AuthFailure(.malformed, "\(error)"))
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
                for pair in query.split(separator: "&") where pair.hasPrefix(name + "=") {
                    let value = pair.dropFirst(name.count + 1)
                    if !value.isEmpty { return value.removingPercentEncodingIfNeeded() }
                }
            }
        }
        return nil
    }
}

extension Authenticator {
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
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let b = iterator.next() {
            if b == UInt8(ascii: "%"), let h = iterator.next(), let l = iterator.next(),
               let value = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) {
                bytes.append(value)
            } else {
                bytes.append(b)
            }
        }
        return Substring(String(decoding: bytes, as: UTF8.self))
    }
}
