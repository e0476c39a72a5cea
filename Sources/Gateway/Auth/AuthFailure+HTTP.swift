import Foundation
import JOSE
import NIOHTTP1

extension AuthFailure {
    /// The HTTP answer for a refusal: 401 for anything about the token (RFC 6750
    /// `invalid_token`; a missing token gets a bare challenge), 403 `insufficient_scope` for
    /// policy, 403 for a session that is gone or revoked.
    var httpStatus: HTTPResponseStatus {
        switch reason {
        case .forbidden: .forbidden
        case .sessionNotFound, .sessionRevoked: .forbidden
        default: .unauthorized
        }
    }

    /// The `WWW-Authenticate` challenge, quoted safely.
    var challenge: String {
        let description = message.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "'")
        switch reason {
        case .missingToken: return "Bearer realm=\"gateway\""
        case .forbidden: return "Bearer realm=\"gateway\", error=\"insufficient_scope\", error_description=\"\(description)\""
        default: return "Bearer realm=\"gateway\", error=\"invalid_token\", error_description=\"\(reason.rawValue): \(description)\""
        }
    }
}
