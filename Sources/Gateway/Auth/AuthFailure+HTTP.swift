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

    /// The `WWW-Authenticate` challenge, quoted safely: messages reflect what the token says
    /// (its kid, alg, iss), so the description keeps only what RFC 6750 allows there
    /// (%x20-21 / %x23-5B / %x5D-7E; others become '?', a quote becomes "'") and at most
    /// `descriptionLimit` characters. A token cannot write a header line or a second response.
    var challenge: String {
        var description = ""
        for scalar in message.unicodeScalars.prefix(Self.descriptionLimit) {
            switch scalar.value {
            case 0x22: description += "'"
            case 0x20...0x21, 0x23...0x5B, 0x5D...0x7E: description.unicodeScalars.append(scalar)
            default: description += "?"
            }
        }
        if message.unicodeScalars.count > Self.descriptionLimit { description += "..." }
        switch reason {
        case .missingToken: return "Bearer realm=\"gateway\""
        case .forbidden: return "Bearer realm=\"gateway\", error=\"insufficient_scope\", error_description=\"\(description)\""
        default: return "Bearer realm=\"gateway\", error=\"invalid_token\", error_description=\"\(reason.rawValue): \(description)\""
        }
    }

    static let descriptionLimit = 200
}
