import Foundation
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

    /// Passive upstream health, the server's (it outlives reloads).
    let health: UpstreamHealth?

    init(config: GatewayConfig, keys: KeyStore, health: UpstreamHealth? = nil, onUnknownKid: (@Sendable () -> Void)? = nil) {
        self.config = config
        self.health = health
        router = Router(routes: config.routes)
        verifier = TokenVerifier(keys: keys, policy: config.auth.policy, maximumTokenSize: config.auth.maxTokenSize,
                                 cacheCapacity: config.auth.cacheSize)
        authenticator = Authenticator(verifier: verifier, tenantClaim: config.identity.tenantClaim,
                                      onUnknownKid: onUnknownKid)
        cursors = config.routes.map { _ in AtomicCounter() }
        routeEntries = config.routes.map(RouteEntry.init)
        ownedHeaders = Set(config.identity.namespace + IdentityConfig.defaultNames)
        ownedHeaderLengths = Set(ownedHeaders.map(\.utf8.count))
        ownedHeaderLengthBits = ownedHeaders.reduce(0) { bits, name in name.utf8.count < 64 ? bits | (1 << UInt64(name.utf8.count)) : bits }
    }

    /// `upstreams(for:)` for a route held by reference (the common single upstream is not copied).
    func upstreams(for entry: RouteEntry) -> [Upstream] {
        entry.upstreams.count > 1 ? upstreams(for: entry.config) : entry.upstreams
    }

    /// Bit n set: an owned header name has n bytes (names of 64 bytes or more are always looked up).
    let ownedHeaderLengthBits: UInt64

    /// Whether a header name of `length` bytes may be one the gateway owns (a cheap first test).
    @inline(__always)
    func mayBeOwnedHeader(length: Int) -> Bool {
        length < 64 ? ownedHeaderLengthBits & (1 << UInt64(length)) != 0 : ownedHeaderLengths.contains(length)
    }

    /// The first route matching a request given as bytes: `p[method]`, the Host name (port
    /// and brackets removed, any case) `p[host]`, the path without query `p[path]`. The same
    /// rules as `Router.matchIndex`, without making strings.
    func route(_ p: UnsafeRawBufferPointer, method: Range<Int>, host: Range<Int>, path: Range<Int>) -> RouteEntry? {
        for entry in routeEntries where entry.matches(p, method: method, host: host, path: path) { return entry }
        return nil
    }

    /// The upstream order for one request: round robin from the route's cursor; while some are
    /// ejected (failed connects, `UpstreamHealth`), round robin among the others, ejected last.
    func upstreams(for route: RouteConfig) -> [Upstream] {
        guard route.upstreams.count > 1, cursors.indices.contains(route.index) else { return route.upstreams }
        let turn = cursors[route.index].next()
        if let order = health?.order(route.upstreams, turn: turn) { return order }
        let start = Int(turn % UInt64(route.upstreams.count))
        return Array(route.upstreams[start...] + route.upstreams[..<start])
    }
}

/// A route held by reference, with what the direct path reads per request worked out once:
/// the match as bytes, the timeouts in nanoseconds.
final class RouteEntry: Sendable {
    let config: RouteConfig
    let name: String
    let auth: RouteConfig.AuthMode
    let sessionRequired: Bool
    let forwardAuthorization: Bool
    /// The exact path, or the prefix without a trailing `/` (a prefix matches whole segments).
    private let matchPath: [UInt8]
    private let exact: Bool
    private let host: [UInt8]?
    private let methods: [[UInt8]]
    /// No strip_prefix and no upstream base path: the client's request target goes upstream as it came.
    let targetUnchanged: Bool
    let upstreams: [Upstream]
    let connectNanos: UInt64
    let firstByteNanos: UInt64
    let idleNanos: UInt64

    init(_ config: RouteConfig) {
        self.config = config
        name = config.name
        auth = config.auth
        sessionRequired = config.session == .required
        forwardAuthorization = config.forwardAuthorization
        switch config.match {
        case .exact(let path):
            matchPath = Array(path.utf8)
            exact = true
        case .prefix(let prefix):
            matchPath = Array((prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix).utf8)
            exact = false
        }
        host = config.host.map { Array($0.utf8) }
        methods = config.methods.sorted().map { Array($0.utf8) }
        upstreams = config.upstreams
        targetUnchanged = !config.stripPrefix && config.upstreams.allSatisfy(\.basePath.isEmpty)
        connectNanos = UInt64(config.connectTimeout * 1e9)
        firstByteNanos = UInt64(config.firstByteTimeout * 1e9)
        idleNanos = UInt64(config.idleTimeout * 1e9)
    }

    @inline(__always)
    func matches(_ p: UnsafeRawBufferPointer, method: Range<Int>, host hostRange: Range<Int>, path: Range<Int>) -> Bool {
        let n = matchPath.count
        if exact {
            guard path.count == n, Self.equal(p, path.lowerBound, matchPath) else { return false }
        } else {
            guard path.count >= n, Self.equal(p, path.lowerBound, matchPath), path.count == n || p[path.lowerBound + n] == UInt8(ascii: "/") else { return false }
        }
        if let host {
            // Route hosts are lower case; the request's compares in any case.
            guard hostRange.count == host.count else { return false }
            var k = hostRange.lowerBound
            for c in host {
                let b = p[k]
                if (b >= 0x41 && b <= 0x5A ? b | 0x20 : b) != c { return false }
                k += 1
            }
        }
        if methods.isEmpty { return true }
        return methods.contains { $0.count == method.count && Self.equal(p, method.lowerBound, $0) }
    }

    @inline(__always)
    private static func equal(_ p: UnsafeRawBufferPointer, _ at: Int, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { b in b.count == 0 || memcmp(p.baseAddress! + at, b.baseAddress!, b.count) == 0 }
    }
}
