import Foundation
import JOSE
import NIOHTTP1
import Runtime

/// A request the gateway answers itself (identity endpoints, runtime session API), with its
/// body read in full (bounded).
struct LocalRequest: Sendable {
    let method: HTTPMethod
    let path: String
    let query: [String: String]
    let headers: HTTPHeaders
    let body: [UInt8]
    let remoteIP: String
    /// The `x-request-id` of the answer, which the gateway's error bodies carry too (the
    /// server passes the one it answers with; a request made elsewhere gets a fresh one).
    var requestID = RequestIDs.next()

    var json: JSONNode? { body.isEmpty ? nil : try? JSONDocument.parse(body).value }

    static func parseQuery(_ query: Substring?) -> [String: String] {
        var out: [String: String] = [:]
        for pair in (query ?? "").split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            let key = String(kv[0]).removingPercentEncoding ?? String(kv[0])
            out[key] = kv.count > 1 ? (String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(kv[1])) : ""
        }
        return out
    }
}

struct LocalResponse: Error, Sendable {  // an Error so refusals can travel in a Result
    var status: HTTPResponseStatus
    var headers = HTTPHeaders()
    var body: [UInt8] = []
    /// Why, for the access log only (a store's own error, say): never sent.
    var note: String? = nil

    static func json(_ status: HTTPResponseStatus, _ value: JSONValue, headers: [(String, String)] = []) -> LocalResponse {
        var response = LocalResponse(status: status, body: Array((value.serialized() + "\n").utf8))
        response.headers.add(name: "content-type", value: "application/json")
        for (name, value) in headers { response.headers.add(name: name, value: value) }
        return response
    }

    static func empty(_ status: HTTPResponseStatus) -> LocalResponse { LocalResponse(status: status) }
}

/// The endpoints the gateway serves itself: Supabase-compatible `/auth/v1` and the runtime
/// session API. Routes in gateway.conf never see these paths.
final class LocalAPI: Sendable {
    let auth: AuthService
    let store: any StateStore
    let runtime: RuntimeConfig
    let validator: IntentValidator

    init(auth: AuthService, store: any StateStore, runtime: RuntimeConfig) {
        self.auth = auth
        self.store = store
        self.runtime = runtime
        self.validator = auth.settings.validator
        self.authPathBytes = Array(runtime.authPath.utf8)
    }

    private let authPathBytes: [UInt8]

    /// Whether this path is answered here.
    func owns(_ path: String) -> Bool {
        if !runtime.authPath.isEmpty, path == runtime.authPath || path.hasPrefix(runtime.authPath + "/") { return true }
        if runtime.sessionAPI, path == "/api/sessions" || path == "/api/session/create" || path.hasPrefix("/api/session/") { return true }
        return false
    }

    /// `owns` for a path given as ASCII bytes.
    func owns(_ path: UnsafeRawBufferPointer) -> Bool {
        func starts(_ prefix: [UInt8], segment: Bool) -> Bool {
            guard path.count >= prefix.count, prefix.withUnsafeBytes({ memcmp(path.baseAddress!, $0.baseAddress!, prefix.count) == 0 }) else { return false }
            return !segment || path.count == prefix.count || path[prefix.count] == UInt8(ascii: "/")
        }
        if !authPathBytes.isEmpty, starts(authPathBytes, segment: true) { return true }
        if runtime.sessionAPI, HTTPScan.equals(path, 0..<path.count, "/api/sessions") || starts(Self.sessionPrefix, segment: false) {
            return true  // "/api/session/create" is under the prefix too
        }
        return false
    }

    private static let sessionPrefix = Array("/api/session/".utf8)

    func handle(_ request: LocalRequest, state: GatewayState) async -> LocalResponse {
        if !runtime.authPath.isEmpty, request.path.hasPrefix(runtime.authPath) {
            return await AuthEndpoints(api: self, state: state, request: request).answer()
        }
        return await SessionEndpoints(api: self, state: state, request: request).answer()
    }

    /// 503 `runtime_unavailable` for a request the runtime did not answer in time, in the
    /// error shape of the endpoint asked: GoTrue's under the auth path, the gateway's (with
    /// `request_id`) for the session API.
    func unavailable(_ request: LocalRequest, _ message: String) -> LocalResponse {
        if !runtime.authPath.isEmpty, request.path.hasPrefix(runtime.authPath) {
            return .json(.serviceUnavailable, .object([("code", .int(503)), ("error_code", .string("runtime_unavailable")), ("msg", .string(message))]))
        }
        return SessionEndpoints.error(.serviceUnavailable, "runtime_unavailable", message, requestID: request.requestID)
    }

    /// Verifies a bearer token with the running verifier.
    static func bearer(_ request: LocalRequest, state: GatewayState) -> Result<Identity, AuthFailure>? {
        guard let token = Authenticator.bearer(in: request.headers["authorization"]) else { return nil }
        do {
            let verified = try state.verifier.verify(String(token))
            return .success(Identity(token: verified, tenantClaim: state.config.identity.tenantClaim))
        } catch {
            return .failure(error)
        }
    }

    // MARK: JSON shapes

    /// `2026-11-25T14:38:16.250Z`, total over whatever a stored row holds (no formatter is made).
    static func iso(_ seconds: Double) -> String { Timestamp.utc(seconds, milliseconds: true) }

    /// A user as GoTrue shows it (see the contract's section 2).
    static func userJSON(_ user: User) -> JSONValue {
        let created = iso(user.createdAt), updated = iso(user.updatedAt)
        let identity: JSONValue = .object([
            ("identity_id", .string(user.id)), ("id", .string(user.id)), ("user_id", .string(user.id)),
            ("identity_data", .object([("sub", .string(user.id)), ("email", .string(user.email)), ("email_verified", .bool(true))])),
            ("provider", .string("email")), ("created_at", .string(created)), ("updated_at", .string(updated)),
            ("last_sign_in_at", user.lastSignInAt.map { .string(iso($0)) } ?? .string(created)),
        ])
        return .object([
            ("id", .string(user.id)), ("aud", .string("authenticated")), ("role", .string(user.role)), ("email", .string(user.email)),
            ("phone", .string("")), ("email_confirmed_at", .string(created)), ("confirmed_at", .string(created)),
            ("last_sign_in_at", user.lastSignInAt.map { .string(iso($0)) } ?? .null),
            ("app_metadata", (try? JSONValue.parse(user.appMetadata)) ?? .object([])),
            ("user_metadata", (try? JSONValue.parse(user.userMetadata)) ?? .object([])),
            ("identities", .array([identity])), ("created_at", .string(created)), ("updated_at", .string(updated)),
            ("is_anonymous", .bool(false)),
        ])
    }

    static func sessionJSON(_ session: Session) -> JSONValue {
        .object([
            ("id", .string(session.id)), ("tenant_id", .string(session.tenantID)), ("user_id", .string(session.userID)),
            ("contract", .string(session.contract)), ("created_at", .string(iso(session.createdAt))),
            ("last_seen_at", .string(iso(session.lastSeenAt))), ("expires_at", .string(iso(session.expiresAt))),
            ("metadata", (try? JSONValue.parse(session.metadata)) ?? .object([])),
            ("revoked", .bool(session.revokedAt != nil)),
        ])
    }

    static func grantJSON(_ grant: AuthService.Grant) -> JSONValue {
        .object([
            ("access_token", .string(grant.accessToken)), ("token_type", .string("bearer")), ("expires_in", .int(Int64(grant.expiresIn))),
            ("expires_at", .int(Int64(grant.expiresAt))), ("refresh_token", .string(grant.refreshToken)),
            ("user", userJSON(grant.user)), ("session_id", .string(grant.session.id)),
        ])
    }
}
