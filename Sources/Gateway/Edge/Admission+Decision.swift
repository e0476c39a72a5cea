import Foundation
import JOSE
import NIOCore

/// What the admission decides, and what each answer made at admission carries.
extension Admission {
    enum Decision {
        /// The head has not all arrived.
        case incomplete
        /// Routed and authenticated: the request for the upstream is ready.
        case forward(Admitted)
        /// Routed and authenticated on a route that needs the token's runtime session: look it
        /// up, then forward.
        case awaitSession(Admitted, sessionID: String)
        /// A built-in endpoint (`/healthz`, `/readyz`, `/metrics`) asked with GET or HEAD.
        case builtIn(BuiltInCall)
        /// A request for the local API (`/auth/v1`, the session API): its body is read, then the
        /// gateway answers it.
        case local(LocalCall)
        /// A CORS preflight the `[cors]` policy allows: 204 with these headers.
        case preflight(Preflight)
        /// Answered here: refused, no route, CONNECT. A body is never read (the connection
        /// closes after the answer when one was announced).
        case answer(Refusal)
        /// Read by the full reader (NIOHTTP1): a head the byte scanner does not take, or an
        /// answer made there (built-in endpoints, the local API, CORS). The reason is for tests
        /// and the debug log.
        case fullReader(StaticString)
        /// Only inside `decide`: the head written again in canonical form, to be decided as it
        /// stands; `consumed` is the client's head.
        case rewritten(ByteBuffer, consumed: Int)

        /// The answer in HTTP/1.0.
        func inHTTP10() -> Decision {
            switch self {
            case .builtIn(var call): call.http10 = true; return .builtIn(call)
            case .local(var call): call.http10 = true; return .local(call)
            case .preflight(var preflight): preflight.http10 = true; return .preflight(preflight)
            case .answer(var refusal): refusal.http10 = true; return .answer(refusal)
            default: return self
            }
        }

        /// The decision for a head of `consumed` bytes (a rewritten head's own length differs).
        func consuming(_ consumed: Int) -> Decision {
            switch self {
            case .incomplete, .fullReader, .rewritten: return self
            case .forward(let admitted): admitted.consumed = consumed; return .forward(admitted)
            case .awaitSession(let admitted, let id): admitted.consumed = consumed; return .awaitSession(admitted, sessionID: id)
            case .builtIn(var call): call.consumed = consumed; return .builtIn(call)
            case .local(var call): call.consumed = consumed; return .local(call)
            case .preflight(var preflight): preflight.consumed = consumed; return .preflight(preflight)
            case .answer(var refusal): refusal.consumed = consumed; return .answer(refusal)
            }
        }
    }

    /// A request answered at admission.
    struct Refusal {
        let response: ErrorResponse
        /// The token's refusal reason, for the verification metric.
        let verification: String?
        let route: String
        let method: String
        let target: String
        let requestID: String
        let keepAlive: Bool
        /// The head's length: the bytes the answer accounts for.
        var consumed: Int
        /// The CORS headers the answer gets (an allowed Origin under `[cors]`).
        var cors: [(String, String)]? = nil
        /// The client spoke HTTP/1.0: so does the answer.
        var http10 = false
    }

    /// A local API request, its head read.
    struct LocalCall {
        let method: String
        let target: String
        let path: String
        let query: Substring?
        let headers: [(String, String)]
        let requestID: String
        let keepAlive: Bool
        let isHead: Bool
        /// The Content-Length body to read before the call (0: none).
        let bodyLength: Int
        let expectContinue: Bool
        var consumed: Int
        let cors: [(String, String)]?
        var http10 = false
    }

    /// An allowed preflight.
    struct Preflight {
        let headers: [(String, String)]
        let method: String
        let target: String
        let requestID: String
        let keepAlive: Bool
        var consumed: Int
        var http10 = false
    }

    /// A built-in endpoint's request.
    struct BuiltInCall {
        let path: StaticString
        let requestID: String
        let keepAlive: Bool
        let isHead: Bool
        var consumed: Int
        /// The CORS headers its answer gets (an allowed Origin under `[cors]`).
        let cors: [(String, String)]?
        var http10 = false
    }
}
