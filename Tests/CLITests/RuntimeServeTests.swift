import Foundation
import JOSE
import Testing

/// Login creates the runtime session; the session API; durability under SIGKILL. Against the
/// real process with its embedded SQLite runtime.
@Suite(.serialized) struct RuntimeServeTests {
    static let runtimeConfig = """
    [runtime]
    password_cost = 10
    contracts = ["default", "agent"]
    session_limit = 3
    login_limit_per_ip = 100000
    login_limit_per_email = 1000

    """

    static func signUp(_ gw: TestGateway, _ email: String = "u-\(UUID().uuidString.prefix(8).lowercased())@example.com") throws -> (token: String, session: String, user: String, refresh: String) {
        let response = try Curl.request(gw.url + "/auth/v1/signup", ["-X", "POST", "-H", "Content-Type: application/json",
                                                                       "--data", #"{"email":"\#(email)","password":"long-enough-1"}"#])
        #expect(response.status == 200, "signup: \(response.body)")
        let json = try #require(response.json)
        return (json["access_token"]?.string ?? "", json["session_id"]?.string ?? "", json["user"]?["id"]?.string ?? "", json["refresh_token"]?.string ?? "")
    }

    @Test func loginCreatesTheSessionAndLogoutEndsIt() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: Self.runtimeConfig + "[[route]]\npath = \"/api/v1/\"\nupstream = \"\(up.url)\"\nsession = \"required\"\n", keys: GatewayServeTests.keys)
        let email = "flow-\(UUID().uuidString.prefix(8).lowercased())@example.com"
        _ = try Self.signUp(gw, email)
        let login = try Curl.request(gw.url + "/auth/v1/token?grant_type=password", ["-X", "POST", "--data", #"{"email":"\#(email)","password":"long-enough-1"}"#])
        #expect(login.status == 200)
        let token = try #require(login.json?["access_token"]?.string)
        let sessionID = try #require(login.json?["session_id"]?.string)
        let claims = try JSONDocument.parse(Base64URL.decode(token.split(separator: ".")[1])!).value
        #expect(claims["session_id"]?.string == sessionID, "the token names the session login created")
        #expect(claims["iss"]?.string == CLITests.issuer && claims["aud"]?.string == "authenticated" && claims["role"]?.string == "authenticated")

        let session = try Curl.request(gw.url + "/api/session/\(sessionID)", Curl.bearer(token))
        #expect(session.status == 200 && session.json?["id"]?.string == sessionID)
        #expect(try Curl.request(gw.url + "/api/v1/echo", Curl.bearer(token)).status == 200)

        #expect(try Curl.request(gw.url + "/auth/v1/logout?scope=local", ["-X", "POST"] + Curl.bearer(token)).status == 204)
        #expect([401, 404].contains(try Curl.request(gw.url + "/api/session/\(sessionID)", Curl.bearer(token)).status), "gone (404) or the token refused (401)")
        let proxied = try Curl.request(gw.url + "/api/v1/echo", Curl.bearer(token))
        #expect(proxied.status == 403 && proxied.json?["reason"]?.string?.hasPrefix("session_revoked") == true)
        let user = try Curl.request(gw.url + "/auth/v1/user", Curl.bearer(token) + ["-H", "X-Supabase-Api-Version: 2024-01-01"])
        #expect(user.status == 403 && user.json?["code"]?.string == "session_not_found")

        // Same answer for a wrong password and an unknown email.
        let wrong = try Curl.request(gw.url + "/auth/v1/token?grant_type=password", ["-X", "POST", "--data", #"{"email":"\#(email)","password":"nope-nope-1"}"#])
        let unknown = try Curl.request(gw.url + "/auth/v1/token?grant_type=password", ["-X", "POST", "--data", #"{"email":"ghost@example.com","password":"nope-nope-1"}"#])
        #expect(wrong.status == 400 && unknown.status == 400 && wrong.body == unknown.body)
    }

    /// The store fails under the gateway (its tables dropped by another SQLite connection):
    /// logins, /user and the session API answer 503 runtime_unavailable, the store's own error
    /// goes to the access log and not to the client, and the gateway keeps serving.
    @Test func storeFailuresAre503WithTheCauseLoggedNotSent() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: Self.runtimeConfig + "[[route]]\npath = \"/s/\"\nupstream = \"\(up.url)\"\nsession = \"required\"\n",
                                 keys: GatewayServeTests.keys)
        let email = "store-\(UUID().uuidString.prefix(8).lowercased())@example.com"
        let user = try Self.signUp(gw, email)
        let database = gw.directory + "/data/gateway.db"
        let drop = try CLI.run(["python3", "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=10); c.execute('DROP TABLE refresh_tokens'); c.execute('DROP TABLE sessions'); c.execute('DROP TABLE users'); c.commit()", database],
                               executable: "/usr/bin/env")
        #expect(drop.status == 0, "\(drop.stderr)")

        let login = try Curl.request(gw.url + "/auth/v1/token?grant_type=password", ["-X", "POST", "--data", #"{"email":"\#(email)","password":"long-enough-1"}"#])
        #expect(login.status == 503 && login.json?["error_code"]?.string == "runtime_unavailable", "\(login.status) \(login.body)")
        let me = try Curl.request(gw.url + "/auth/v1/user", Curl.bearer(user.token) + ["-H", "X-Supabase-Api-Version: 2024-01-01"])
        #expect(me.status == 503 && me.json?["code"]?.string == "runtime_unavailable", "a store failure is not a missing session: \(me.status) \(me.body)")
        let session = try Curl.request(gw.url + "/api/session/\(user.session)", Curl.bearer(user.token))
        #expect(session.status == 503 && session.json?["error"]?.string == "runtime_unavailable", "\(session.status) \(session.body)")
        let refresh = try Curl.request(gw.url + "/auth/v1/token?grant_type=refresh_token", ["-X", "POST", "--data", #"{"refresh_token":"\#(user.refresh)"}"#])
        #expect(refresh.status == 503 && refresh.json?["error_code"]?.string == "runtime_unavailable", "\(refresh.status) \(refresh.body)")
        let proxied = try Curl.request(gw.url + "/s/x", Curl.bearer(user.token))
        #expect(proxied.status == 503 && proxied.json?["error"]?.string == "runtime_unavailable", "a session = \"required\" route: \(proxied.status) \(proxied.body)")
        for answer in [login, me, session, refresh, proxied] {
            #expect(!answer.body.contains("no such table") && !answer.body.lowercased().contains("sqlite"), "the store's error stays inside: \(answer.body)")
        }
        #expect(gw.child.stdout.contains("no such table"), "the store's error is in the access log")
        #expect(try Curl.request(gw.url + "/healthz").status == 200)
    }

    @Test func refreshRotatesAndReuseRevokes() throws {
        let gw = try TestGateway(config: Self.runtimeConfig, keys: GatewayServeTests.keys)
        let first = try Self.signUp(gw)
        let rotated = try Curl.request(gw.url + "/auth/v1/token?grant_type=refresh_token", ["-X", "POST", "--data", #"{"refresh_token":"\#(first.refresh)"}"#])
        #expect(rotated.status == 200)
        let next = try #require(rotated.json?["refresh_token"]?.string)
        #expect(next != first.refresh && rotated.json?["session_id"]?.string == first.session)
        let reuse = try Curl.request(gw.url + "/auth/v1/token?grant_type=refresh_token", ["-X", "POST", "-H", "X-Supabase-Api-Version: 2024-01-01",
                                                                                         "--data", #"{"refresh_token":"\#(first.refresh)"}"#])
        #expect(reuse.status == 400 && reuse.json?["code"]?.string == "refresh_token_already_used")
        #expect([401, 404].contains(try Curl.request(gw.url + "/api/session/\(first.session)", Curl.bearer(first.token)).status), "reuse revoked the session")
        let after = try Curl.request(gw.url + "/auth/v1/token?grant_type=refresh_token", ["-X", "POST", "-H", "X-Supabase-Api-Version: 2024-01-01",
                                                                                         "--data", #"{"refresh_token":"\#(next)"}"#])
        #expect(after.status == 400, "the whole family is dead: \(after.body)")
    }

    @Test func sessionAPIOwnershipAndIntentRules() throws {
        let config = Self.runtimeConfig.replacingOccurrences(of: "session_limit = 3\n", with: "session_limit = 3\nsession_limit_mode = \"refuse\"\n")
        let gw = try TestGateway(config: config, keys: GatewayServeTests.keys)
        let alice = try Self.signUp(gw), bob = try Self.signUp(gw)
        #expect(try Curl.request(gw.url + "/api/session/\(alice.session)", Curl.bearer(bob.token)).status == 404, "bob cannot see alice's session")
        #expect(try Curl.request(gw.url + "/api/session/\(alice.session)", ["-X", "DELETE"] + Curl.bearer(bob.token)).status == 404)
        #expect(try Curl.request(gw.url + "/api/session/\(alice.session)").status == 401)

        let id = UUID().uuidString.lowercased()
        let created = try Curl.request(gw.url + "/api/session/create", ["-X", "POST", "--data", #"{"session_id":"\#(id)","contract":"agent","metadata":{"k":1}}"#] + Curl.bearer(alice.token))
        #expect(created.status == 201 && created.json?["contract"]?.string == "agent" && created.json?["metadata"]?["k"]?.integer == 1)
        #expect(try Curl.request(gw.url + "/api/session/create", ["-X", "POST", "--data", #"{"session_id":"\#(id)"}"#] + Curl.bearer(alice.token)).status == 409)
        #expect(try Curl.request(gw.url + "/api/session/create", ["-X", "POST", "--data", #"{"contract":"mystery"}"#] + Curl.bearer(alice.token)).status == 400)
        #expect(try Curl.request(gw.url + "/api/session/create", ["-X", "POST", "--data", #"{"user_id":"\#(bob.user)"}"#] + Curl.bearer(alice.token)).status == 400)
        #expect(try Curl.request(gw.url + "/api/session/create", ["-X", "POST", "--data", #"{"session_id":"NOT-A-UUID"}"#] + Curl.bearer(alice.token)).status == 400)
        #expect(try Curl.request(gw.url + "/api/session/create", ["-X", "POST"] + Curl.bearer(alice.token)).status == 201)
        let limited = try Curl.request(gw.url + "/api/session/create", ["-X", "POST"] + Curl.bearer(alice.token))
        #expect(limited.status == 429 && limited.json?["error"]?.string == "session_limit", "limit is 3 live sessions")

        let mine = try Curl.request(gw.url + "/api/sessions", Curl.bearer(alice.token))
        #expect(mine.json?["sessions"]?.array?.count == 3)
        #expect(mine.json?["sessions"]?.array?.allSatisfy { $0["user_id"]?.string == alice.user } == true)
        let service = try GatewayServeTests.token(role: "service_role", sub: UUID().uuidString.lowercased())
        let all = try Curl.request(gw.url + "/api/sessions", Curl.bearer(service))
        #expect((all.json?["sessions"]?.array?.count ?? 0) >= 4, "service_role sees the tenant's sessions")
        #expect(try Curl.request(gw.url + "/api/session/\(alice.session)", Curl.bearer(service)).status == 200)
        #expect(try Curl.request(gw.url + "/api/session/\(id)", ["-X", "DELETE"] + Curl.bearer(alice.token)).status == 204)
        #expect(try Curl.request(gw.url + "/api/session/\(id)", Curl.bearer(alice.token)).status == 404)
    }

    @Test func jwksHealthSettingsAndAPIKey() throws {
        let gw = try TestGateway(config: Self.runtimeConfig.replacingOccurrences(of: "[runtime]\n", with: "[runtime]\nrequire_apikey = true\n"), keys: GatewayServeTests.keys)
        let anon = try GatewayServeTests.token(role: "anon")
        let jwks = try Curl.request(gw.url + "/auth/v1/.well-known/jwks.json", ["-H", "apikey: \(anon)"])
        #expect(jwks.status == 200 && jwks.headers["cache-control"] == "public, max-age=600")
        #expect(jwks.json?["keys"]?.array?.contains { $0["kid"]?.string == "es256" } == true)
        #expect(!jwks.body.contains("\"d\""), "no private key material")
        #expect(try Curl.request(gw.url + "/auth/v1/health", ["-H", "apikey: \(anon)"]).status == 200)
        #expect(try Curl.request(gw.url + "/auth/v1/settings", ["-H", "apikey: \(anon)"]).json?["mailer_autoconfirm"]?.bool == true)
        #expect(try Curl.request(gw.url + "/auth/v1/health").status == 401, "require_apikey")
        #expect(try Curl.request(gw.url + "/auth/v1/health", ["-H", "apikey: forged.key.value"]).status == 401)
    }

    /// `unknown_sessions = "create"`: a valid token (another project's) whose session_id the
    /// runtime does not know gets a session, through the same intent validation.
    @Test func unknownSessionsCanBeCreatedOnFirstUse() throws {
        let up = try TestUpstream()
        let config = Self.runtimeConfig.replacingOccurrences(of: "[runtime]\n", with: "[runtime]\nunknown_sessions = \"create\"\n")
            + "[[route]]\npath = \"/api/v1/\"\nupstream = \"\(up.url)\"\nsession = \"required\"\n"
        let gw = try TestGateway(config: config, keys: GatewayServeTests.keys)
        let session = UUID().uuidString.lowercased()
        let token = try GatewayServeTests.token(sub: UUID().uuidString.lowercased(), session: session)
        #expect(try Curl.request(gw.url + "/api/v1/echo", Curl.bearer(token)).status == 200)
        let created = try Curl.request(gw.url + "/api/session/\(session)", Curl.bearer(token))
        #expect(created.status == 200 && created.json?["id"]?.string == session)
        let badID = try GatewayServeTests.token(sub: UUID().uuidString.lowercased(), session: "not-a-uuid")
        #expect(try Curl.request(gw.url + "/api/v1/echo", Curl.bearer(badID)).status == 403, "intent validation still applies")

        let strict = try TestGateway(config: Self.runtimeConfig + "[[route]]\npath = \"/api/v1/\"\nupstream = \"\(up.url)\"\nsession = \"required\"\n",
                                     keys: GatewayServeTests.keys)
        let other = try GatewayServeTests.token(sub: UUID().uuidString.lowercased(), session: UUID().uuidString.lowercased())
        let refused = try Curl.request(strict.url + "/api/v1/echo", Curl.bearer(other))
        #expect(refused.status == 403 && refused.json?["reason"]?.string?.hasPrefix("session_not_found") == true, "reject is the default")
    }

    @Test func usersCommand() throws {
        let gw = try TestGateway(config: Self.runtimeConfig, keys: GatewayServeTests.keys)
        let add = try CLI.run(["users", "add", "ops@example.com", "--config", gw.configPath, "--role", "service_role"], stdin: Array("ops-password-1\n".utf8))
        #expect(add.status == 0, "\(add.stderr)")
        #expect(try CLI.run(["users", "add", "ops@example.com", "--config", gw.configPath, "--password", "ops-password-1"]).status == 1)
        let login = try Curl.request(gw.url + "/auth/v1/token?grant_type=password", ["-X", "POST", "--data", #"{"email":"ops@example.com","password":"ops-password-1"}"#])
        #expect(login.status == 200)
        let token = try #require(login.json?["access_token"]?.string)
        let claims = try JSONDocument.parse(Base64URL.decode(token.split(separator: ".")[1])!).value
        #expect(claims["role"]?.string == "service_role")
        #expect(try CLI.run(["users", "list", "--config", gw.configPath]).stdout.contains("ops@example.com"))
        #expect(try CLI.run(["users", "disable", "ops@example.com", "--config", gw.configPath]).status == 0)
        let session = login.json?["session_id"]?.string ?? ""
        #expect([401, 404].contains(try Curl.request(gw.url + "/api/session/\(session)", Curl.bearer(token)).status), "disabling revoked the session")
        let again = try Curl.request(gw.url + "/auth/v1/token?grant_type=password", ["-X", "POST", "--data", #"{"email":"ops@example.com","password":"ops-password-1"}"#])
        #expect(again.status == 400)
    }

    /// SIGKILL in the middle of 200 concurrent sign-ups: every one a client got a 200 for is
    /// still there after a restart (SQLite WAL, synchronous=FULL).
    @Test func sigkillLosesNothingAcknowledged() throws {
        let directory = CLI.temporaryDirectory()
        let config = Self.runtimeConfig
        let gw = try TestGateway(config: config, keys: GatewayServeTests.keys, directory: directory)
        let results = directory + "/acknowledged.jsonl"
        let script = CLI.packageRoot.appendingPathComponent("Tests/Integration/kill9_logins.py").path
        let load = try Child("/usr/bin/env", ["python3", script, gw.url, "200", results])
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let lines = (try? String(contentsOfFile: results, encoding: .utf8))?.split(separator: "\n").count ?? 0
            if lines >= 60 { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        gw.child.signal(SIGKILL)
        _ = gw.child.waitForExit(timeout: 5)
        _ = load.waitForExit(timeout: 120)
        let acknowledged = try String(contentsOfFile: results, encoding: .utf8).split(separator: "\n").compactMap { try? JSONDocument.parse(String($0)).value }
        #expect(acknowledged.count >= 60 && acknowledged.count < 200, "the kill landed mid-way (\(acknowledged.count) acknowledged)")

        let restarted = try TestGateway(rawConfig: try String(contentsOfFile: gw.configPath, encoding: .utf8), directory: directory)
        var lost: [String] = []
        for record in acknowledged {
            let token = record["access_token"]?.string ?? "", session = record["session_id"]?.string ?? ""
            let found = try Curl.request(restarted.url + "/api/session/\(session)", Curl.bearer(token))
            if found.status != 200 { lost.append("session \(session): \(found.status)") }
        }
        let sample = acknowledged.prefix(5)
        for record in sample {
            let login = try Curl.request(restarted.url + "/auth/v1/token?grant_type=password",
                                         ["-X", "POST", "--data", #"{"email":"\#(record["email"]?.string ?? "")","password":"kill-nine-password"}"#])
            if login.status != 200 { lost.append("user \(record["email"]?.string ?? ""): \(login.status)") }
        }
        print("sigkill: \(acknowledged.count) sign-ups acknowledged before the kill, \(lost.count) lost")
        #expect(lost.isEmpty, "\(lost)")
    }
}

/// The official Python client `supabase-auth` (PyPI, unmodified) against the running gateway:
/// sign_up, sign_in_with_password, get_user, get_claims (JWKS), refresh_session, sign_out, and
/// clean AuthApiErrors (Tests/Interop/supabase_client.py).
@Suite struct SupabaseClientTests {
    @Test func officialClientPasses() throws {
        let gw = try TestGateway(config: RuntimeServeTests.runtimeConfig, keys: GatewayServeTests.keys)
        let script = CLI.packageRoot.appendingPathComponent("Tests/Interop/supabase_client.py").path
        let result = try CLI.run(["python3", script, "--url", gw.url + "/auth/v1", "--session-api", gw.url], executable: "/usr/bin/env")
        #expect(result.status == 0, "supabase-auth: \(result.stdout) \(result.stderr)")
        let report = try JSONDocument.parse(result.stdout).value
        let steps = report["steps"]?.members ?? []
        #expect(steps.count == 13)
        for (name, verdict) in steps { #expect(verdict.string == "ok", "\(name): \(verdict.string ?? "?")") }
    }
}

/// Tokens of another project, trusted through its JWKS URL: fetched at start, refetched on an
/// unknown kid at most once a minute.
@Suite struct RemoteJWKSTests {
    @Test func remoteKeysAreFetchedAndRefetchedOnUnknownKid() throws {
        let remote = CLI.temporaryDirectory()
        #expect(try CLI.run(["keys", "generate", "--alg", "ES256", "--kid", "remote-a", "--dir", remote]).status == 0)
        let server = try Child("/usr/bin/env", ["python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", remote])
        let line = try server.waitForLine("Serving HTTP on ")
        let port = line.split(separator: " ").drop { $0 != "port" }.dropFirst().first.map(String.init) ?? "0"
        let up = try TestUpstream()
        let gw = try TestGateway(rawConfig: """
            [auth]
            issuer = "\(CLITests.issuer)"
            audience = "authenticated"
            keys = "\(GatewayServeTests.keys)"
            jwks_urls = ["http://127.0.0.1:\(port)/jwks.json"]
            [[route]]
            path = "/"
            upstream = "\(up.url)"
            """, directory: CLI.temporaryDirectory())
        func mint(_ kid: String) throws -> String {
            try CLI.run(["token", "mint", "--keys", remote, "--kid", kid, "--issuer", CLITests.issuer, "--sub", "ext-user"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try Curl.request(gw.url + "/echo", Curl.bearer(try mint("remote-a"))).status == 200, "fetched at start")

        #expect(try CLI.run(["keys", "generate", "--alg", "ES256", "--kid", "remote-b", "--dir", remote]).status == 0)
        let rotated = try mint("remote-b")
        let first = try Curl.request(gw.url + "/echo", Curl.bearer(rotated))
        #expect(first.status == 401 && first.json?["reason"]?.string?.hasPrefix("unknown_kid") == true)
        var later = 0
        for _ in 0..<40 where later != 200 {
            Thread.sleep(forTimeInterval: 0.1)
            later = try Curl.request(gw.url + "/echo", Curl.bearer(rotated)).status
        }
        #expect(later == 200, "an unknown kid triggers a refetch")

        #expect(try CLI.run(["keys", "generate", "--alg", "ES256", "--kid", "remote-c", "--dir", remote]).status == 0)
        let third = try mint("remote-c")
        _ = try Curl.request(gw.url + "/echo", Curl.bearer(third))
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try Curl.request(gw.url + "/echo", Curl.bearer(third)).status == 401, "no second refetch within a minute")
    }
}
