import NIOHTTP1
import Runtime

extension RuntimeError {
    /// The HTTP answer for a runtime refusal, on `/auth/v1` (GoTrue's statuses for its codes) and
    /// the session API. The store failing is 503 (`runtime_unavailable`: clients may try again).
    var httpStatus: HTTPResponseStatus {
        switch code {
        case .duplicateSession: .conflict
        case .sessionLimit, .overSessionLimit, .overRequestRateLimit: .tooManyRequests
        case .notFound: .notFound
        case .invalidIntent, .validationFailed, .invalidCredentials, .refreshTokenNotFound, .refreshTokenAlreadyUsed, .sessionExpired,
             .userNotFound:
            .badRequest
        case .weakPassword, .userAlreadyExists: .unprocessableEntity
        case .storage, .runtimeUnavailable: .serviceUnavailable
        case .unexpectedFailure: .internalServerError
        }
    }
}
