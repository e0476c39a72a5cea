import JOSE

/// Finds the token in a request (the configured sources, in order), verifies it and applies
/// the route's policy. Knows nothing of channels.
struct Authenticator: Sendable {
    let verifier: TokenVerifier
    let tenantClaim: String
    /// Told when a token names a kid no key has (remote JWKS refetch).
    var onUnknownKid: (@Sendable () -> Void)? = nil

    enum Outcome {
        /// Passed; identity is nil on public routes and on optional routes without a token.
        case pass(Identity?)
        case refuse(AuthFailure)
    }

    /// The policy for a token already found (nil: none was sent), given as its bytes.
    func authenticate(route: RouteConfig, token: UnsafeRawBufferPointer?) -> Outcome {
        if route.auth == .public { return .pass(nil) }
        guard let token else {
            if route.auth == .optional { return .pass(nil) }
            return .refuse(AuthFailure(.missingToken, "no token: send Authorization: Bearer <token>"))
        }
        do throws(AuthFailure) {
            let verified = try verifier.verify(bytes: token)
            let identity = verified.memoized(key: tenantClaim) { Identity(token: verified, tenantClaim: tenantClaim) }
            if let why = identity.unforwardable {
                // Refused rather than passed on changed (or not at all).
                return .refuse(AuthFailure(.invalidClaim, why))
            }
            try RoutePolicy.check(route, identity)
            return .pass(identity)
        } catch {
            if error.reason == .unknownKid { onUnknownKid?() }
            return .refuse(error)
        }
    }

    /// The bearer token of the first Authorization value that has one.
    static func bearer(in authorization: [String]) -> Substring? {
        for value in authorization {
            if let token = Self.scan(value, HTTPScan.bearerToken) { return token }
        }
        return nil
    }
}

extension Authenticator {
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
