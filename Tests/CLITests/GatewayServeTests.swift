import Foundation
import JOSE
import Testing

/// `gateway serve` as a process in front of a real upstream (Tests/Integration/upstream.py),
/// driven with curl: routing, auth policy, identity headers, every error status, streaming,
/// operations endpoints, reload and drain.
@Suite(.serialized) struct GatewayServeTests {
    static let keys = CLITests.sharedKeys
    static let ring = try! KeyRing.load(directory: keys)

    static func token(_ extra: [(String, JSONValue)] = [], role: String = "authenticated", sub: String = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b",
                      session: String = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", kid: String = "es256") throws -> String {
        let now = Int64(Date().timeIntervalSince1970)
        var claims: [(String, JSONValue)] = [("iss", .string(CLITests.issuer)), ("sub", .string(sub)), ("aud", .string("authenticated")),
                                             ("exp", .int(now + 600)), ("iat", .int(now)), ("role", .string(role)),
                                             ("session_id", .string(session)), ("aal", .string("aal1"))]
        for (k, v) in extra { claims.removeAll { $0.0 == k }; claims.append((k, v)) }
        let signer = try ring.signingKey(kid: kid)
        return try TokenSigner.sign(claims: .object(claims), key: signer.key, algorithm: signer.algorithm)
    }

    @Test func routingAuthAndIdentity() throws {
        let a = try TestUpstream(name: "a"), b = try TestUpstream(name: "b")
        let gw = try TestGateway(config: """
        [server]
        access_log = "stdout"

        [[route]]
        exact = "/login"
        methods = ["POST"]
        upstream = "\(a.url)"
        auth = "public"

        [[route]]
        path = "/public/"
        upstream = "\(a.url)"
        auth = "public"

        [[route]]
        path = "/opt/"
        upstream = "\(a.url)"
        auth = "optional"

        [[route]]
        path = "/admin/"
        upstream = "\(a.url)"
        require = { role = ["service_role"] }

        [[route]]
        path = "/tenant/"
        upstream = "\(a.url)"
        require = { claims = { "app_metadata.tenant_id" = "acme" }, contains = { "app_metadata.groups" = "ops" } }

        [[route]]
        path = "/api/"
        strip_prefix = true
        upstream = ["\(a.url)/v1", "\(b.url)/v1"]
        """, keys: Self.keys)
        let token = try Self.token()

        // Exact + method: GET /login matches nothing.
        #expect(try Curl.request(gw.url + "/login", ["-X", "POST"]).status == 200)
        #expect(try Curl.request(gw.url + "/login").status == 404)

        // Required: no token is 401 with a bare challenge and the JSON vocabulary.
        let missing = try Curl.request(gw.url + "/api/x")
        #expect(missing.status == 401)
        #expect(missing.headers["www-authenticate"] == "Bearer realm=\"gateway\"")
        #expect(missing.json?["error"]?.string == "invalid_token")
        #expect(missing.json?["reason"]?.string?.hasPrefix("missing_token") == true)
        #expect(missing.json?["request_id"]?.string == missing.headers["x-request-id"])

        // A bad token: 401 invalid_token with the reason in the challenge.
        let forged = try Curl.request(gw.url + "/api/x", Curl.bearer(String(token.dropLast(4)) + "AAAA"))
        #expect(forged.status == 401)
        #expect(forged.headers["www-authenticate"]?.contains("error=\"invalid_token\"") == true)
        #expect(forged.headers["www-authenticate"]?.contains("bad_signature") == true)

        // Valid: strip_prefix, upstream base path, identity headers replaced, forwarding headers.
        let ok = try Curl.request(gw.url + "/api/items?q=1", Curl.bearer(token) + ["-H", "X-User-Id: attacker", "-H", "x-tenant-id: evil", "-H", "X_User_Id: underscore-attacker",
                                                                                "-H", "X-Auth-Claims: forged", "-H", "X-Request-Id: req-123"])
        #expect(ok.status == 200)
        let seen = try #require(ok.json)
        #expect(seen["path"]?.string == "/v1/items?q=1")
        let headerList = seen["header_list"]?.array ?? []
        #expect(headerList.filter { $0.array?.first?.string == "x-user-id" }.count == 1, "exactly one X-User-Id reaches the upstream")
        #expect(seen["headers"]?["x-user-id"]?.string == "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b")
        #expect(seen["headers"]?["x_user_id"] == nil, "underscore spellings of identity headers are stripped too")
        #expect(seen["headers"]?["x-tenant-id"]?.string == "default")
        #expect(seen["headers"]?["x-session-id"]?.string == "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
        #expect(seen["headers"]?["x-user-role"]?.string == "authenticated")
        #expect(seen["headers"]?["x-auth-claims"]?.string == String(token.split(separator: ".")[1]))
        #expect(seen["headers"]?["x-forwarded-for"]?.string == "127.0.0.1")
        #expect(seen["headers"]?["x-forwarded-proto"]?.string == "http")
        #expect(seen["headers"]?["x-request-id"]?.string == "req-123")
        #expect(ok.headers["x-request-id"] == "req-123")
        let invalidID = try Curl.request(gw.url + "/public/x", ["-H", "X-Request-Id: bad id with spaces"])
        #expect(invalidID.headers["x-request-id"] != nil && invalidID.headers["x-request-id"] != "bad id with spaces")

        // Public routes strip spoofed identity too, and send none.
        let pub = try Curl.request(gw.url + "/public/x", ["-H", "X-User-Id: attacker", "-H", "X-User-Role: service_role"])
        #expect(pub.json?["headers"]?["x-user-id"] == nil && pub.json?["headers"]?["x-user-role"] == nil)

        // Optional: no token passes without identity; a bad token is still refused.
        #expect(try Curl.request(gw.url + "/opt/x").status == 200)
        #expect(try Curl.request(gw.url + "/opt/x", Curl.bearer("not.a.token")).status == 401)

        // Role requirement: 403 insufficient_scope; service_role passes.
        let denied = try Curl.request(gw.url + "/admin/x", Curl.bearer(token))
        #expect(denied.status == 403)
        #expect(denied.json?["error"]?.string == "insufficient_scope")
        #expect(denied.headers["www-authenticate"]?.contains("insufficient_scope") == true)
        #expect(try Curl.request(gw.url + "/admin/x", Curl.bearer(try Self.token(role: "service_role"))).status == 200)

        // Claim equals and contains.
        let tenantToken = try Self.token([("app_metadata", .object([("tenant_id", .string("acme")), ("groups", .array([.string("dev"), .string("ops")]))]))])
        let tenantSeen = try Curl.request(gw.url + "/tenant/x", Curl.bearer(tenantToken))
        #expect(tenantSeen.status == 200)
        #expect(tenantSeen.json?["headers"]?["x-tenant-id"]?.string == "acme")
        let otherTenant = try Self.token([("app_metadata", .object([("tenant_id", .string("zeta")), ("groups", .array([.string("ops")]))]))])
        #expect(try Curl.request(gw.url + "/tenant/x", Curl.bearer(otherTenant)).status == 403)

        // Round robin over two upstreams.
        let names = try (0..<4).map { _ in try Curl.request(gw.url + "/api/rr", Curl.bearer(token)).json?["name"]?.string ?? "" }
        #expect(Set(names) == ["a", "b"], "\(names)")

        // No route.
        let none = try Curl.request(gw.url + "/nowhere")
        #expect(none.status == 404 && none.json?["error"]?.string == "no_route")

        // The access log is JSON lines and never holds a token.
        Thread.sleep(forTimeInterval: 0.2)
        let lines = gw.child.stdout.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(lines.count >= 10)
        #expect(lines.allSatisfy { (try? JSONDocument.parse(String($0))) != nil })
        #expect(!gw.child.stdout.contains(String(token.split(separator: ".")[2])), "a token reached the access log")
        // A refusal's line counts the body it sent.
        let noRouteLine = lines.last { $0.contains(#""path":"/nowhere""#) }.flatMap { try? JSONDocument.parse(String($0)).value }
        #expect(noRouteLine?["bytes_out"]?.string == String(none.body.utf8.count), "\(String(describing: noRouteLine))")
    }

    /// A refusal's challenge reflects what the token says (kid, alg); a token whose header holds
    /// CR LF cannot add a header line or a second response, from any source, on either path.
    @Test func refusalsCannotBeSplitByTheToken() throws {
        let up = try TestUpstream()
        let gw = try TestGateway.withAuth(extraAuth: "token_sources = [\"authorization\", \"cookie:sb-access-token\"]",
                                          config: "[[route]]\npath = \"/\"\nupstream = \"\(up.url)\"\n", keys: Self.keys)
        let injected = "\r\nSet-Cookie: stolen=1\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nX-Evil: 1"
        func forged(_ header: String) -> String {
            Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(#"{"sub":"x"}"#.utf8)) + ".AAAA"
        }
        let kid = forged(#"{"alg":"ES256","kid":"x"# + injected.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n") + #""}"#)
        let alg = forged(#"{"alg":"HS256"# + injected.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n") + #""}"#)
        for token in [kid, alg] {
            for (version, credential) in [("1.1", "Authorization: Bearer \(token)"), ("1.0", "Authorization: Bearer \(token)"), ("1.1", "Cookie: sb-access-token=\(token)")] {
                let answer = try DirectPathTests.exchange(gw.port, "GET /x HTTP/\(version)\r\nHost: x\r\nConnection: close\r\n\(credential)\r\n\r\n")
                #expect(answer.raw.hasPrefix("HTTP/\(version) 401"), "\(answer.raw)")
                #expect(answer.raw.components(separatedBy: "\r\n").filter { $0.hasPrefix("HTTP/1.") }.count == 1, "one response: \(answer.raw)")
                #expect(!answer.raw.lowercased().contains("\r\nset-cookie") && !answer.raw.lowercased().contains("\r\nx-evil"), "\(answer.raw)")
                #expect(answer.raw.lowercased().contains("www-authenticate: bearer realm=\"gateway\", error=\"invalid_token\""), "\(answer.raw)")
            }
        }
        #expect(gw.child.process.isRunning)
    }

    @Test func tokenSources() throws {
        let up = try TestUpstream()
        let plain = try TestGateway(config: "[[route]]\npath = \"/\"\nupstream = \"\(up.url)\"\n", keys: Self.keys)
        let token = try Self.token()
        #expect(try Curl.request(plain.url + "/x", ["-H", "apikey: \(token)"]).status == 200)
        #expect(try Curl.request(plain.url + "/x?access_token=\(token)").status == 401, "query tokens are off by default")
        #expect(try Curl.request(plain.url + "/x", ["-H", "Cookie: sb-access-token=\(token)"]).status == 401)

        // Sources in order: cookie first, then query.
        let sourced = try TestGateway.withAuth(extraAuth: "token_sources = [\"cookie:sb-access-token\", \"query:access_token\"]",
                                              config: "[[route]]\npath = \"/\"\nupstream = \"\(up.url)\"\n", keys: Self.keys)
        #expect(try Curl.request(sourced.url + "/x", ["-H", "Cookie: theme=dark; sb-access-token=\(token)"]).status == 200)
        #expect(try Curl.request(sourced.url + "/x?a=1&access_token=\(token)").status == 200)
        #expect(try Curl.request(sourced.url + "/x?a=%zz&%61ccess_token=\(token)").status == 200, "a parameter name is read percent-decoded")
        #expect(try Curl.request(sourced.url + "/x", Curl.bearer(token)).status == 401, "authorization is not a configured source")
        #expect(try Curl.request(sourced.url + "/x", ["-H", "Cookie: sb-access-token=\"\(token)\""]).status == 200, "a quoted cookie value")

        // A credential given twice: which one would the upstream read? 400 invalid_request
        // (RFC 6750 section 3.1), whichever is valid.
        let forged = String(token.dropLast(4)) + "AAAA"
        let sourcedWithHeader = try TestGateway.withAuth(extraAuth: "token_sources = [\"authorization\", \"cookie:sb-access-token\"]",
                                                         config: "[[route]]\npath = \"/\"\nupstream = \"\(up.url)\"\n", keys: Self.keys)
        let twice: [(TestGateway, String, [String])] = [
            (plain, "/x", ["-H", "Authorization: Bearer \(token)", "-H", "Authorization: Bearer \(forged)"]),
            (plain, "/x", ["-H", "apikey: \(token)", "-H", "apikey: \(forged)"]),
            (sourced, "/x", ["-H", "Cookie: sb-access-token=\(token); sb-access-token=\(forged)"]),
            (sourced, "/x", ["-H", "Cookie: sb-access-token=\(token)", "-H", "Cookie: sb-access-token=\(forged)"]),
            (sourced, "/x?access_token=\(token)&access_token=\(forged)", []),
        ]
        // Also when an earlier source holds the token: the same answer on both paths.
        for http10 in [false, true] {
            let mixed = try Curl.request(sourcedWithHeader.url + "/x", Curl.bearer(token) + ["-H", "Cookie: sb-access-token=\(token); sb-access-token=\(forged)"] + (http10 ? ["--http1.0"] : []))
            #expect(mixed.status == 400 && mixed.json?["error"]?.string == "invalid_request", "http1.0 \(http10): \(mixed.status) \(mixed.body)")
        }
        for (gateway, path, arguments) in twice {
            let answer = try Curl.request(gateway.url + path, arguments)
            #expect(answer.status == 400 && answer.json?["error"]?.string == "invalid_request"
                    && answer.headers["www-authenticate"]?.contains("error=\"invalid_request\"") == true, "\(arguments): \(answer.status) \(answer.body)")
        }

        // forward_authorization = false: no token reaches the upstream by any source.
        let hidden = try TestGateway.withAuth(extraAuth: "token_sources = [\"cookie:sb-access-token\", \"query:access_token\", \"apikey\"]",
                                              config: "[[route]]\npath = \"/\"\nupstream = \"\(up.url)\"\nforward_authorization = false\n", keys: Self.keys)
        let viaCookie = try Curl.request(hidden.url + "/echo?a=1&access_token=\(token)", ["-H", "Cookie: theme=dark; sb-access-token=\(token)", "-H", "apikey: \(token)"])
        #expect(viaCookie.status == 200)
        #expect(!viaCookie.body.contains(String(token.split(separator: ".")[2])), "the token was forwarded: \(viaCookie.body)")
        #expect(viaCookie.json?["headers"]?["cookie"]?.string == "theme=dark")
        #expect(viaCookie.json?["path"]?.string == "/echo?a=1")
        // Spelled so that the upstream's framework decodes it to the token's name: cut too.
        for spelled in ["%61ccess_token", "access%5Ftoken"] {
            let encoded = try Curl.request(hidden.url + "/echo?a=1&\(spelled)=\(token)")
            #expect(encoded.status == 200 && encoded.json?["path"]?.string == "/echo?a=1", "\(encoded.status) \(encoded.body)")
        }

        // Also when the first upstream refuses and the request goes to the next one.
        let failover = try TestGateway.withAuth(extraAuth: "token_sources = [\"query:access_token\"]",
                                                config: "[[route]]\npath = \"/\"\nupstream = [\"http://127.0.0.1:1\", \"\(up.url)\"]\nforward_authorization = false\n",
                                                keys: Self.keys)
        let second = try Curl.request(failover.url + "/echo?a=1&access_token=\(token)")
        #expect(second.status == 200 && second.json?["path"]?.string == "/echo?a=1", "\(second.status) \(second.body)")
    }
}

extension TestGateway {
    /// A gateway whose [auth] table has extra lines.
    static func withAuth(extraAuth: String, config: String, keys: String) throws -> TestGateway {
        let dir = CLI.temporaryDirectory()
        return try TestGateway(rawConfig: "[auth]\nissuer = \"\(CLITests.issuer)\"\naudience = \"authenticated\"\nkeys = \"\(keys)\"\n\(extraAuth)\n\(config)", directory: dir)
    }
}
