import Foundation
public import Runtime
import TOMLKit

/// `[runtime]`: where sessions and users live and the rules for them.
public struct RuntimeConfig: Sendable {
    /// `sqlite:PATH` (relative to the config file) or `postgres://user@host:port/db`.
    public var store = "sqlite:data/gateway.db"
    public var contracts: [String] = ["default"]
    /// `session_limit` (live sessions per user; absent or 0: no limit, Supabase Auth's
    /// default) and `session_limit_mode` ("evict", the default: a sign-in past the limit ends
    /// the user's least recently used sessions; "refuse": it is refused 429).
    public var sessionLimit = SessionLimit.unlimited
    public var accessTokenTTL: Double = 3600
    public var sessionTTL: Double = 7 * 86400
    /// scrypt log2(N).
    public var passwordCost = 15
    /// Every /auth/v1 request must carry a valid `apikey` (an anon or service_role JWT).
    public var requireAPIKey = false
    /// Serve the Supabase-compatible identity endpoints at this prefix ("" turns them off).
    public var authPath = "/auth/v1"
    /// Serve /api/session/* and /api/sessions.
    public var sessionAPI = true
    /// What a valid token whose `session_id` has no runtime session gets: "reject" or "create".
    public var unknownSessions = "reject"
    /// Token buckets over 5 minutes (a burst of this many, refilled at this many per 5
    /// minutes; 429 with Retry-After beyond): every login and sign-up per client IP, failed
    /// logins per email.
    public var loginLimitPerIP = 30
    public var loginLimitPerEmail = 10
    /// How long a looked-up session is trusted before asking the store again; revocations
    /// evict at once. 0 turns the cache off.
    public var sessionCache: Double = 1

    static func read(_ table: TOMLTable, _ reader: inout ConfigReader, baseDirectory: String) -> RuntimeConfig {
        var runtime = RuntimeConfig()
        let at = "runtime"
        reader.checkKeys(table, at: at, known: ["store", "contracts", "session_limit", "access_token_ttl", "session_ttl", "password_cost",
                                                "require_apikey", "auth_path", "session_api", "unknown_sessions",
                                                "login_limit_per_ip", "login_limit_per_email", "session_cache", "session_limit_mode"])
        if let v = reader.int(table, "login_limit_per_ip", at: at, range: 1...1_000_000) { runtime.loginLimitPerIP = v }
        if let v = reader.duration(table, "session_cache", at: at) { runtime.sessionCache = min(v, 60) }
        if let v = reader.int(table, "login_limit_per_email", at: at, range: 1...1_000_000) { runtime.loginLimitPerEmail = v }
        if let store = reader.string(table, "store", at: at) {
            if store.hasPrefix("sqlite:") || store.hasPrefix("postgres://") || store.hasPrefix("postgresql://") { runtime.store = store } else {
                reader.fail("runtime.store", "expected \"sqlite:PATH\" or \"postgres://USER@HOST:PORT/DB\", found \"\(store)\"")
            }
        }
        if runtime.store.hasPrefix("sqlite:") {
            runtime.store = "sqlite:" + GatewayConfig.resolve(String(runtime.store.dropFirst(7)), against: baseDirectory)
        }
        if let contracts = reader.strings(table, "contracts", at: at) {
            if contracts.isEmpty { reader.fail("runtime.contracts", "needs at least one contract") } else { runtime.contracts = contracts }
        }
        let limit = reader.int(table, "session_limit", at: at, range: 0...1_000_000, meaning: "0 for no limit")
        var policy = SessionLimit.Policy.evict
        if let v = reader.string(table, "session_limit_mode", at: at) {
            if let known = SessionLimit.Policy(rawValue: v) { policy = known } else {
                reader.fail("runtime.session_limit_mode", "expected \"evict\" (end the user's least recently used session) or \"refuse\" (answer 429 over_session_limit), found \"\(v)\"")
            }
        }
        runtime.sessionLimit = SessionLimit(maximum: limit, policy: policy)
        if let v = reader.duration(table, "access_token_ttl", at: at) {
            if v < 30 || v > 86400 { reader.fail("runtime.access_token_ttl", "expected 30s...24h") } else { runtime.accessTokenTTL = v }
        }
        if let v = reader.duration(table, "session_ttl", at: at) { runtime.sessionTTL = max(60, v) }
        if let v = reader.int(table, "password_cost", at: at, range: 10...20) { runtime.passwordCost = v }
        if let v = reader.bool(table, "require_apikey", at: at) { runtime.requireAPIKey = v }
        if let v = reader.string(table, "auth_path", at: at) {
            if !v.isEmpty, !v.hasPrefix("/") || v.hasSuffix("/") { reader.fail("runtime.auth_path", "expected \"/auth/v1\" style (leading /, no trailing /) or \"\"") } else { runtime.authPath = v }
        }
        if let v = reader.bool(table, "session_api", at: at) { runtime.sessionAPI = v }
        if let v = reader.string(table, "unknown_sessions", at: at) {
            if v == "reject" || v == "create" { runtime.unknownSessions = v } else { reader.fail("runtime.unknown_sessions", "expected \"reject\" or \"create\"") }
        }
        return runtime
    }
}
