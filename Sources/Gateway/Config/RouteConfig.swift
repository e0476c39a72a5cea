import Foundation
import TOMLKit

/// One `[[route]]`: what it matches, where it sends, and who may pass.
public struct RouteConfig: Sendable {
    public enum Match: Sendable, Equatable {
        case prefix(String)
        case exact(String)
    }

    public enum AuthMode: String, Sendable { case `public`, optional, required }
    public enum SessionMode: String, Sendable { case none, required }

    /// A claim condition: the value at a dotted path equals one of `values`, or (for
    /// `contains`) an array at the path holds one of them.
    public struct ClaimCondition: Sendable {
        public enum Kind: Sendable { case equals, contains }
        public let path: String
        public let kind: Kind
        public let values: [String]
    }

    public var name: String
    public var match: Match
    public var host: String?
    /// Upper-case methods; empty allows any. HEAD is in wherever GET is (RFC 9110 section
    /// 9.3.2: frameworks answer HEAD with their GET handler, so a policy on GET is one on HEAD).
    public var methods: Set<String> = []
    public var stripPrefix = false
    public var upstreams: [Upstream] = []
    public var auth: AuthMode = .required
    public var roles: [String] = []
    public var assuranceLevel: String?
    public var conditions: [ClaimCondition] = []
    public var session: SessionMode = .none
    public var connectTimeout: Double = 5
    public var firstByteTimeout: Double = 60
    public var idleTimeout: Double = 300
    public var forwardAuthorization = true
    /// Method-override headers (`x-http-method-override` and kin, lower-case) passed to this
    /// route's upstream; every other route's upstream never sees them.
    public var methodOverrides: Set<String> = []
    public var line: Int?
    /// Position in the file's route list.
    public var index = 0

    static let keys = ["name", "path", "exact", "host", "methods", "strip_prefix", "upstream", "auth", "require",
                       "session", "timeouts", "forward_authorization", "allow_method_override"]

    static func read(_ table: TOMLTable, index: Int, _ reader: inout ConfigReader) -> RouteConfig? {
        let at = "route[\(index)]"
        reader.checkKeys(table, at: at, known: keys)
        let path = reader.string(table, "path", at: at)
        let exact = reader.string(table, "exact", at: at)
        let match: Match
        switch (path, exact) {
        case (let p?, nil): match = .prefix(p)
        case (nil, let e?): match = .exact(e)
        case (_?, _?): reader.fail(at, "give either path (a prefix) or exact, not both"); return nil
        case (nil, nil): reader.fail(at, "needs path = \"/prefix/\" or exact = \"/path\""); return nil
        }
        if case .prefix(let p) = match, !p.hasPrefix("/") { reader.fail("\(at).path", "must start with /") }
        if case .exact(let p) = match, !p.hasPrefix("/") { reader.fail("\(at).exact", "must start with /") }
        var route = RouteConfig(name: reader.string(table, "name", at: at) ?? "route\(index + 1)", match: match)
        route.line = reader.lines.line(of: at)
        route.index = index
        if let host = reader.string(table, "host", at: at)?.lowercased() {
            // Matched against the Host header's name, without its port (as the router reads it).
            if host.isEmpty || !host.utf8.allSatisfy(HTTPScan.isRegNameByte) {
                reader.fail("\(at).host", "expected a host name such as \"api.example.com\" (letters, digits, '.', '-'; no port), found \"\(host)\"")
            } else {
                route.host = host
            }
        }
        if let methods = reader.strings(table, "methods", at: at) {
            let known: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
            for method in methods where !known.contains(method.uppercased()) { reader.fail("\(at).methods", "unknown method \"\(method)\"") }
            route.methods = Set(methods.map { $0.uppercased() })
            if route.methods.contains("HEAD"), !route.methods.contains("GET") {
                reader.fail("\(at).methods", "HEAD is admitted wherever GET is, and not alone: an upstream answers HEAD with its GET handler, so list GET (HEAD comes with it)")
            }
            if route.methods.contains("GET") { route.methods.insert("HEAD") }
        }
        route.stripPrefix = reader.bool(table, "strip_prefix", at: at) ?? false
        if route.stripPrefix, case .exact = match { reader.fail("\(at).strip_prefix", "only applies to path (prefix) routes") }
        if let urls = reader.strings(table, "upstream", at: at) {
            if urls.isEmpty { reader.fail("\(at).upstream", "needs at least one URL") }
            for url in urls {
                if let upstream = Upstream(url) { route.upstreams.append(upstream) } else {
                    reader.fail("\(at).upstream", "expected http://HOST:PORT[/base], found \"\(url)\"")
                }
            }
        } else {
            reader.fail(at, "needs upstream = \"http://HOST:PORT\" (or an array of them)")
        }
        if let auth = reader.string(table, "auth", at: at) {
            if let mode = AuthMode(rawValue: auth) { route.auth = mode } else {
                reader.fail("\(at).auth", "expected \"public\", \"optional\" or \"required\", found \"\(auth)\"")
            }
        }
        if let session = reader.string(table, "session", at: at) {
            if let mode = SessionMode(rawValue: session) { route.session = mode } else {
                reader.fail("\(at).session", "expected \"required\" or \"none\", found \"\(session)\"")
            }
        }
        if route.session == .required, route.auth != .required {
            reader.fail("\(at).session", "session = \"required\" needs auth = \"required\"")
        }
        if let require = reader.table(table, "require", at: at) {
            let rat = "\(at).require"
            reader.checkKeys(require, at: rat, known: ["role", "aal", "claims", "contains"])
            route.roles = reader.strings(require, "role", at: rat) ?? []
            if require["role"] != nil, route.roles.isEmpty { reader.fail("\(rat).role", "needs at least one role (leave role out to accept any)") }
            route.assuranceLevel = reader.string(require, "aal", at: rat)
            if let aal = route.assuranceLevel, aal != "aal1", aal != "aal2" { reader.fail("\(rat).aal", "expected \"aal1\" or \"aal2\"") }
            for (key, kind) in [("claims", ClaimCondition.Kind.equals), ("contains", .contains)] {
                guard let conditions = reader.table(require, key, at: rat) else { continue }
                for claim in conditions.keys.sorted() {
                    if let values = reader.strings(conditions, claim, at: "\(rat).\(key)") {
                        route.conditions.append(ClaimCondition(path: claim, kind: kind, values: values))
                    }
                }
            }
            if route.auth != .required, !(route.roles.isEmpty && route.assuranceLevel == nil && route.conditions.isEmpty) {
                // On an optional route a request with no token has no claims to check: it would
                // get through where a signed-in user without the claims is refused.
                reader.fail(rat, "requirements need auth = \"required\" (a request without a token would pass them on a \(route.auth.rawValue) route)")
            }
        }
        if let timeouts = reader.table(table, "timeouts", at: at) {
            let tat = "\(at).timeouts"
            reader.checkKeys(timeouts, at: tat, known: ["connect", "first_byte", "idle"])
            if let v = reader.duration(timeouts, "connect", at: tat, range: 0.01...3600) { route.connectTimeout = v }
            if let v = reader.duration(timeouts, "first_byte", at: tat, range: 0.01...86400) { route.firstByteTimeout = v }
            if let v = reader.duration(timeouts, "idle", at: tat, range: 0.01...86400) { route.idleTimeout = v }
        }
        route.forwardAuthorization = reader.bool(table, "forward_authorization", at: at) ?? true
        if let names = reader.strings(table, "allow_method_override", at: at) {
            for name in names {
                let lowered = name.lowercased()
                if HopByHop.methodOverrides.contains(lowered) { route.methodOverrides.insert(lowered) } else {
                    reader.fail("\(at).allow_method_override", "expected any of \(HopByHop.methodOverrides.map { "\"\($0)\"" }.joined(separator: ", ")), found \"\(name)\"")
                }
            }
        }
        return route
    }
}

/// An upstream origin: `http://host:port` with an optional base path.
public struct Upstream: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: Int
    public let basePath: String
    /// `host:port`, the key of pooled connections (made once, not per request).
    public let origin: String

    public init?(_ url: String) {
        guard url.hasPrefix("http://") else { return nil }
        var rest = url.dropFirst("http://".count)
        var base = ""
        if let slash = rest.firstIndex(of: "/") {
            base = String(rest[slash...])
            rest = rest[..<slash]
        }
        if base == "/" { base = "" }
        // The authority is read as a Host header is: a host name or [IPv6], an optional :port.
        var authority = String(rest)
        guard !authority.isEmpty, authority.withUTF8({ HTTPScan.isValidHost(UnsafeRawBufferPointer($0), 0..<$0.count) }) else { return nil }
        var host = authority, port = 80
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
            host = String(rest[..<colon])
        }
        if host.hasPrefix("[") {
            host = String(host.dropFirst().dropLast())
            guard host.contains(":") else { return nil }
        }
        // The base path is written into request lines as it is.
        guard base.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }) else { return nil }
        self.host = host
        self.port = port
        self.basePath = base
        self.origin = "\(host):\(port)"
    }

    public var description: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)\(basePath)" }

}
