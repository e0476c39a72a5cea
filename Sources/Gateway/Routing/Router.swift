/// Picks the route for a request: the first `[[route]]` in file order whose path (exact, or
/// prefix), host and method all match.
public struct Router: Sendable {
    public let routes: [RouteConfig]

    public init(routes: [RouteConfig]) { self.routes = routes }

    /// `host` is the Host header without the port, lower-cased; `path` has no query.
    public func match(method: String, host: String?, path: String) -> RouteConfig? {
        routes.first { route in
            switch route.match {
            case .exact(let p): guard path == p else { return false }
            case .prefix(let p): guard path.hasPrefix(p) || (p.hasSuffix("/") && path == String(p.dropLast())) else { return false }
            }
            if let wanted = route.host, wanted != host { return false }
            return route.methods.isEmpty || route.methods.contains(method)
        }
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
