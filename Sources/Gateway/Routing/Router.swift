import Foundation

/// Picks the route for a request: the first `[[route]]` in file order whose path (exact, or
/// prefix), host and method all match.
public struct Router: Sendable {
    public let routes: [RouteConfig]

    public init(routes: [RouteConfig]) { self.routes = routes }

    /// `host` is the Host header without the port, lower-cased; `path` has no query.
    public func match(method: String, host: String?, path: String) -> RouteConfig? {
        matchIndex(method: method, host: host, path: path).map { routes[$0] }
    }

    /// The position of the matching route (no copy of it is made).
    public func matchIndex(method: String, host: String?, path: String) -> Int? {
        routes.firstIndex { route in
            switch route.match {
            case .exact(let p): guard path == p else { return false }
            case .prefix(let p):
                // A prefix matches whole segments: "/api" covers "/api" and "/api/x", not "/apix".
                let matches = p.hasSuffix("/") ? path.hasPrefix(p) || path == String(p.dropLast()) : path == p || path.hasPrefix(p + "/")
                guard matches else { return false }
            }
            if let wanted = route.host, wanted != host { return false }
            return route.methods.isEmpty || route.methods.contains(method)
        }
    }

    /// Why a request path cannot be routed safely, or nil: dot segments (`/./`, `/../`, also
    /// percent-encoded), path parameters (`;`) and encoded slashes or backslashes would let an upstream that
    /// normalizes paths serve a different route than the one whose policy was applied.
    public static func unsafePath(_ path: String) -> String? {
        // Fast path: nothing that could spell a dot segment, an encoding or a backslash.
        var suspicious = false
        var previousSlash = false
        for byte in path.utf8 {
            if byte == UInt8(ascii: "%") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: ";") || (byte == UInt8(ascii: "/") && previousSlash) {
                suspicious = true
                break
            }
            previousSlash = byte == UInt8(ascii: "/")
        }
        if !suspicious { return nil }
        let lowered = path.lowercased()
        for encoded in ["%2f", "%5c", "%00"] where lowered.contains(encoded) {
            return "encoded \(encoded.uppercased()) in the path is not accepted"
        }
        if path.contains("\\") { return "backslash in the path is not accepted" }
        // Servlet containers (Tomcat, Jetty) and Spring take `;params` off each segment before
        // routing ("/admin;x=1/a" is "/admin/a", "/..;/" is "/../"): a route matched on the
        // path with them would not be the route the upstream serves.
        if path.contains(";") { return "path parameters (;) are not accepted" }
        if path.contains("//") { return "empty path segments (//) are not accepted" }
        // Unreserved characters are never percent-encoded by a well-behaved client; decoding them
        // upstream would route "/%61dmin" as "/admin".
        var index = lowered.startIndex
        while let percent = lowered[index...].firstIndex(of: "%") {
            let hex = lowered[lowered.index(after: percent)...].utf8.prefix(2)
            // Two hex digits exactly (`UInt8(_:radix:)` would also take "+1").
            guard hex.count == 2, let high = HTTPScan.hexDigit(hex.first!), let low = HTTPScan.hexDigit(hex.last!) else {
                return "malformed percent-encoding in the path"
            }
            let value = high << 4 | low
            let c = Character(Unicode.Scalar(value))
            if c.isLetter && c.isASCII || c.isNumber && c.isASCII || "-._~".contains(c) {
                return "percent-encoded unreserved character %\(String(decoding: hex, as: UTF8.self).uppercased()) in the path is not accepted"
            }
            index = lowered.index(percent, offsetBy: 3, limitedBy: lowered.endIndex) ?? lowered.endIndex
        }
        let decodedDots = lowered.replacingOccurrences(of: "%2e", with: ".")
        for segment in decodedDots.split(separator: "/", omittingEmptySubsequences: false) where segment == "." || segment == ".." {
            return "dot segments (/./ or /../) in the path are not accepted"
        }
        return nil
    }

    /// The URI to send upstream: the prefix stripped when the route says so, the upstream's
    /// base path in front, the query kept.
    public static func upstreamURI(route: RouteConfig, upstream: Upstream, path: String, query: Substring?) -> String {
        var rest = path
        if route.stripPrefix, case .prefix(let prefix) = route.match {
            rest = path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : ""
            if !rest.hasPrefix("/") { rest = "/" + rest }
        }
        var uri: String
        if upstream.basePath.isEmpty {
            uri = rest
        } else if rest == "/" {
            uri = upstream.basePath
        } else {
            uri = (upstream.basePath.hasSuffix("/") ? String(upstream.basePath.dropLast()) : upstream.basePath) + rest
        }
        if uri.isEmpty { uri = "/" }
        if let query { uri += "?" + query }
        return uri
    }
}
