import JOSE
import Synchronization

/// Everything a request reads that a reload replaces in one step: config, routes, the
/// verifier over the current keys.
final class GatewayState: Sendable {
    let config: GatewayConfig
    let router: Router
    let verifier: TokenVerifier
    let authenticator: Authenticator
    /// Header names the gateway owns (lower-case, with `-`): configured and default.
    let ownedHeaders: Set<String>
    /// Their lengths, a cheap first test per request header.
    let ownedHeaderLengths: Set<Int>
    /// Round-robin position per route.
    let cursors: [AtomicCounter]
    /// The routes by reference, so a request holds one pointer rather than a copy of a route.
    let routeEntries: [RouteEntry]

    init(config: GatewayConfig, keys: KeyStore, onUnknownKid: (@Sendable () -> Void)? = nil) {
        self.config = config
        router = Router(routes: config.routes)
        verifier = TokenVerifier(keys: keys, policy: config.auth.policy, maximumTokenSize: config.auth.maxTokenSize,
                                 cacheCapacity: config.auth.cacheSize)
        authenticator = Authenticator(verifier: verifier, sources: config.auth.tokenSources, tenantClaim: config.identity.tenantClaim,
                                      onUnknownKid: onUnknownKid)
        cursors = config.routes.map { _ in AtomicCounter() }
        routeEntries = config.routes.map(RouteEntry.init)
        ownedHeaders = Set(config.identity.namespace + IdentityConfig.defaultNames)
        ownedHeaderLengths = Set(ownedHeaders.map(\.utf8.count))
    }

    /// The upstream order for one request: round robin from the route's cursor.
    func upstreams(for route: RouteConfig) -> [Upstream] {
        guard route.upstreams.count > 1, cursors.indices.contains(route.index) else { return route.upstreams }
        let start = Int(cursors[route.index].next() % UInt64(route.upstreams.count))
        return Array(route.upstreams[start...] + route.upstreams[..<start])
    }
}

/// A route held by reference.
final class RouteEntry: Sendable {
    let config: RouteConfig
    init(_ config: RouteConfig) { self.config = config }
}
