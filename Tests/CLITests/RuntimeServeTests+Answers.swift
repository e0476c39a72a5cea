import Foundation
import JOSE
import Testing

/// Small answers of `/auth/v1` and `/api/session` against the running gateway: the password
/// bound, `request_id` in every session API error, session ids in either case.
extension RuntimeServeTests {
    static func signUp(_ gw: TestGateway, password: String, modern: Bool) throws -> Curl.Response {
        let body = Array(#"{"email":"\#(Self.email("pw"))","password":"\#(password)"}"#.utf8)
        return try Curl.request(gw.url + "/auth/v1/signup", ["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@-"]
                                + (modern ? ["-H", "X-Supabase-Api-Version: 2024-01-01"] : []), stdin: body)
    }

    /// Longer than 72 bytes (bcrypt's bound, which GoTrue keeps) is 422 weak_password with
    /// GoTrue's `weak_password.reasons`, counted in UTF-8 bytes; 72 is accepted; a megabyte
    /// is refused the same way. `gateway users add` refuses it too.
    @Test func passwordsLongerThan72BytesAreRefused() throws {
        let gw = try TestGateway(config: Self.runtimeConfig, keys: GatewayServeTests.keys)
        #expect(try Self.signUp(gw, password: String(repeating: "a", count: 72), modern: true).status == 200)
        for password in [String(repeating: "a", count: 73), String(repeating: "é", count: 37), String(repeating: "a", count: 1_000_000)] {
            let refused = try Self.signUp(gw, password: password, modern: true)
            #expect(refused.status == 422 && refused.json?["code"]?.string == "weak_password", "\(password.utf8.count) bytes: \(refused.status) \(refused.body.prefix(200))")
            #expect(refused.json?["weak_password"]?["reasons"]?.array?.compactMap(\.string) == ["length"])
            #expect(refused.json?["message"]?.string?.contains("72") == true)
        }
        let legacy = try Self.signUp(gw, password: String(repeating: "a", count: 73), modern: false)
        #expect(legacy.status == 422 && legacy.json?["error_code"]?.string == "weak_password" && legacy.json?["weak_password"] != nil, "\(legacy.body)")
        let short = try Self.signUp(gw, password: "short", modern: true)
        #expect(short.status == 422 && short.json?["weak_password"]?["reasons"]?.array?.compactMap(\.string) == ["length"], "\(short.body)")
        let add = try CLI.run(["users", "add", Self.email("cli"), "--config", gw.configPath], stdin: Array((String(repeating: "a", count: 73) + "\n").utf8))
        #expect(add.status == 2 && add.stderr.contains("72"), "\(add.status) \(add.stderr)")
    }

    /// Every error body of the session API names its request, as the gateway's other answers do.
    @Test func sessionAPIErrorsCarryTheRequestID() throws {
        let gw = try TestGateway(config: Self.runtimeConfig, keys: GatewayServeTests.keys)
        let user = try Self.signUp(gw)
        var answers = [
            ("not found", try Curl.request(gw.url + "/api/session/\(UUID().uuidString.lowercased())", Curl.bearer(user.token)), 404, "session_not_found"),
            ("no token", try Curl.request(gw.url + "/api/session/\(user.session)"), 401, "invalid_token"),
            ("no endpoint", try Curl.request(gw.url + "/api/sessions", ["-X", "PATCH"] + Curl.bearer(user.token)), 404, "not_found"),
            ("bad intent", try Curl.request(gw.url + "/api/session/create", ["-X", "POST", "--data", #"{"contract":"mystery"}"#] + Curl.bearer(user.token)), 400, "invalid_intent"),
        ]
        #expect(try Curl.request(gw.url + "/auth/v1/logout?scope=local", ["-X", "POST"] + Curl.bearer(user.token)).status == 204)
        answers.append(("revoked", try Curl.request(gw.url + "/api/session/\(user.session)", Curl.bearer(user.token)), 401, "invalid_token"))
        for (name, answer, status, code) in answers {
            #expect(answer.status == status && answer.json?["error"]?.string == code, "\(name): \(answer.status) \(answer.body)")
            let id = answer.headers["x-request-id"] ?? ""
            #expect(!id.isEmpty && answer.json?["request_id"]?.string == id, "\(name): \(answer.body)")
        }
        #expect(answers.last?.1.json?["reason"]?.string?.hasPrefix("session_revoked") == true)
    }

    /// `/api/session/{ID}` reads the UUID in either case, for GET and DELETE.
    @Test func sessionIDsAreReadInEitherCase() throws {
        let gw = try TestGateway(config: Self.runtimeConfig, keys: GatewayServeTests.keys)
        let user = try Self.signUp(gw)
        let found = try Curl.request(gw.url + "/api/session/\(user.session.uppercased())", Curl.bearer(user.token))
        #expect(found.status == 200 && found.json?["id"]?.string == user.session, "\(found.status) \(found.body)")
        let created = try Curl.request(gw.url + "/api/session/create", ["-X", "POST"] + Curl.bearer(user.token))
        let other = try #require(created.json?["id"]?.string)
        #expect(try Curl.request(gw.url + "/api/session/\(other.uppercased())", ["-X", "DELETE"] + Curl.bearer(user.token)).status == 204)
        #expect(try Curl.request(gw.url + "/api/session/\(other)", Curl.bearer(user.token)).status == 404)
    }
}
