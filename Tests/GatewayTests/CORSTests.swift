import Testing

@testable import Gateway

/// The `[cors]` policy's answers to preflights, and what its config accepts.
@Suite struct CORSTests {
    func policy(_ text: String) throws -> CORSConfig {
        try #require(try GatewayConfig.parse("[cors]\n" + text).cors)
    }

    @Test func wildcardMethodsAndHeadersAnswerWhatWasAsked() throws {
        let cors = try policy("allow_origins = [\"https://app.example.com\"]\nallow_methods = [\"*\"]\nallow_headers = [\"*\"]\nallow_credentials = true\n")
        guard case .success(let headers) = cors.preflight(origin: "https://app.example.com", method: "PATCH", headers: "X-Custom, content-type") else {
            Issue.record("refused")
            return
        }
        let fields = Dictionary(headers, uniquingKeysWith: { a, _ in a })
        #expect(fields["access-control-allow-methods"] == "PATCH" && fields["access-control-allow-headers"] == "x-custom, content-type",
                "named, not *: with credentials browsers take * literally")
        #expect(fields["access-control-allow-origin"] == "https://app.example.com" && fields["access-control-allow-credentials"] == "true")
    }

    @Test func listedMethodsAndHeadersOnly() throws {
        let cors = try policy("allow_origins = \"*\"\n")
        guard case .success(let headers) = cors.preflight(origin: "https://any.example", method: "GET", headers: nil) else {
            Issue.record("refused")
            return
        }
        #expect(Dictionary(headers, uniquingKeysWith: { a, _ in a })["access-control-allow-origin"] == "*")
        guard case .failure(let refusal) = cors.preflight(origin: "https://any.example", method: "PROPFIND", headers: nil) else {
            Issue.record("allowed")
            return
        }
        #expect(refusal.reason.hasPrefix("method PROPFIND is not allowed"))
        guard case .failure(let header) = cors.preflight(origin: "https://any.example", method: "GET", headers: "accept, x-custom") else {
            Issue.record("allowed")
            return
        }
        #expect(header.reason.hasPrefix("request header x-custom is not allowed"), "accept is safelisted, x-custom is not")
    }

    @Test func originsAreWrittenAsBrowsersSendThem() {
        #expect(CORSConfig.originProblem("https://app.example.com") == nil)
        #expect(CORSConfig.originProblem("http://localhost:3000") == nil)
        #expect(CORSConfig.originProblem("https://app.example.com:443") == "browsers send the origin without its default port: write https://app.example.com")
        #expect(CORSConfig.originProblem("http://app.example.com:80") == "browsers send the origin without its default port: write http://app.example.com")
        #expect(CORSConfig.originProblem("https://app.example.com:99999") != nil)
        #expect(CORSConfig.originProblem("https://app.example.com/") != nil)
        #expect(throws: ConfigError.self) { try GatewayConfig.parse("[cors]\nallow_origins = \"*\"\nallow_methods = []\n") }
    }
}
