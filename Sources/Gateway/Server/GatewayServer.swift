import Foundation
import JOSE
public import Logging
import NIOCore
import NIOHTTP1
public import NIOPosix
public import Runtime
import Synchronization

/// The HTTP server: listens where `[server] listen` says, routes, authenticates and proxies.
/// Reload swaps config and keys without dropping connections; drain stops accepting, lets
/// in-flight requests finish, then closes.
public final class GatewayServer: Sendable {
    public let group: MultiThreadedEventLoopGroup
    let metrics: GatewayMetrics
    /// Passive upstream health (failed connects eject an origin for a while), kept across reloads.
    let upstreamHealth: UpstreamHealth
    let sessions: any SessionLookup
    let localAPI: LocalAPI
    public let store: any StateStore
    public let events = SessionEvents()
    /// Cache followers and the PostgreSQL event relay; they end with the process.
    nonisolated(unsafe) private var backgroundTasks: [Task<Void, Never>] = []  // appended in init and start, before serving
    let connections = ConnectionRegistry()
    private let current: Mutex<GatewayState>
    private let keys: KeyStore
    /// Other projects' JWKS URLs, if any.
    private let remote: RemoteJWKS?
    private let rawPools: [ObjectIdentifier: UpstreamPool]
    private let draining = Atomic<Bool>(false)
    /// Bumped after each swap of `state`: a connection keeps the state it read until this changes.
    let stateGeneration = Atomic<Int>(0)
    private let accessLog: Logger?
    private let accessSink: LogSink?
    private let accessLogTarget: String

    /// The drain timeout of the config in service (a reload may change it).
    public var drainTimeout: Double { state.config.server.drainTimeout }
    public let logger: Logger
    private let listener = Mutex<(any Channel)?>(nil)
    /// Why the runtime store did not answer the last readiness probe, nil when it did.
    private let runtimeProblem = SharedProblem()

    final class SharedProblem: Sendable {
        private let value = Mutex<String?>(nil)
        func set(_ problem: String?) { value.withLock { $0 = problem } }
        var current: String? { value.withLock { $0 } }
    }

    public var threadCount: Int { group.makeIterator().map { $0 }.count }

    /// Opens the runtime store named by `[runtime] store` and builds the server around it.
    public static func make(config: GatewayConfig, threads: Int? = nil, logger: Logger) async throws -> GatewayServer {
        let count = threads ?? (config.server.threads > 0 ? config.server.threads : System.coreCount)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, count))
        let store: any StateStore
        if config.runtime.store.hasPrefix("sqlite:") {
            store = try await SQLiteStore.open(path: String(config.runtime.store.dropFirst(7)), eventLoop: group.any())
        } else {
            store = try await PostgresStore.connect(url: config.runtime.store, logger: logger)
        }
        return try GatewayServer(config: config, group: group, store: store, logger: logger)
    }

    init(config: GatewayConfig, group: MultiThreadedEventLoopGroup, store: any StateStore, logger: Logger) throws {
        self.group = group
        keys = try KeyStore(directory: config.auth.keys)
        remote = config.auth.jwksURLs.isEmpty ? nil : RemoteJWKS(urls: config.auth.jwksURLs, keys: keys, eventLoopGroup: group, logger: logger)
        let metrics = GatewayMetrics()
        self.metrics = metrics
        upstreamHealth = UpstreamHealth(logger: logger) { origin, failures in metrics.upstreamConnectFailures(origin, failures) }
        current = Mutex(GatewayState(config: config, keys: keys, health: upstreamHealth, onUnknownKid: Self.unknownKidHook(remote)))
        self.store = store
        var settings = AuthService.Settings(issuer: config.auth.issuers.first ?? "http://\(config.server.host):\(config.server.port)\(config.runtime.authPath)")
        settings.audience = config.auth.audiences.first ?? "authenticated"
        settings.accessTokenTTL = config.runtime.accessTokenTTL
        settings.sessionTTL = config.runtime.sessionTTL
        settings.passwordCost = PasswordHash.Cost(logN: config.runtime.passwordCost, r: 8, p: 1)
        settings.validator = IntentValidator(contracts: Set(config.runtime.contracts), sessionLimit: config.runtime.sessionLimit, maximumTTL: max(config.runtime.sessionTTL, 30 * 86400))
        settings.defaultContract = config.runtime.contracts[0]
        settings.loginLimitPerIP = config.runtime.loginLimitPerIP
        settings.loginLimitPerEmail = config.runtime.loginLimitPerEmail
        let auth = AuthService(store: store, keys: keys, settings: settings, events: events)
        localAPI = LocalAPI(auth: auth, store: store, runtime: config.runtime)
        let cache = SessionCache(ttl: config.runtime.sessionCache)
        let events = self.events
        backgroundTasks.append(Task { await cache.follow(events) })
        if let postgres = store as? PostgresStore {
            backgroundTasks.append(Task { [logger] in
                while !Task.isCancelled {
                    do { try await postgres.relayEvents(into: events) } catch {
                        logger.warning("session event relay (LISTEN gateway_sessions) failed; retrying", metadata: ["error": "\(error)"])
                    }
                    try? await Task.sleep(nanoseconds: 1_000_000_000)
                }
            })
        }
        // Readiness: the store answers a lookup within 2 s, probed every 2 s (one probe at a
        // time: a hung one is waited for before the next, so they cannot pile up).
        let problem = runtimeProblem
        backgroundTasks.append(Task {
            while !Task.isCancelled {
                let probe = Task { _ = try await store.session(id: "00000000-0000-4000-8000-000000000000") }
                do {
                    try await withDeadline(seconds: 2) { try await probe.value }
                    if problem.current != nil { logger.notice("runtime store answering again") }
                    problem.set(nil)
                } catch {
                    // The reason goes to the log; /readyz, which anyone may ask, says "unreachable".
                    if problem.current == nil { logger.warning("runtime store not answering: not ready", metadata: ["error": "\(error)"]) }
                    problem.set("\(error)")
                    _ = await probe.result
                }
                try? await Task.sleep(nanoseconds: 2_000_000_000)
            }
        })
        sessions = RuntimeSessions(store: store, createUnknown: config.runtime.unknownSessions == "create",
                                   validator: settings.validator, contract: settings.defaultContract, sessionTTL: settings.sessionTTL, cache: cache,
                                   events: events)
        self.logger = logger
        accessLogTarget = config.server.accessLog
        accessSink = LogSink.open(config.server.accessLog)
        if let sink = accessSink {
            accessLog = Logger(label: "access") { JSONLineLogHandler(label: $0, sink: sink) }
        } else {
            accessLog = nil
        }
        var rawPools: [ObjectIdentifier: UpstreamPool] = [:]
        for loop in group.makeIterator() {
            rawPools[ObjectIdentifier(loop)] = UpstreamPool(loop: loop)
        }
        self.rawPools = rawPools
    }

    var state: GatewayState { current.withLock { $0 } }

    private static func unknownKidHook(_ remote: RemoteJWKS?) -> (@Sendable () -> Void)? {
        guard let remote else { return nil }
        let hook: @Sendable () -> Void = { remote.unknownKid() }
        return hook
    }
    var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Binds and starts serving; returns the bound host and port (port 0 picks one).
    @discardableResult
    public func start() async throws -> (host: String, port: Int) {
        let config = state.config
        if let remote {
            await remote.refreshAll()
            backgroundTasks.append(Task { await remote.run() })
        }
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // One handler a connection (HTTP1/ClientConnectionHandler), its loop's pool.
                    let loop = ObjectIdentifier(channel.eventLoop)
                    try channel.pipeline.syncOperations.addHandler(ClientConnectionHandler(server: self, pool: self.rawPools[loop]!))
                }
            }
            .bind(host: config.server.host, port: config.server.port).get()
        listener.withLock { $0 = channel }
        return (channel.localAddress?.ipAddress ?? config.server.host, channel.localAddress?.port ?? config.server.port)
    }

    // MARK: Reload and drain

    /// Reads the config file and the key folder again. A bad config or bad keys are refused
    /// with their reasons and the running ones keep serving.
    public func reload(configPath: String) throws {
        // The access log file first, whatever becomes of the rest: logrotate's SIGHUP must
        // work while a config being edited is refused.
        if accessSink?.reopen() == false {
            logger.warning("reload: cannot open the access log again; lines keep going to the file open before", metadata: ["access_log": "\(accessLogTarget)"])
        }
        let config = try GatewayConfig.load(path: configPath)
        let running = state.config
        if config.server.host != running.server.host || config.server.port != running.server.port {
            logger.warning("reload: [server] listen changed; restart to move the listener", metadata: ["listen": "\(config.server.host):\(config.server.port)"])
        }
        if config.auth.keys != keys.directory {
            logger.warning("reload: [auth] keys moved; restart to read keys from \(config.auth.keys)")
        }
        try keys.reload()
        let next = GatewayState(config: config, keys: keys, health: upstreamHealth, onUnknownKid: Self.unknownKidHook(remote))
        current.withLock { $0 = next }
        stateGeneration.add(1, ordering: .releasing)
        // The access log file is opened again: logrotate's `mv` then SIGHUP starts a new one.
        if config.server.accessLog != accessLogTarget {
            logger.warning("reload: [server] access_log changed; restart to write it elsewhere", metadata: ["access_log": "\(accessLogTarget)"])
        }
        upstreamHealth.keep(origins: Set(config.routes.flatMap { $0.upstreams.map(\.origin) }))
        logger.info("reload: config and keys in service", metadata: ["routes": "\(config.routes.count)", "keys": "\(keys.ring.keys.count)"])
    }

    /// Stops accepting, answers in-flight requests, closes idle connections, then returns
    /// (at the latest after `timeout`).
    public func drain(timeout: Double) async {
        draining.store(true, ordering: .relaxed)
        let channel = listener.withLock { $0 }
        try? await channel?.close()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            connections.closeIdle()
            if connections.count == 0 { break }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        drainTimedOut.store(connections.count > 0, ordering: .relaxed)
        connections.closeAll()
    }

    /// The drain's timeout ran out with requests in flight: the gateway closed them.
    let drainTimedOut = Atomic<Bool>(false)

    /// How a request that ended with its connection is logged: the client's close (499), or
    /// the gateway's at the end of a drain.
    var inFlightCloseNote: (status: Int, note: String) {
        drainTimedOut.load(ordering: .relaxed) ? (503, "closed by the gateway: drain_timeout ran out") : (499, "client closed")
    }

    public func shutdown() async {
        try? await group.shutdownGracefully()
    }

    // MARK: Built-in endpoints

    struct BuiltIn {
        let status: HTTPResponseStatus
        let contentType: String
        let body: [UInt8]
    }

    func builtIn(path: String, state: GatewayState) -> BuiltIn? {
        switch path {
        case "/healthz":
            return BuiltIn(status: .ok, contentType: "application/json", body: Array("{\"status\":\"ok\"}\n".utf8))
        case "/readyz":
            let ring = keys.ring
            let runtime = runtimeProblem.current
            let ready = !ring.keys.filter(\.canVerify).isEmpty && !isDraining && runtime == nil
            let body = "{\"status\":\"\(ready ? "ready" : "not_ready")\",\"keys\":\(ring.keys.count),\"draining\":\(isDraining),"
                + "\"runtime\":\"\(runtime == nil ? "ok" : "unreachable")\"}\n"
            return BuiltIn(status: ready ? .ok : .serviceUnavailable, contentType: "application/json", body: Array(body.utf8))
        case "/metrics":
            return BuiltIn(status: .ok, contentType: "text/plain; version=0.0.4", body: metrics.render(cache: state.verifier.cache, refusals: state.verifier.refusals))
        default:
            return nil
        }
    }

    // MARK: Accounting

    /// Counts the request (unless the caller did, `counted`) and writes its access-log line.
    func requestFinished(route: String, status: Int, counted: Bool = false, method: @autoclosure () -> String, uri: @autoclosure () -> String,
                         requestID: @autoclosure () -> String, started: UInt64,
                         upstream: Upstream?, identity: Identity?, bytesIn: Int, bytesOut: Int, note: String?) {
        if !counted { metrics.request(route: route, status: status) }
        guard let accessLog else { return }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
        var metadata: Logger.Metadata = [
            "request_id": "\(requestID())", "method": "\(method())", "path": "\(Self.redactedPath(uri()))", "status": "\(status)",
            "route": "\(route)", "duration_ms": "\(String(format: "%.3f", elapsed))", "bytes_in": "\(bytesIn)", "bytes_out": "\(bytesOut)",
        ]
        if let upstream { metadata["upstream"] = "\(upstream)" }
        if let user = identity?.userID { metadata["user_id"] = "\(user)" }
        if let session = identity?.sessionID { metadata["session_id"] = "\(session)" }
        if let note { metadata["reason"] = "\(note)" }
        accessLog.info("request", metadata: metadata)
    }

    /// Counts and logs a request the gateway answered itself with `response`: no upstream, no
    /// identity, refused before or instead of being proxied.
    func answeredHere(_ response: ErrorResponse, requestID: @autoclosure () -> String, route: String = "-", method: @autoclosure () -> String = "-",
                      uri: @autoclosure () -> String = "-", started: UInt64 = DispatchTime.now().uptimeNanoseconds, bytesIn: Int = 0) {
        // The body's size, worked out only for the log (a HEAD answer has none).
        let id = accessLog == nil ? "" : requestID(), verb = accessLog == nil ? "" : method()
        let bytesOut = accessLog == nil || verb == "HEAD" ? 0 : response.body(requestID: id).utf8.count
        requestFinished(route: route, status: Int(response.status.code), method: verb, uri: uri(), requestID: id, started: started,
                        upstream: nil, identity: nil, bytesIn: bytesIn, bytesOut: bytesOut, note: response.reason)
    }

    /// The path without its query: query strings can carry tokens, and tokens are never logged.
    static func redactedPath(_ uri: String) -> String {
        // A fragment too: OAuth and Supabase redirects carry tokens there (#access_token=...).
        guard let q = uri.firstIndex(where: { $0 == "?" || $0 == "#" }) else { return uri }
        return String(uri[..<q]) + "\(uri[q])…"
    }
}

/// The open client connections, so a drain can close the idle ones and wait for the rest.
final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func opened(_ channel: any Channel) { channels.withLock { $0[ObjectIdentifier(channel)] = channel } }
    func closed(_ channel: any Channel) { _ = channels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) } }
    var count: Int { channels.withLock { $0.count } }

    /// Asks each connection to close once it has no request in flight.
    func closeIdle() {
        for channel in channels.withLock({ Array($0.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(DrainEvent())
        }
    }

    func closeAll() {
        for channel in channels.withLock({ Array($0.values) }) { channel.close(promise: nil) }
    }
}

/// Sent down each connection's pipeline during a drain.
struct DrainEvent: Sendable {}
