import Foundation
import JOSE
import Testing

/// Sign-in limits and the session limit against the running gateway: a busy honest user is
/// never locked out, guessing is, and a session past the limit ends the least recently used.
extension RuntimeServeTests {
    static func signIn(_ gw: TestGateway, _ email: String, password: String = "long-enough-1", modern: Bool = true) throws -> Curl.Response {
        try Curl.request(gw.url + "/auth/v1/token?grant_type=password",
                         ["-X", "POST", "--data", #"{"email":"\#(email)","password":"\#(password)"}"#] + (modern ? ["-H", "X-Supabase-Api-Version: 2024-01-01"] : []))
    }

    static func refresh(_ gw: TestGateway, _ token: String) throws -> Curl.Response {
        try Curl.request(gw.url + "/auth/v1/token?grant_type=refresh_token",
                         ["-X", "POST", "-H", "X-Supabase-Api-Version: 2024-01-01", "--data", #"{"refresh_token":"\#(token)"}"#])
    }

    /// The live sessions of the gateway's default tenant, as service_role sees them.
    static func liveSessions(_ gw: TestGateway) throws -> Set<String> {
        let service = try GatewayServeTests.token(role: "service_role", sub: UUID().uuidString.lowercased())
        let listed = try Curl.request(gw.url + "/api/sessions", Curl.bearer(service))
        #expect(listed.status == 200, "\(listed.body)")
        return Set(listed.json?["sessions"]?.array?.compactMap { $0["id"]?.string } ?? [])
    }

    static func email(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())@example.com" }

    /// `[runtime]` with the store of `kind` first: SQLite (the default), or a fresh database of
    /// the PostgreSQL named by GATEWAY_POSTGRES_URL (scripts/test.sh starts one).
    static func runtime(_ kind: String, _ config: String = "[runtime]\n") throws -> String {
        guard kind == "postgres" else { return config }
        guard let url = ProcessInfo.processInfo.environment["GATEWAY_POSTGRES_URL"], var components = URLComponents(string: url) else {
            Issue.record("GATEWAY_POSTGRES_URL is not set: run scripts/test.sh, which starts PostgreSQL (scripts/postgres.sh start)")
            return config
        }
        let database = "gw_limits_\(UUID().uuidString.prefix(8).lowercased())"
        let created = try CLI.run(["psql", url, "-q", "-c", "CREATE DATABASE \(database)"], executable: "/usr/bin/env")
        #expect(created.status == 0, "\(created.stderr)")
        components.path = "/" + database
        return config.replacingOccurrences(of: "[runtime]\n", with: "[runtime]\nstore = \"\(components.string ?? url)\"\n")
    }

    /// The defaults (no session limit, as Supabase Auth; 30 attempts per IP; 10 failures per
    /// email), on each store: twenty concurrent sign-ins of one user from one address all succeed, each with
    /// its own live session.
    @Test(arguments: ["sqlite", "postgres"])
    func twentyConcurrentSignInsSucceedUnderTheDefaults(store: String) throws {
        let gw = try TestGateway(config: Self.runtime(store, "[runtime]\npassword_cost = 10\n"), keys: GatewayServeTests.keys, startTimeout: 60)
        let email = Self.email("busy")
        let first = try Self.signUp(gw, email)
        let logins = Curl.concurrently(20) { _ in try Self.signIn(gw, email) }
        #expect(logins.map(\.status) == Array(repeating: 200, count: 20), "\(logins.filter { $0.status != 200 }.map(\.body))")
        let ids = Set(logins.compactMap { $0.json?["session_id"]?.string })
        #expect(ids.count == 20, "distinct sessions")
        #expect(try Self.liveSessions(gw) == ids.union([first.session]), "every one is live")
    }

    /// `session_limit = 3` (mode evict, the default): a sign-in past it succeeds and ends the
    /// least recently used session (oldest sign-in or refresh): its refresh token dies, the
    /// session API no longer finds it, and a `session = "required"` route refuses its token
    /// at once (the revocation event clears the session cache). Twenty concurrent sign-ins
    /// then all succeed, and only three sessions live afterwards, all from that burst. On
    /// each store.
    @Test(arguments: ["sqlite", "postgres"])
    func pastTheSessionLimitTheLeastRecentlyUsedSessionEnds(store: String) throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: Self.runtime(store, Self.runtimeConfig) + "[[route]]\npath = \"/s/\"\nupstream = \"\(up.url)\"\nsession = \"required\"\n",
                                 keys: GatewayServeTests.keys, startTimeout: 60)
        let email = Self.email("lru")
        let zero = try Self.signUp(gw, email)
        let one = try #require(Self.signIn(gw, email).json), two = try #require(Self.signIn(gw, email).json)
        let oneToken = one["access_token"]?.string ?? "", oneSession = one["session_id"]?.string ?? ""
        // The first session refreshes: the second is now the least recently used.
        let refreshed = try Self.refresh(gw, zero.refresh)
        #expect(refreshed.status == 200)
        #expect(try Curl.request(gw.url + "/s/x", Curl.bearer(oneToken)).status == 200, "live, and now in the session cache")

        let three = try Self.signIn(gw, email)
        #expect(three.status == 200, "the fourth sign-in is not refused: \(three.body)")
        let threeToken = three.json?["access_token"]?.string ?? ""
        let proxied = try Curl.request(gw.url + "/s/x", Curl.bearer(oneToken))
        #expect(proxied.status == 403 && proxied.json?["reason"]?.string?.hasPrefix("session_revoked") == true, "\(proxied.status) \(proxied.body)")
        let dead = try Self.refresh(gw, one["refresh_token"]?.string ?? "")
        #expect(dead.status == 400 && dead.json?["code"]?.string == "refresh_token_not_found", "\(dead.body)")
        #expect(try Curl.request(gw.url + "/api/session/\(oneSession)", Curl.bearer(threeToken)).status == 404)
        let kept: Set<String> = [zero.session, two["session_id"]?.string ?? "", three.json?["session_id"]?.string ?? ""]
        #expect(try Self.liveSessions(gw) == kept)

        let burst = Curl.concurrently(20) { _ in try Self.signIn(gw, email) }
        #expect(burst.map(\.status) == Array(repeating: 200, count: 20), "\(burst.filter { $0.status != 200 }.map(\.body))")
        let live = try Self.liveSessions(gw)
        let burstIDs = Set(burst.compactMap { $0.json?["session_id"]?.string })
        #expect(live.count == 3 && live.isSubset(of: burstIDs), "the newest three live, none from before the burst")
        var refreshable: Set<String> = []
        for answer in burst {
            let rotated = try Self.refresh(gw, answer.json?["refresh_token"]?.string ?? "")
            if rotated.status == 200 { refreshable.insert(answer.json?["session_id"]?.string ?? "") }
        }
        #expect(refreshable == live, "the seventeen others' refresh tokens are dead")
    }

    /// `session_limit_mode = "refuse"` keeps the old answer: 429 over_session_limit.
    @Test func refuseModeRefusesTheSignInPastTheLimit() throws {
        let config = Self.runtimeConfig.replacingOccurrences(of: "session_limit = 3\n", with: "session_limit = 3\nsession_limit_mode = \"refuse\"\n")
        let gw = try TestGateway(config: config, keys: GatewayServeTests.keys)
        let email = Self.email("refuse")
        _ = try Self.signUp(gw, email)
        #expect(try Self.signIn(gw, email).status == 200)
        #expect(try Self.signIn(gw, email).status == 200)
        let refused = try Self.signIn(gw, email)
        #expect(refused.status == 429 && refused.json?["code"]?.string == "over_session_limit", "\(refused.status) \(refused.body)")
        #expect(try Self.liveSessions(gw).count == 3)
    }

    /// Per email only failures count: twenty right passwords in the window all pass a limit of
    /// 3, then wrong passwords (and unknown emails alike) get 400 three times and 429 with
    /// GoTrue's code and a Retry-After in whole seconds. Once spent, the account's bucket
    /// refuses the right password too (else the limit would not stop guessing); another
    /// account is untouched.
    @Test func perEmailLimitCountsFailuresOnly() throws {
        let gw = try TestGateway(config: Self.runtimeConfig.replacingOccurrences(of: "login_limit_per_email = 1000", with: "login_limit_per_email = 3"),
                                 keys: GatewayServeTests.keys)
        let email = Self.email("many-places")
        _ = try Self.signUp(gw, email)
        let right = try (0..<20).map { _ in try Self.signIn(gw, email).status }
        #expect(right == Array(repeating: 200, count: 20), "\(right)")
        for target in [email, Self.email("ghost")] {
            let wrong = try (0..<4).map { _ in try Self.signIn(gw, target, password: "wrong-password-1") }
            #expect(wrong.map(\.status) == [400, 400, 400, 429], "\(target): \(wrong.map(\.status))")
            let limited = try #require(wrong.last)
            #expect(limited.json?["code"]?.string == "over_request_rate_limit" && limited.json?["message"]?.string == "Request rate limit reached")
            let seconds = Int(limited.headers["retry-after"] ?? "") ?? 0
            #expect(seconds >= 1 && seconds <= 100, "a token every 100 s: Retry-After \(limited.headers["retry-after"] ?? "none")")
        }
        let legacy = try Self.signIn(gw, email, modern: false)
        #expect(legacy.status == 429 && legacy.json?["error_code"]?.string == "over_request_rate_limit" && legacy.json?["code"]?.integer == 429)
        #expect(Int(legacy.headers["retry-after"] ?? "") ?? 0 >= 1)
        let other = Self.email("other")
        _ = try Self.signUp(gw, other)
        #expect(try Self.signIn(gw, other).status == 200)
    }

    /// Per IP every attempt counts (sign-ups, right and wrong passwords): a burst of 5, then
    /// 429 with Retry-After (a token every 60 s).
    @Test func perIPLimitCountsEveryAttempt() throws {
        let gw = try TestGateway(config: Self.runtimeConfig.replacingOccurrences(of: "login_limit_per_ip = 100000", with: "login_limit_per_ip = 5"),
                                 keys: GatewayServeTests.keys)
        let email = Self.email("one-address")
        _ = try Self.signUp(gw, email)
        #expect(try Self.signIn(gw, email, password: "wrong-password-1").status == 400)
        #expect(try (0..<3).map { _ in try Self.signIn(gw, email).status } == [200, 200, 200])
        let limited = try Self.signIn(gw, email)
        #expect(limited.status == 429 && limited.json?["code"]?.string == "over_request_rate_limit", "\(limited.status) \(limited.body)")
        let seconds = Int(limited.headers["retry-after"] ?? "") ?? 0
        #expect(seconds >= 1 && seconds <= 60, "Retry-After \(limited.headers["retry-after"] ?? "none")")
        let signup = try Curl.request(gw.url + "/auth/v1/signup", ["-X", "POST", "--data", #"{"email":"\#(Self.email("late"))","password":"long-enough-1"}"#])
        #expect(signup.status == 429 && signup.headers["retry-after"] != nil, "sign-ups spend the address's tokens too")
    }
}
