import Foundation
import JOSE
import Logging
import NIOCore
import NIOPosix
import Runtime

@testable import Gateway

/// A GatewayServer that is never started, for tests that drive its admission and its connection
/// handler without sockets: an HS256 key (kid "test"), a throwaway SQLite store, and routes for
/// each policy the edge decides.
final class EdgeFixture {
    static let secret = "edge-fixture-secret-0123456789abcdef0123456789"
    static let routes = """
        [[route]]
        name = "live"
        path = "/live/"
        auth = "required"
        session = "required"
        upstream = "http://127.0.0.1:9"

        [[route]]
        name = "cut"
        path = "/cut/"
        auth = "required"
        forward_authorization = false
        upstream = "http://127.0.0.1:9"

        [[route]]
        name = "strip"
        path = "/strip/"
        strip_prefix = true
        auth = "public"
        upstream = "http://127.0.0.1:9/base"

        [[route]]
        name = "override"
        path = "/override/"
        auth = "public"
        allow_method_override = ["x-http-method-override"]
        upstream = "http://127.0.0.1:9"

        [[route]]
        name = "api"
        path = "/api/"
        auth = "required"
        upstream = "http://127.0.0.1:9"

        [[route]]
        name = "public"
        path = "/public/"
        auth = "public"
        upstream = "http://127.0.0.1:9"
        """

    let folder: String
    let group: MultiThreadedEventLoopGroup
    let store: SQLiteStore
    let server: GatewayServer
    let key: JWTKey

    init(extra: String = "") async throws {
        folder = NSTemporaryDirectory() + "gateway-edge-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder + "/keys", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: folder + "/keys/test.secret", contents: Data(Self.secret.utf8), attributes: [.posixPermissions: 0o600])
        let config = try GatewayConfig.parse("""
            [server]
            access_log = "off"
            max_header_bytes = 4096
            max_body_bytes = 1000000

            [auth]
            keys = "\(folder)/keys"
            token_sources = ["authorization", "apikey", "cookie:sb-access-token", "query:access_token"]

            [runtime]
            store = "sqlite:\(folder)/state.db"
            \(extra)
            \(Self.routes)
            """, file: folder + "/gateway.conf", baseDirectory: folder)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        store = try await SQLiteStore.open(path: folder + "/state.db", eventLoop: group.any())
        var logger = Logger(label: "edge-fixture")
        logger.logLevel = .critical
        server = try GatewayServer(config: config, group: group, store: store, logger: logger)
        key = try JWTKey.secret(Array(Self.secret.utf8), kid: "test", algorithm: .HS256, source: "fixture")
    }

    func close() async throws {
        try await store.close()
        try await group.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// An HS256 token for `sub`, valid for an hour, with `session_id` if given.
    func token(sub: String = "8d8a3b8e-0000-4000-8000-000000000001", session: String? = nil, exp: Double? = nil) throws -> String {
        let now = Int64(Date().timeIntervalSince1970)
        var claims: [(String, JSONValue)] = [("sub", .string(sub)), ("role", .string("authenticated")),
                                             ("exp", .int(exp.map { Int64($0) } ?? now + 3600)), ("iat", .int(now))]
        if let session { claims.append(("session_id", .string(session))) }
        return try TokenSigner.sign(claims: .object(claims), key: key, algorithm: .HS256)
    }

    /// A fresh admission for a client at 192.0.2.7.
    func admission() -> Admission { Admission(localAPI: server.localAPI, remoteIP: "192.0.2.7") }
}
