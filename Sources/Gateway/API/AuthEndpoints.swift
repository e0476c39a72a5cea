import Foundation
import JOSE
import NIOHTTP1
import Runtime

/// `/auth/v1`: the Supabase Auth endpoints the official clients call, answered in GoTrue's
/// shapes and error vocabulary (`../shared/reference/supabase-auth-contract.md`).
struct AuthEndpoints {
    let api: LocalAPI
    let state: GatewayState
    let request: LocalRequest

    private var modern: Bool { (request.headers.first(name: "x-supabase-api-version") ?? "") >= "2024-01-01" }

    /// GoTrue's error body: `{code, message}` with the API version header for 2024-01-01+
    /// clients, the legacy `{code, error_code, msg}` otherwise.
    /// `extra` members follow (a weak password's `weak_password: {reasons}`).
    func error(_ status: Int, _ code: String, _ message: String, extra: [(String, JSONValue)] = []) -> LocalResponse {
        if modern {
            return .json(HTTPResponseStatus(statusCode: status), .object([("code", .string(code)), ("message", .string(message))] + extra),
                         headers: [("x-supabase-api-version", "2024-01-01")])
        }
        return .json(HTTPResponseStatus(statusCode: status),
                     .object([("code", .int(Int64(status))), ("error_code", .string(code)), ("msg", .string(message))] + extra))
    }

    /// A refusal of the identity service; a rate limit's says when to come back (`Retry-After`).
    func error(_ failure: RuntimeError) -> LocalResponse {
        let reasons = failure.weakPasswordReasons.map { [("weak_password", JSONValue.object([("reasons", .array($0.map(JSONValue.string)))]))] } ?? []
        var response = error(Int(failure.httpStatus.code), failure.code.rawValue, failure.message, extra: reasons)
        if let seconds = failure.retryAfter { response.headers.add(name: "retry-after", value: String(seconds)) }
        response.note = failure.detail
        return response
    }

    func answer() async -> LocalResponse {
        let sub = String(request.path.dropFirst(api.runtime.authPath.count))
        if let refusal = checkAPIKey() { return refusal }
        switch (request.method, sub) {
        case (.GET, "/health"):
            return .json(.ok, .object([("version", .string("gateway")), ("name", .string("GoTrue-compatible gateway")), ("description", .string("JWT edge gateway identity endpoints"))]))
        case (.GET, "/settings"):
            return .json(.ok, .object([
                ("external", .object([("email", .bool(true)), ("phone", .bool(false)), ("anonymous_users", .bool(false))])),
                ("disable_signup", .bool(false)), ("mailer_autoconfirm", .bool(true)), ("phone_autoconfirm", .bool(false)),
                ("sms_provider", .string("")), ("saml_enabled", .bool(false)),
            ]))
        case (.GET, "/.well-known/jwks.json"):
            // Supabase clients parse this JWKS strictly: supabase-auth 2.34.1 refuses the whole set
            // if one key is not RSA or EC (an Ed25519 "OKP" key breaks get_claims). Publish those.
            let keys: [JSONValue] = state.verifier.keys.ring.keys.filter(\.canVerify).compactMap(\.publicJWK).filter { jwk in
                if case .string(let kty)? = jwk["kty"] { return kty == "RSA" || kty == "EC" }
                return false
            }
            return .json(.ok, .object([("keys", .array(keys))]), headers: [("cache-control", "public, max-age=600")])
        case (.POST, "/signup"):
            guard let body = request.json, let email = body["email"]?.string, let password = body["password"]?.string else {
                return error(400, "validation_failed", "Signup requires a valid email and password")
            }
            let data = body["data"].map { $0.kind == .object ? $0.serialized() : "{}" } ?? "{}"
            do { return .json(.ok, LocalAPI.grantJSON(try await api.auth.signUp(email: email, password: password, userMetadata: data, ip: request.remoteIP))) } catch {
                return self.error(error)
            }
        case (.POST, "/token"):
            switch request.query["grant_type"] {
            case "password":
                guard let body = request.json, let email = body["email"]?.string, let password = body["password"]?.string else {
                    return error(400, "validation_failed", "email and password are required")
                }
                do { return .json(.ok, LocalAPI.grantJSON(try await api.auth.signIn(email: email, password: password, ip: request.remoteIP))) } catch {
                    return self.error(error)
                }
            case "refresh_token":
                guard let token = request.json?["refresh_token"]?.string else { return error(400, "validation_failed", "refresh_token is required") }
                do { return .json(.ok, LocalAPI.grantJSON(try await api.auth.refresh(token))) } catch { return self.error(error) }
            default:
                return error(400, "validation_failed", "unsupported grant_type; use password or refresh_token")
            }
        case (.GET, "/user"):
            switch await authenticated(requireSession: true) {
            case .failure(let response): return response
            case .success(let identity):
                guard let userID = identity.userID else { return error(403, "user_not_found", "User from sub claim in JWT does not exist") }
                let found: User?
                do { found = try await api.store.user(id: userID) } catch { return self.error(.storeFailed(error)) }
                guard let user = found, !user.disabled else {
                    return error(403, "user_not_found", "User from sub claim in JWT does not exist")
                }
                return .json(.ok, LocalAPI.userJSON(user))
            }
        case (.POST, "/logout"):
            switch await authenticated(requireSession: false) {
            case .failure(let response): return response
            case .success(let identity):
                guard let userID = identity.userID else { return error(403, "bad_jwt", "token has no sub") }
                do {
                    try await api.auth.logout(userID: userID, sessionID: identity.sessionID, scope: request.query["scope"] ?? "global")
                    return .empty(.noContent)
                } catch {
                    return self.error(error)
                }
            }
        default:
            return error(404, "not_found", "no such endpoint: \(request.method.rawValue) \(request.path)")
        }
    }

    /// A verified user token, and (for /user) a live runtime session behind it.
    private func authenticated(requireSession: Bool) async -> Result<Identity, LocalResponse> {
        switch LocalAPI.bearer(request, state: state) {
        case nil:
            return .failure(error(401, "no_authorization", "This endpoint requires a Bearer token"))
        case .failure(let failure)?:
            return .failure(error(403, "bad_jwt", "invalid JWT: \(failure.reason.rawValue): \(failure.message)"))
        case .success(let identity)?:
            if requireSession {
                guard let sessionID = identity.sessionID else {
                    return .failure(error(403, "session_not_found", "Session from session_id claim in JWT does not exist"))
                }
                let found: Session?
                do { found = try await api.store.session(id: sessionID) } catch { return .failure(self.error(.storeFailed(error))) }
                guard let session = found, session.isLive(at: Timestamp.now()), session.userID == identity.userID
                else { return .failure(error(403, "session_not_found", "Session from session_id claim in JWT does not exist")) }
            }
            return .success(identity)
        }
    }

    /// `apikey` is verified when present (an anon or service_role JWT) and required when
    /// `[runtime] require_apikey` is on.
    private func checkAPIKey() -> LocalResponse? {
        guard let key = request.headers.first(name: "apikey") else {
            return api.runtime.requireAPIKey ? error(401, "no_api_key", "No API key found in request") : nil
        }
        do {
            let verified = try state.verifier.verify(key)
            let role = verified.claims.json["role"]?.string ?? ""
            guard role == "anon" || role == "service_role" || role == "authenticated" else {
                return error(401, "bad_api_key", "API key role \"\(role)\" is not anon or service_role")
            }
            return nil
        } catch {
            return self.error(401, "bad_api_key", "Invalid API key: \(error.reason.rawValue): \(error.message)")
        }
    }
}
