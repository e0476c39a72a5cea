import Foundation
public import JOSE
import TOMLKit

/// gateway.conf, parsed once into plain values. A reload parses a new one and swaps it in.
///
/// Sections: `[server]`, `[auth]`, `[identity]`, `[runtime]`, `[cors]`, `[[route]]`. Unknown keys are errors.
/// Relative paths are resolved against the folder holding the config file.
public struct GatewayConfig: Sendable {
    public var server = ServerConfig()
    public var auth = AuthConfig()
    public var identity = IdentityConfig()
    public var runtime = RuntimeConfig()
    /// `[cors]`, if the gateway answers CORS for browsers.
    public var cors: CORSConfig?
    /// Routes in file order; the first match wins.
    public var routes: [RouteConfig] = []
    /// Where the file was read from ("" when built in code).
    public var file = ""

    public init() {}

    /// Reads and checks a config file; throws every mistake at once.
    public static func load(path: String) throws(ConfigError) -> GatewayConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError(file: path, issues: [ConfigIssue(line: nil, path: "", message: "cannot read: \(error.localizedDescription)")])
        }
        let base = (path as NSString).deletingLastPathComponent
        return try parse(text, file: path, baseDirectory: base.isEmpty ? "." : base)
    }

    /// Parses config text; relative paths resolve against `baseDirectory`.
    public static func parse(_ text: String, file: String = "gateway.conf", baseDirectory: String = ".") throws(ConfigError) -> GatewayConfig {
        if let problem = TOMLText.problem(text) {
            throw ConfigError(file: file, issues: [ConfigIssue(line: problem.line, path: "", message: problem.message)])
        }
        let root: TOMLTable
        do { root = try TOMLTable(string: text) } catch let error as TOMLParseError {
            throw ConfigError(file: file, issues: [ConfigIssue(line: error.source.begin.line, path: "", message: "TOML syntax: \(error.description)")])
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue(line: nil, path: "", message: "TOML syntax: \(error)")])
        }
        var reader = ConfigReader(text: text)
        var config = GatewayConfig()
        config.file = file
        reader.checkKeys(root, at: "", known: ["server", "auth", "identity", "runtime", "cors", "route"])
        if let server = reader.table(root, "server", at: "") {
            config.server = ServerConfig.read(server, &reader)
        }
        if let auth = reader.table(root, "auth", at: "") {
            config.auth = AuthConfig.read(auth, &reader, baseDirectory: baseDirectory)
        } else {
            config.auth.keys = resolve(config.auth.keys, against: baseDirectory)
        }
        if let runtime = reader.table(root, "runtime", at: "") {
            config.runtime = RuntimeConfig.read(runtime, &reader, baseDirectory: baseDirectory)
        } else {
            config.runtime.store = "sqlite:" + resolve("data/gateway.db", against: baseDirectory)
        }
        if let identity = reader.table(root, "identity", at: "") {
            config.identity = IdentityConfig.read(identity, &reader)
        }
        if let cors = reader.table(root, "cors", at: "") {
            config.cors = CORSConfig.read(cors, &reader)
        }
        if let routes = root["route"] {
            if let array = routes.array {
                for (index, item) in array.enumerated() {
                    guard let table = item.table else { reader.fail("route[\(index)]", "expected a table ([[route]])"); continue }
                    if let route = RouteConfig.read(table, index: index, &reader) { config.routes.append(route) }
                }
            } else {
                reader.fail("route", "write routes as [[route]] tables")
            }
        }
        // Route names label metrics and log lines: two routes may not share one.
        var named: [String: Int] = [:]
        for route in config.routes {
            if let first = named[route.name] {
                reader.fail("route[\(route.index)].name", "\"\(route.name)\" is already the name of route[\(first)]: metrics and log lines would mix them")
            } else {
                named[route.name] = route.index
            }
        }
        if !reader.issues.isEmpty { throw ConfigError(file: file, issues: reader.issues) }
        return config
    }

    /// What the files it names say about it on this machine, beyond its text: a key folder
    /// that does not exist (other than the default `Keys`, where `serve` makes a development
    /// key: a typo elsewhere would serve with a fresh key and refuse every real token), an
    /// access log that cannot be written.
    public func problemsOnThisMachine() -> [String] {
        var problems: [String] = []
        var isFolder: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: auth.keys, isDirectory: &isFolder)
        if exists, !isFolder.boolValue {
            problems.append("[auth] keys: \(auth.keys) is a file, not a folder")
        } else if !exists, (auth.keys as NSString).lastPathComponent != "Keys" {
            problems.append("[auth] keys: the folder \(auth.keys) does not exist (only a folder named Keys is made, with a development key, on first run)")
        }
        if let why = LogSink.problem(server.accessLog) { problems.append("[server] access_log: \(why)") }
        return problems
    }

    static func resolve(_ path: String, against base: String) -> String {
        path.hasPrefix("/") || base == "." ? path : (base as NSString).appendingPathComponent(path)
    }
}

/// `[server]`: where to listen and with how many event loops.
public struct ServerConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Event-loop threads; 0 means one per core.
    public var threads = 0
    /// Request head size limit (431 beyond it). At most 64 KiB: below the 80 KiB the full
    /// path's HTTP/1 parser (NIOHTTP1) reads at most, so the limit is always the gateway's.
    public var maxHeaderBytes = 32 * 1024
    /// Request body size limit (413 beyond it); 0 is no limit.
    public var maxBodyBytes = 0
    /// How long SIGTERM waits for in-flight requests.
    public var drainTimeout: Double = 30
    /// Where JSON access-log lines go: "stdout", "stderr", "off", or a file path.
    public var accessLog = "stdout"
    /// Idle keep-alive connections from clients are closed after this long.
    public var clientIdleTimeout: Double = 75

    static func read(_ table: TOMLTable, _ reader: inout ConfigReader) -> ServerConfig {
        var server = ServerConfig()
        reader.checkKeys(table, at: "server", known: ["listen", "threads", "max_header_bytes", "max_body_bytes", "drain_timeout", "access_log", "idle_timeout"])
        if let v = reader.int(table, "max_header_bytes", at: "server", range: 1024...65_536) { server.maxHeaderBytes = v }
        if let v = reader.int(table, "max_body_bytes", at: "server", range: 0...Int.max) { server.maxBodyBytes = v }
        if let v = reader.duration(table, "drain_timeout", at: "server", range: 0...86400) { server.drainTimeout = v }
        if let v = reader.string(table, "access_log", at: "server") { server.accessLog = v }
        if let v = reader.duration(table, "idle_timeout", at: "server", range: 0.1...86400) { server.clientIdleTimeout = v }
        if let listen = reader.string(table, "listen", at: "server") {
            if let (host, port) = parseListen(listen) {
                server.host = host
                server.port = port
            } else {
                reader.fail("server.listen", "expected \"HOST:PORT\" (e.g. \"127.0.0.1:8080\", \"[::1]:8080\"), found \"\(listen)\"")
            }
        }
        if let threads = reader.int(table, "threads", at: "server", range: 0...1024) { server.threads = threads }
        return server
    }

    /// "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0".
    public static func parseListen(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port), !host.isEmpty else { return nil }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }
}

/// `[auth]`: which tokens are accepted and where keys live.
public struct AuthConfig: Sendable {
    public var issuers: [String] = []
    public var audiences: [String] = []
    /// The key folder (`Keys` next to the config by default).
    public var keys = "Keys"
    public var leeway: Double = 60
    public var maxTokenSize = CompactJWS.defaultMaximumSize
    public var requireExpiration = true
    /// Verified-token cache entries; 0 turns the cache off.
    public var cacheSize = 100_000
    /// Where tokens are looked for, in order.
    public var tokenSources: [TokenSource] = [.authorization, .apikey]
    /// JWKS URLs of other projects whose tokens are trusted.
    public var jwksURLs: [String] = []

    /// The claim policy these settings describe.
    public var policy: ClaimPolicy {
        ClaimPolicy(requireExpiration: requireExpiration, leeway: leeway, issuers: issuers, audiences: audiences)
    }

    static func read(_ table: TOMLTable, _ reader: inout ConfigReader, baseDirectory: String) -> AuthConfig {
        var auth = AuthConfig()
        reader.checkKeys(table, at: "auth", known: ["issuer", "audience", "keys", "leeway", "max_token_size", "require_exp", "cache_size", "token_sources", "jwks_urls"])
        if let urls = reader.strings(table, "jwks_urls", at: "auth") {
            for url in urls where !(url.hasPrefix("https://") || url.hasPrefix("http://")) {
                reader.fail("auth.jwks_urls", "expected http(s) URLs, found \"\(url)\"")
            }
            auth.jwksURLs = urls
        }
        if let sources = reader.strings(table, "token_sources", at: "auth") {
            var parsed: [TokenSource] = []
            for text in sources {
                if let source = TokenSource(text) { parsed.append(source) } else {
                    reader.fail("auth.token_sources", "unknown source \"\(text)\"; expected \"authorization\", \"apikey\", \"cookie:NAME\" or \"query:NAME\"")
                }
            }
            auth.tokenSources = parsed
        }
        if let issuers = reader.strings(table, "issuer", at: "auth") { auth.issuers = issuers }
        if let audiences = reader.strings(table, "audience", at: "auth") {
            if audiences.isEmpty { reader.fail("auth.audience", "needs at least one audience (leave audience out to accept any)") } else { auth.audiences = audiences }
        }
        if let keys = reader.string(table, "keys", at: "auth") { auth.keys = keys }
        auth.keys = GatewayConfig.resolve(auth.keys, against: baseDirectory)
        if let leeway = reader.duration(table, "leeway", at: "auth") {
            if leeway > 3600 { reader.fail("auth.leeway", "at most 1h of clock skew is tolerated, found \(Int(leeway))s") } else { auth.leeway = leeway }
        }
        if let size = reader.int(table, "max_token_size", at: "auth", range: 256...1_048_576) { auth.maxTokenSize = size }
        if let require = reader.bool(table, "require_exp", at: "auth") { auth.requireExpiration = require }
        if let size = reader.int(table, "cache_size", at: "auth", range: 0...10_000_000) { auth.cacheSize = size }
        return auth
    }
}

/// Where a request may carry its token.
public enum TokenSource: Sendable, Equatable, CustomStringConvertible {
    /// `Authorization: Bearer <token>`.
    case authorization
    /// Supabase's `apikey` header (anon and service_role keys are JWTs).
    case apikey
    case cookie(String)
    /// A query parameter; off unless configured (tokens in URLs end up in logs).
    case query(String)

    public init?(_ text: String) {
        switch text {
        case "authorization", "header", "bearer": self = .authorization
        case "apikey": self = .apikey
        default:
            if text.hasPrefix("cookie:"), text.count > 7 { self = .cookie(String(text.dropFirst(7))) }
            else if text.hasPrefix("query:"), text.count > 6 { self = .query(String(text.dropFirst(6))) }
            else { return nil }
        }
    }

    public var description: String {
        switch self {
        case .authorization: "authorization"
        case .apikey: "apikey"
        case .cookie(let name): "cookie:\(name)"
        case .query(let name): "query:\(name)"
        }
    }
}

/// `[identity]`: the headers the gateway owns. Client-sent copies are always removed; verified
/// values are added on authenticated requests.
public struct IdentityConfig: Sendable {
    public var userID = "X-User-Id"
    public var role = "X-User-Role"
    public var sessionID = "X-Session-Id"
    public var tenantID = "X-Tenant-Id"
    /// The verified claims as compact JSON (base64url), or "" to not send them.
    public var claims = "X-Auth-Claims"
    /// Where the tenant is read from in the claims.
    public var tenantClaim = "app_metadata.tenant_id"
    /// Extra client headers to strip (lower-case names).
    public var strip: [String] = []

    /// The default names, stripped from clients whatever the configuration says.
    public static let defaultNames = ["x-user-id", "x-user-role", "x-session-id", "x-tenant-id", "x-auth-claims"]

    /// Every header name the gateway owns, lower-cased.
    public var namespace: [String] {
        // As the proxy compares names: lower-case, '_' read as '-'.
        ([userID, role, sessionID, tenantID, claims].filter { !$0.isEmpty } + strip).map { $0.lowercased().replacingOccurrences(of: "_", with: "-") }
    }

    static func read(_ table: TOMLTable, _ reader: inout ConfigReader) -> IdentityConfig {
        var identity = IdentityConfig()
        reader.checkKeys(table, at: "identity", known: ["user_id_header", "role_header", "session_id_header", "tenant_id_header", "claims_header", "tenant_claim", "strip"])
        // Header names are written into requests as they are: each must be an HTTP token ("" turns one off).
        func name(_ key: String) -> String? {
            guard let v = reader.string(table, key, at: "identity") else { return nil }
            guard v.utf8.allSatisfy(HTTPScan.isTokenChar) else {
                reader.fail("identity.\(key)", "expected a header name (letters, digits and !#$%&'*+-.^_`|~), found \"\(v)\"")
                return nil
            }
            return v
        }
        if let v = name("user_id_header") { identity.userID = v }
        if let v = name("role_header") { identity.role = v }
        if let v = name("session_id_header") { identity.sessionID = v }
        if let v = name("tenant_id_header") { identity.tenantID = v }
        if let v = name("claims_header") { identity.claims = v }
        if let v = reader.string(table, "tenant_claim", at: "identity") { identity.tenantClaim = v }
        if let v = reader.strings(table, "strip", at: "identity") {
            for bad in v where bad.isEmpty || !bad.utf8.allSatisfy(HTTPScan.isTokenChar) {
                reader.fail("identity.strip", "expected header names, found \"\(bad)\"")
            }
            identity.strip = v
        }
        return identity
    }
}
