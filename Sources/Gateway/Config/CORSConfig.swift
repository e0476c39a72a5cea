import Foundation
import TOMLKit

/// `[cors]`: which browser origins may call the gateway, its own endpoints (`/auth/v1`, the
/// session API) and the routes alike, as Supabase's stack answers CORS at its edge. Absent,
/// the gateway does nothing about CORS (preflights are proxied like any OPTIONS request).
///
/// Present, the gateway is the CORS authority: it answers preflights itself (204, or 403 with
/// the reason), before routing and tokens (a preflight carries no credentials); it adds the
/// response headers to every answer to an allowed origin, its refusals included, so a browser
/// app can read a 401; and it removes an upstream's own `Access-Control-*` headers.
public struct CORSConfig: Sendable {
    /// Exact origins (`scheme://host[:port]`, lower case), or `*` for any.
    public var allowOrigins: [String] = []
    public var allowMethods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    /// What supabase-js and PostgREST clients send, besides the token headers.
    public var allowHeaders = ["authorization", "apikey", "content-type", "x-client-info", "x-supabase-api-version", "x-request-id",
                               "prefer", "range", "accept-profile", "content-profile", "x-upsert"]
    public var exposeHeaders = ["x-request-id", "content-range", "www-authenticate", "x-supabase-api-version"]
    public var allowCredentials = false
    /// How long a browser may cache a preflight's answer.
    public var maxAge: Double = 600

    public init() {}

    var anyOrigin: Bool { allowOrigins.contains("*") }
    /// `"*"` in allow_methods / allow_headers: whatever a preflight asks for (as Envoy and Kong
    /// read it), answered by naming what was asked (browsers take a literal `*` only without
    /// credentials).
    var anyMethod: Bool { allowMethods.contains("*") }
    var anyHeader: Bool { allowHeaders.contains("*") }

    /// Whether `origin` (the request's Origin header) may read answers.
    func allows(_ origin: String) -> Bool {
        anyOrigin || allowOrigins.contains(Self.asciiLowercased(origin))
    }

    /// Lower case for ASCII letters only (`lowercased()` would also map, say, the Kelvin sign to "k").
    static func asciiLowercased(_ text: String) -> String {
        String(decoding: text.utf8.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    /// The headers added to an answer to `origin` (allowed).
    func responseHeaders(origin: String) -> [(String, String)] {
        var headers: [(String, String)] = [("access-control-allow-origin", anyOrigin && !allowCredentials ? "*" : origin)]
        if allowCredentials { headers.append(("access-control-allow-credentials", "true")) }
        if !exposeHeaders.isEmpty { headers.append(("access-control-expose-headers", exposeHeaders.joined(separator: ", "))) }
        return headers
    }

    /// Request headers a browser may send without asking (the CORS-safelisted ones).
    static let safelisted: Set<String> = ["accept", "accept-language", "content-language"]

    /// A preflight's answer: the headers to add to a 204, or why it is refused.
    func preflight(origin: String, method: String, headers requested: String?) -> Result<[(String, String)], CORSRefusal> {
        guard allows(origin) else { return .failure(CORSRefusal("origin \(origin) is not allowed ([cors] allow_origins)")) }
        guard anyMethod || allowMethods.contains(method) else {
            return .failure(CORSRefusal("method \(method) is not allowed ([cors] allow_methods: \(allowMethods.joined(separator: ", ")))"))
        }
        var asked: [String] = []
        for name in (requested ?? "").split(separator: ",") {
            let name = name.trimmingCharacters(in: .whitespaces).lowercased()
            if name.isEmpty { continue }
            if !anyHeader, !allowHeaders.contains(name), !Self.safelisted.contains(name) {
                return .failure(CORSRefusal("request header \(name) is not allowed ([cors] allow_headers)"))
            }
            asked.append(name)
        }
        var headers = responseHeaders(origin: origin).filter { $0.0 != "access-control-expose-headers" }
        headers.append(("access-control-allow-methods", anyMethod ? method : allowMethods.joined(separator: ", ")))
        let allowed = anyHeader ? asked : allowHeaders
        if !allowed.isEmpty { headers.append(("access-control-allow-headers", allowed.joined(separator: ", "))) }
        headers.append(("access-control-max-age", String(Int(maxAge))))
        return .success(headers)
    }

    static func read(_ table: TOMLTable, _ reader: inout ConfigReader) -> CORSConfig {
        var cors = CORSConfig()
        let at = "cors"
        reader.checkKeys(table, at: at, known: ["allow_origins", "allow_methods", "allow_headers", "expose_headers", "allow_credentials", "max_age"])
        if let origins = reader.strings(table, "allow_origins", at: at) {
            for origin in origins where origin != "*" {
                if let why = Self.originProblem(origin) { reader.fail("cors.allow_origins", "\"\(origin)\": \(why)") }
            }
            cors.allowOrigins = origins.map(Self.asciiLowercased)
        }
        if cors.allowOrigins.isEmpty { reader.fail("cors.allow_origins", "name at least one origin (\"https://app.example.com\"), or \"*\" for any") }
        if let methods = reader.strings(table, "allow_methods", at: at) {
            for method in methods where method != "*" && (method.isEmpty || method != method.uppercased() || !method.utf8.allSatisfy(HTTPScan.isTokenChar)) {
                reader.fail("cors.allow_methods", "\"\(method)\" is not an upper-case method name (or \"*\" for any)")
            }
            if methods.isEmpty { reader.fail("cors.allow_methods", "needs at least one method (leave it out for the default)") }
            cors.allowMethods = methods
        }
        for (key, keyPath) in [("allow_headers", \CORSConfig.allowHeaders), ("expose_headers", \CORSConfig.exposeHeaders)] {
            guard let names = reader.strings(table, key, at: at) else { continue }
            for name in names where !(key == "allow_headers" && name == "*") && (name.isEmpty || !name.utf8.allSatisfy(HTTPScan.isTokenChar)) {
                reader.fail("cors.\(key)", "\"\(name)\" is not a header name" + (key == "allow_headers" ? " (or \"*\" for any)" : ""))
            }
            cors[keyPath: keyPath] = names.map { $0.lowercased() }
        }
        if let v = reader.bool(table, "allow_credentials", at: at) { cors.allowCredentials = v }
        if let v = reader.duration(table, "max_age", at: at, range: 0...86400) { cors.maxAge = v }
        if cors.allowCredentials, cors.anyOrigin {
            reader.fail("cors.allow_credentials", "cannot be true with allow_origins = \"*\" (browsers refuse it, and it would let any site act as its visitors): list the origins")
        }
        return cors
    }

    /// Why `origin` is not `scheme://host[:port]`, or nil.
    static func originProblem(_ origin: String) -> String? {
        guard let schemeEnd = origin.range(of: "://") else { return "expected scheme://host[:port], such as https://app.example.com" }
        let scheme = origin[..<schemeEnd.lowerBound]
        guard !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) }) else { return "expected scheme://host[:port]" }
        let authority = origin[schemeEnd.upperBound...]
        if authority.contains("/") { return "an origin has no path: write \(origin[..<(authority.firstIndex(of: "/") ?? origin.endIndex)])" }
        var host = String(authority)
        guard !host.isEmpty, host.withUTF8({ HTTPScan.isValidHost(UnsafeRawBufferPointer($0), 0..<$0.count) }) else {
            return "expected scheme://host[:port]"
        }
        if let colon = host.lastIndex(of: ":"), !host.hasSuffix("]") {
            guard let port = Int(host[host.index(after: colon)...]), (1...65535).contains(port) else { return "the port must be 1 to 65535" }
            let bare = "\(scheme)://\(host[..<colon])"
            // Browsers serialize an origin without its scheme's default port.
            if (scheme.lowercased() == "https" && port == 443) || (scheme.lowercased() == "http" && port == 80) {
                return "browsers send the origin without its default port: write \(bare)"
            }
        }
        return nil
    }
}

/// Why a preflight is refused.
struct CORSRefusal: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
