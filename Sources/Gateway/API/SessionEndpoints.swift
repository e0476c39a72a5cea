import Foundation
import JOSE
import NIOHTTP1
import Runtime

/// The runtime session API: create, read, end and list sessions. Every call needs a valid
/// token; a user only ever sees or ends their own sessions, `service_role` those of its tenant.
struct SessionEndpoints {
    let api: LocalAPI
    let state: GatewayState
    let request: LocalRequest

    /// The gateway's error body, `{error, reason, request_id}`, as every answer of its own.
    func error(_ status: HTTPResponseStatus, _ code: String, _ message: String) -> LocalResponse {
        Self.error(status, code, message, requestID: request.requestID)
    }

    static func error(_ status: HTTPResponseStatus, _ code: String, _ message: String, requestID: String) -> LocalResponse {
        .json(status, .object([("error", .string(code)), ("reason", .string(message)), ("request_id", .string(requestID))]))
    }

    func answer() async -> LocalResponse {
        let identity: Identity
        switch LocalAPI.bearer(request, state: state) {
        case nil:
            return withChallenge(error(.unauthorized, "invalid_token", "missing_token: send Authorization: Bearer <token>"), nil)
        case .failure(let failure)?:
            return withChallenge(error(.unauthorized, "invalid_token", "\(failure.reason.rawValue): \(failure.message)"), failure)
        case .success(let who)?:
            identity = who
        }
        guard let userID = identity.userID else { return error(.unauthorized, "invalid_token", "missing_claim: token has no sub") }
        // A token whose own session ended (logout, reuse, admin) may not manage sessions.
        if let own = identity.sessionID {
            let found: Session?
            do { found = try await api.store.session(id: own) } catch { return unavailable(error) }
            if let session = found, !session.isLive(at: Timestamp.now()) {
                return withChallenge(error(.unauthorized, "invalid_token", "session_revoked: the token's session \(own) has ended"),
                                     AuthFailure(.sessionRevoked, "the token's session has ended"))
            }
        }
        let isService = identity.role == "service_role"
        let now = Timestamp.now()
        do {
            switch (request.method, request.path) {
            case (.POST, "/api/session/create"):
                let body = request.json
                if request.body.count > 0, body == nil { return error(.badRequest, "invalid_intent", "body is not JSON") }
                let intent = SessionIntent(
                    id: body?["session_id"]?.string ?? UUID().uuidString.lowercased(),
                    tenantID: body?["tenant_id"]?.string ?? identity.tenantID,
                    userID: body?["user_id"]?.string ?? userID,
                    contract: body?["contract"]?.string ?? api.auth.settings.defaultContract,
                    metadata: body?["metadata"].map { $0.kind == .object ? $0.serialized() : "!" } ?? "{}",
                    ttl: body?["ttl"]?.number ?? api.auth.settings.sessionTTL)
                if intent.metadata == "!" { return error(.badRequest, "invalid_intent", "metadata must be an object") }
                try api.validator.validate(intent, userID: userID, tenantID: identity.tenantID)
                let session = Session(id: intent.id, tenantID: intent.tenantID, userID: intent.userID, contract: intent.contract,
                                      createdAt: now, lastSeenAt: now, expiresAt: now + intent.ttl, metadata: intent.metadata)
                for id in try await api.store.createSession(session, refreshHash: nil, limit: api.validator.sessionLimit, at: now) {
                    api.auth.events.publish(.revoked(sessionID: id, reason: SessionLimit.revocationReason))
                }
                return .json(.created, LocalAPI.sessionJSON(session))
            case (.GET, "/api/sessions"):
                let sessions = try await api.store.sessions(tenantID: identity.tenantID, userID: isService ? nil : userID)
                return .json(.ok, .object([("sessions", .array(sessions.filter { $0.isLive(at: now) }.map(LocalAPI.sessionJSON)))]))
            case (.GET, let path) where path.hasPrefix("/api/session/"):
                guard let session = try await visible(Self.sessionID(in: path), userID: userID, tenantID: identity.tenantID, isService: isService, now: now) else {
                    return error(.notFound, "session_not_found", "no such session")
                }
                return .json(.ok, LocalAPI.sessionJSON(session))
            case (.DELETE, let path) where path.hasPrefix("/api/session/"):
                guard let session = try await visible(Self.sessionID(in: path), userID: userID, tenantID: identity.tenantID, isService: isService, now: now) else {
                    return error(.notFound, "session_not_found", "no such session")
                }
                for id in try await api.store.revoke(sessionIDs: [session.id], reason: "deleted", at: now) {
                    api.auth.events.publish(.revoked(sessionID: id, reason: "deleted"))
                }
                return .empty(.noContent)
            default:
                return error(.notFound, "not_found", "no such endpoint: \(request.method.rawValue) \(request.path)")
            }
        } catch let failure as RuntimeError {
            switch failure.code {
            case .storage, .runtimeUnavailable: return unavailable(failure)
            default: return error(failure.httpStatus, failure.code.rawValue, failure.message)
            }
        } catch {
            return unavailable(error)
        }
    }

    /// The store failed: 503, its own error in the access log, not in the answer.
    private func unavailable(_ error: any Error) -> LocalResponse {
        var response = self.error(.serviceUnavailable, "runtime_unavailable", "the session store failed; try again later")
        response.note = "storage: \(String(reflecting: error))"
        return response
    }

    /// The id named by `/api/session/{ID}`, lower-cased: ids are stored as lower-case UUIDs
    /// (intent validation), and a UUID names the same session in either case.
    static func sessionID(in path: String) -> String {
        String(path.dropFirst("/api/session/".count)).lowercased()
    }

    /// A live session the caller may see: their own, or any in their tenant for service_role.
    private func visible(_ id: String, userID: String, tenantID: String, isService: Bool, now: Double) async throws -> Session? {
        guard let session = try await api.store.session(id: id), session.isLive(at: now), session.tenantID == tenantID else { return nil }
        return isService || session.userID == userID ? session : nil
    }

    private func withChallenge(_ response: LocalResponse, _ failure: AuthFailure?) -> LocalResponse {
        var response = response
        response.headers.add(name: "www-authenticate", value: failure?.challenge ?? "Bearer realm=\"gateway\"")
        return response
    }
}
