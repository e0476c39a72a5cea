/// The claims of a JWT (RFC 7519), with the registered ones read and type-checked once.
///
/// NumericDate values (`exp`, `nbf`, `iat`) accept integers and decimals. Everything else stays
/// in the parsed JSON and is read on demand by path.
public struct Claims: Sendable {
    public let json: JSONNode
    public let expiration: Double?
    public let notBefore: Double?
    public let issuedAt: Double?
    public let issuer: String?
    public let subject: String?
    /// `aud` as a list: a single string becomes one element; absent is empty.
    public let audience: [String]

    public init(json: JSONNode) throws(AuthFailure) {
        guard json.kind == .object else { throw AuthFailure(.malformed, "claims are not a JSON object") }
        self.json = json
        func date(_ name: String) throws(AuthFailure) -> Double? {
            guard let node = json[name] else { return nil }
            guard let value = node.number, value.isFinite else {
                throw AuthFailure(.invalidClaim, "\"\(name)\" must be a NumericDate (seconds since 1970 as a number)")
            }
            // A signature proves who made the token, not that its times are sane: a time no
            // signed 64-bit clock can hold is refused here, so nothing after has to expect it.
            guard abs(value) < Timestamp.limit else {
                throw AuthFailure(.invalidClaim, "\"\(name)\" is \(value), beyond any date a 64-bit clock can hold")
            }
            return value
        }
        func string(_ name: String) throws(AuthFailure) -> String? {
            guard let node = json[name] else { return nil }
            guard let value = node.string else { throw AuthFailure(.invalidClaim, "\"\(name)\" must be a string") }
            return value
        }
        expiration = try date("exp")
        notBefore = try date("nbf")
        issuedAt = try date("iat")
        issuer = try string("iss")
        subject = try string("sub")
        if let aud = json["aud"] {
            if let single = aud.string {
                audience = [single]
            } else if let items = aud.array, let strings = Optional(items.compactMap(\.string)), strings.count == items.count {
                audience = strings
            } else {
                throw AuthFailure(.invalidClaim, "\"aud\" must be a string or an array of strings")
            }
        } else {
            audience = []
        }
    }

    /// The value at a dotted path, e.g. `app_metadata.tenant_id`.
    public subscript(path path: String) -> JSONNode? { json.at(path: path) }

    /// The Supabase view of these claims.
    public var supabase: SupabaseClaims { SupabaseClaims(claims: self) }
}
