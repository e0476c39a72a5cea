import Foundation
public import JOSE
import TOMLKit

/// gateway.conf, parsed once into plain values. A reload parses a new one and swaps it in.
///
/// Sections: `[server]`, `[auth]`. Unknown keys are errors. Relative paths are resolved
/// against the folder holding the config file.
public struct GatewayConfig: Sendable {
    public var server = ServerConfig()
    public var auth = AuthConfig()
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
        let root: TOMLTable
        do { root = try TOMLTable(string: text) } catch let error as TOMLParseError {
            throw ConfigError(file: file, issues: [ConfigIssue(line: error.source.begin.line, path: "", message: "TOML syntax: \(error.description)")])
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue(line: nil, path: "", message: "TOML syntax: \(error)")])
        }
        var reader = ConfigReader(text: text)
        var config = GatewayConfig()
        config.file = file
        reader.checkKeys(root, at: "", known: ["server", "auth"])
        if let server = reader.table(root, "server", at: "") {
            config.server = ServerConfig.read(server, &reader)
        }
        if let auth = reader.table(root, "auth", at: "") {
            config.auth = AuthConfig.read(auth, &reader, baseDirectory: baseDirectory)
        } else {
            config.auth.keys = resolve(config.auth.keys, against: baseDirectory)
        }
        if !reader.issues.isEmpty { throw ConfigError(file: file, issues: reader.issues) }
        return config
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

    static func read(_ table: TOMLTable, _ reader: inout ConfigReader) -> ServerConfig {
        var server = ServerConfig()
        reader.checkKeys(table, at: "server", known: ["listen", "threads"])
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

    /// The claim policy these settings describe.
    public var policy: ClaimPolicy {
        ClaimPolicy(requireExpiration: requireExpiration, leeway: leeway, issuers: issuers, audiences: audiences)
    }

    static func read(_ table: TOMLTable, _ reader: inout ConfigReader, baseDirectory: String) -> AuthConfig {
        var auth = AuthConfig()
        reader.checkKeys(table, at: "auth", known: ["issuer", "audience", "keys", "leeway", "max_token_size", "require_exp", "cache_size"])
        if let issuers = reader.strings(table, "issuer", at: "auth") { auth.issuers = issuers }
        if let audiences = reader.strings(table, "audience", at: "auth") { auth.audiences = audiences }
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
