import Foundation
package import Gateway
package import JOSE

/// A gateway for the fuzz targets: a key folder with an HS256 secret and an ES256 key, a
/// config with routes of every kind the embedded harness can serve, and a SQLite store, all
/// in a fresh folder under /dev/shm (or the temporary folder).
package enum FuzzGateway {
    /// The HS256 secret in the key folder (kid "fuzz-hs").
    package static let secret = Array("fuzz-hs256-secret-0123456789abcdef0123456789abcdef".utf8)
    package static let issuer = "https://issuer.example/auth/v1"

    /// The HS256 and ES256 keys the gateway trusts, for signing tokens in a harness.
    package nonisolated(unsafe) static var hs256: JWTKey!
    package nonisolated(unsafe) static var es256: JWTKey!

    /// The config the proxying targets serve (no local API: its work runs off the loop).
    package static func proxyConfig(folder: String) -> String {
        """
        [server]
        listen = "127.0.0.1:0"
        access_log = "off"
        max_body_bytes = 65536
        max_header_bytes = 16384

        [auth]
        keys = "\(folder)/keys"
        issuer = "\(issuer)"
        audience = ["authenticated"]
        cache_size = 64
        token_sources = ["authorization", "apikey", "cookie:sb-access-token", "query:access_token"]

        [identity]
        claims_header = "X-Claims"
        strip = ["X-Internal-Admin"]

        [runtime]
        store = "sqlite:\(folder)/fuzz.db"
        auth_path = ""
        session_api = false

        [cors]
        allow_origins = ["http://app.example"]
        allow_credentials = true
        expose_headers = ["X-Request-Id"]

        [[route]]
        name = "public"
        path = "/public/"
        upstream = "http://127.0.0.1:9001"

        [[route]]
        name = "api"
        path = "/api/"
        strip_prefix = true
        methods = ["GET", "HEAD", "POST", "PUT", "DELETE"]
        upstream = ["http://127.0.0.1:9001", "http://127.0.0.1:9002/base"]
        auth = "required"
        require = { role = ["authenticated", "service_role"], claims = { "app_metadata.tenant_id" = "acme" }, contains = { "app_metadata.groups" = "ops" } }

        [[route]]
        name = "optional"
        exact = "/opt"
        auth = "optional"
        upstream = "http://127.0.0.1:9002"

        [[route]]
        name = "admin"
        path = "/"
        host = "secure.example"
        auth = "required"
        require = { aal = "aal2" }
        forward_authorization = true
        upstream = "http://127.0.0.1:9001"
        """
    }

    /// The config the local API target serves (`/auth/v1` and `/api/session*` on, cheap hashes,
    /// limits out of the way).
    package static func apiConfig(folder: String) -> String {
        """
        [server]
        access_log = "off"

        [auth]
        keys = "\(folder)/keys"
        issuer = "\(issuer)"
        audience = ["authenticated"]

        [runtime]
        store = "sqlite:\(folder)/fuzz.db"
        password_cost = 10
        login_limit_per_ip = 1000000
        login_limit_per_email = 1000000
        """
    }

    /// Makes the folder, the keys and the gateway for `config(folder)`.
    package static func make(_ config: (String) -> String) -> EmbeddedGateway {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let folder = "\(base)/gateway-fuzz-\(getpid())"
        do {
            try? FileManager.default.removeItem(atPath: folder)
            try FileManager.default.createDirectory(atPath: "\(folder)/keys", withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: "\(folder)/keys/fuzz-hs.secret", contents: Data(secret), attributes: [.posixPermissions: 0o600])
            let es = try JWTKey.generate(for: .ES256, kid: "fuzz-es", source: "fuzz", modified: 0)
            _ = FileManager.default.createFile(atPath: "\(folder)/keys/fuzz-es.pem", contents: Data(es.pem(includingPrivate: true)!.utf8),
                                           attributes: [.posixPermissions: 0o600])
            hs256 = try JWTKey.secret(secret, kid: "fuzz-hs", source: "fuzz")
            es256 = try JWTKey.pem(Array(es.pem(includingPrivate: true)!.utf8), kid: "fuzz-es", source: "fuzz")
            let parsed = try GatewayConfig.parse(config(folder), file: "\(folder)/gateway.conf", baseDirectory: folder)
            let gateway = try EmbeddedGateway(config: parsed, storePath: "\(folder)/fuzz.db")
            atexit { _ = try? FileManager.default.removeItem(atPath: "/dev/shm/gateway-fuzz-\(getpid())") }
            return gateway
        } catch {
            fatalError("fuzz gateway setup: \(error)")
        }
    }

    /// A compact JWS over exactly `payload` (any bytes), signed with `key`.
    package static func sign(_ payload: UnsafeRawBufferPointer, key: JWTKey, algorithm: Algorithm) -> String {
        let header = "{\"alg\":\"\(algorithm.rawValue)\",\"kid\":\"\(key.kid ?? "")\",\"typ\":\"JWT\"}"
        let input = Base64URL.encode(header.utf8) + "." + Base64URL.encode(payload)
        let signature: [UInt8]
        do { signature = try Array(input.utf8).withUnsafeBytes { bytes throws(AuthFailure) in try key.sign(algorithm, message: bytes) } } catch {
            fatalError("fuzz signing: \(error)")
        }
        return input + "." + Base64URL.encode(signature)
    }

    /// A valid token for the `api` route: HS256, authenticated, tenant acme, group ops.
    package static func userToken(sub: String = "8d0fbd0e-8ad0-4b6b-a8bb-4e1c1d7c0a11") -> String {
        let now = Int(Date().timeIntervalSince1970)
        let claims = """
            {"sub":"\(sub)","role":"authenticated","aud":"authenticated","iss":"\(issuer)","exp":\(now + 86400),"iat":\(now),\
            "app_metadata":{"tenant_id":"acme","groups":["ops"]},"aal":"aal2"}
            """
        return Array(claims.utf8).withUnsafeBytes { sign($0, key: hs256, algorithm: .HS256) }
    }
}
