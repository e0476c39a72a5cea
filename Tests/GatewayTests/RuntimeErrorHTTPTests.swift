import NIOHTTP1
import Runtime
import Testing

@testable import Gateway

/// The statuses `/auth/v1` and the session API answer for each runtime code: GoTrue's for
/// its codes, and the session API's own (409, 429, 404, 400, 503).
@Suite struct RuntimeErrorHTTPTests {
    @Test(arguments: [
        (RuntimeError.Code.duplicateSession, 409), (.sessionLimit, 429), (.invalidIntent, 400), (.notFound, 404), (.storage, 503),
        (.validationFailed, 400), (.weakPassword, 422), (.userAlreadyExists, 422), (.invalidCredentials, 400),
        (.overRequestRateLimit, 429), (.overSessionLimit, 429), (.refreshTokenNotFound, 400), (.refreshTokenAlreadyUsed, 400),
        (.sessionExpired, 400), (.userNotFound, 400), (.runtimeUnavailable, 503), (.unexpectedFailure, 500),
    ])
    func everyCodeHasItsStatus(_ code: RuntimeError.Code, _ status: Int) {
        #expect(Int(RuntimeError(code, "m").httpStatus.code) == status)
    }

    @Test func everyCodeIsPinned() {
        #expect(RuntimeError.Code.allCases.count == 17, "a new code needs its status above")
    }
}
