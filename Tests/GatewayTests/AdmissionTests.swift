import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import Gateway

/// The admission decides a request from its head's bytes and the config, with no channel: these
/// pin its decisions and the exact upstream request it writes.
@Suite struct AdmissionTests {
    static func decide(_ fixture: EdgeFixture, _ head: String) -> Admission.Decision {
        var admission = fixture.admission()
        return admission.decide(ByteBuffer(string: head), state: fixture.server.state)
    }

    static func upstream(_ decision: Admission.Decision) -> String? {
        switch decision {
        case .forward(let admitted), .awaitSession(let admitted, _): String(buffer: admitted.request)
        default: nil
        }
    }

    static func refusal(_ decision: Admission.Decision) -> Admission.Refusal? {
        if case .answer(let refusal) = decision { return refusal }
        return nil
    }

    @Test func aPlainRequestGoesUpWithItsLinesCopiedAndTheGatewaysAdded() async throws {
        let fixture = try await EdgeFixture()
        let decision = Self.decide(fixture, "GET /public/a?x=1 HTTP/1.1\r\nHost: gw.example\r\nAccept: */*\r\nX-User-Id: spoof\r\nx_user_role: admin\r\n"
            + "X_Forwarded_For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Request-Id: req-1\r\n\r\n")
        #expect(Self.upstream(decision) == "GET /public/a?x=1 HTTP/1.1\r\nHost: gw.example\r\nAccept: */*\r\n"
            + "x-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\nx-real-ip: 192.0.2.7\r\nx-forwarded-host: gw.example\r\nx-request-id: req-1\r\n\r\n")
        try await fixture.close()
    }

    @Test func aClientsForwardedForIsAppendedTo() async throws {
        let fixture = try await EdgeFixture()
        let up = Self.upstream(Self.decide(fixture, "GET /public/ HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\nHost: gw.example\r\nX-Request-Id: r\r\n\r\n"))
        #expect(up?.contains("\r\nx-forwarded-for: 10.0.0.1, 192.0.2.7\r\n") == true, "\(up ?? "nil")")
        #expect(up?.contains("X-Forwarded-For: 10.0.0.1\r\n") == false)
        try await fixture.close()
    }

    @Test func strippedPrefixesRewriteTheRequestLineOnly() async throws {
        let fixture = try await EdgeFixture()
        let up = Self.upstream(Self.decide(fixture, "DELETE /strip/items/7?all HTTP/1.1\r\nHost: gw.example\r\nX-Request-Id: r\r\n\r\n"))
        #expect(up?.hasPrefix("DELETE /base/items/7?all HTTP/1.1\r\nHost: gw.example\r\nx-forwarded-for: ") == true, "\(up ?? "nil")")
        try await fixture.close()
    }

    @Test func aVerifiedTokenAddsTheIdentityAndKeepsTheToken() async throws {
        let fixture = try await EdgeFixture()
        let token = try fixture.token()
        let decision = Self.decide(fixture, "GET /api/me HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer \(token)\r\nX-Request-Id: r\r\n\r\n")
        guard case .forward(let admitted) = decision else { Issue.record("not forwarded: \(decision)"); return }
        let up = String(buffer: admitted.request)
        #expect(up.contains("Authorization: Bearer \(token)\r\n"))
        #expect(up.contains("\r\nX-User-Id: 8d8a3b8e-0000-4000-8000-000000000001\r\nX-User-Role: authenticated\r\n"), "\(up)")
        #expect(admitted.identity?.userID == "8d8a3b8e-0000-4000-8000-000000000001")
        try await fixture.close()
    }

    @Test func refusalsSayWhyAndKeepTheConnectionOnlyWithoutABody() async throws {
        let fixture = try await EdgeFixture()
        let expired = try fixture.token(exp: Date().timeIntervalSince1970 - 3600)
        let cases: [(String, Int, String, Bool)] = [
            ("GET /api/ HTTP/1.1\r\nHost: gw\r\n\r\n", 401, "missing_token", true),
            ("GET /api/ HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \(expired)\r\n\r\n", 401, "expired", true),
            ("POST /api/ HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\nAuthorization: Bearer a.b.c\r\n\r\n", 401, "malformed", false),
            ("GET /api/ HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer a.b.c\r\nAuthorization: Bearer d.e.f\r\n\r\n", 400, "more than one Authorization header", true),
            ("GET /nowhere HTTP/1.1\r\nHost: gw\r\n\r\n", 404, "no route", true),
            ("GET /nowhere HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", 404, "no route", false),
            ("CONNECT gw:443 HTTP/1.1\r\nHost: gw\r\n\r\n", 400, "CONNECT is not supported", false),
            ("GET /public/ HTTP/1.1\r\nHost: gw\r\nHost: gw\r\n\r\n", 400, "more than one Host header", true),
            ("GET /public/ HTTP/1.1\r\n\r\n", 400, "HTTP/1.1 requests need a Host header", true),
            ("GET /public/ HTTP/1.1\r\nHost: gw/x\r\n\r\n", 400, "the Host header is not a host name", true),
            ("GET /public/#access_token=x HTTP/1.1\r\nHost: gw\r\n\r\n", 400, "fragment", true),
            ("GET /public/../api/ HTTP/1.1\r\nHost: gw\r\n\r\n", 400, "dot segments", true),
            ("POST /public/ HTTP/1.1\r\nHost: gw\r\nContent-Length: 2000000000\r\n\r\n", 413, "exceeds", false),
            ("GET /public/ HTTP/1.1\r\nHost: gw\r\nX-Pad: \(String(repeating: "a", count: 5000))\r\n\r\n", 431, "the limit is 4096", true),
        ]
        for (head, status, why, keepAlive) in cases {
            let refusal = Self.refusal(Self.decide(fixture, head))
            #expect(refusal.map { Int($0.response.status.code) } == status, "\(head.prefix(60))")
            #expect(refusal?.response.reason.contains(why) == true, "\(refusal?.response.reason ?? "not refused"), wanted \(why)")
            #expect(refusal?.keepAlive == keepAlive, "\(head.prefix(60))")
            #expect(refusal?.consumed == head.utf8.count)
        }
        try await fixture.close()
    }

    @Test func aTokenCookieIsCutAndTheOtherCookiesKept() async throws {
        let fixture = try await EdgeFixture()
        let token = try fixture.token()
        let up = Self.upstream(Self.decide(fixture, "GET /cut/x HTTP/1.1\r\nHost: gw\r\nCookie: theme=dark; sb-access-token=\(token) ; lang=en\r\n"
            + "Authorization: Basic Zm9vOmJhcg==\r\nX-Request-Id: r\r\n\r\n"))
        #expect(up?.contains("\r\ncookie: theme=dark; lang=en\r\n") == true, "\(up ?? "nil")")
        #expect(up?.contains(token) == false)
        #expect(up?.contains("Authorization") == false)
        let alone = Self.upstream(Self.decide(fixture, "GET /cut/x HTTP/1.1\r\nHost: gw\r\nCookie: sb-access-token=\(token)\r\nX-Request-Id: r\r\n\r\n"))
        #expect(alone?.lowercased().contains("cookie") == false, "\(alone ?? "nil")")
        let twice = Self.refusal(Self.decide(fixture, "GET /cut/x HTTP/1.1\r\nHost: gw\r\nCookie: sb-access-token=\(token)\r\nCookie: sb-access-token=\(token)\r\n\r\n"))
        #expect(twice?.response.reason == "the sb-access-token cookie is given more than once")
        try await fixture.close()
    }

    @Test func aQueryTokenIsDecodedVerifiedAndCut() async throws {
        let fixture = try await EdgeFixture()
        let token = try fixture.token()
        let encoded = token.replacingOccurrences(of: ".", with: "%2E")
        let decision = Self.decide(fixture, "GET /cut/x?a=1&%61ccess_token=\(encoded)&b=2 HTTP/1.1\r\nHost: gw\r\nX-Request-Id: r\r\n\r\n")
        guard case .forward(let admitted) = decision else { Issue.record("not forwarded: \(decision)"); return }
        #expect(String(buffer: admitted.request).hasPrefix("GET /cut/x?a=1&b=2 HTTP/1.1\r\nHost: gw\r\n"), "\(String(buffer: admitted.request))")
        #expect(admitted.identity != nil)
        let only = Self.upstream(Self.decide(fixture, "GET /cut/x?access_token=\(token) HTTP/1.1\r\nHost: gw\r\nX-Request-Id: r\r\n\r\n"))
        #expect(only?.hasPrefix("GET /cut/x HTTP/1.1\r\n") == true, "\(only ?? "nil")")
        try await fixture.close()
    }

    @Test func aSessionRouteAwaitsTheRuntime() async throws {
        let fixture = try await EdgeFixture()
        let session = "0b7f4c1e-0000-4000-8000-00000000abcd"
        let decision = Self.decide(fixture, "GET /live/feed HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \(try fixture.token(session: session))\r\n\r\n")
        guard case .awaitSession(_, let id) = decision else { Issue.record("no session check: \(decision)"); return }
        #expect(id == session)
        let without = Self.refusal(Self.decide(fixture, "GET /live/feed HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \(try fixture.token())\r\n\r\n"))
        #expect(without?.response.status.code == 401 && without?.response.reason.contains("session_id") == true)
        try await fixture.close()
    }

    @Test func methodOverridesGoUnlessTheRouteAllowsThatOne() async throws {
        let fixture = try await EdgeFixture()
        let head = "POST /%@/ HTTP/1.1\r\nHost: gw\r\nX-HTTP-Method-Override: DELETE\r\nX_HTTP_Method_Override: PUT\r\nX-Method-Override: PATCH\r\nX-Request-Id: r\r\n\r\n"
        let kept = Self.upstream(Self.decide(fixture, head.replacingOccurrences(of: "%@", with: "override")))
        #expect(kept?.contains("X-HTTP-Method-Override: DELETE\r\n") == true && kept?.contains("PUT") == false && kept?.contains("PATCH") == false, "\(kept ?? "nil")")
        let dropped = Self.upstream(Self.decide(fixture, head.replacingOccurrences(of: "%@", with: "public")))
        #expect(dropped?.contains("Override") == false, "\(dropped ?? "nil")")
        try await fixture.close()
    }

    @Test func builtInsAreAnsweredAndOddHeadsGoToTheFullReader() async throws {
        let fixture = try await EdgeFixture()
        guard case .builtIn(let call) = Self.decide(fixture, "HEAD /healthz HTTP/1.1\r\nHost: gw\r\n\r\n") else { Issue.record("not built in"); return }
        #expect("\(call.path)" == "/healthz" && call.isHead && call.keepAlive)
        for head in ["get /public/ HTTP/1.1\r\nHost: gw\r\n\r\n", "GET /public/ HTTP/1.2\r\nHost: gw\r\n\r\n", "GET http://user@gw/public/ HTTP/1.1\r\nHost: gw\r\n\r\n",
                     "POST /public/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                     "GET /public/ HTTP/1.1\r\nHost: gw\r\n folded\r\n\r\n", "GET /public/ HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"] {
            guard case .fullReader = Self.decide(fixture, head) else { Issue.record("read by the scanner: \(head)"); continue }
        }
        guard case .incomplete = Self.decide(fixture, "GET /public/ HTTP/1.1\r\nHost: gw\r\n") else { Issue.record("a partial head decided"); return }
        try await fixture.close()
    }

    /// A chunked body is relayed (only chunked, once); another coding is 501, and a length
    /// beside it is refused (which one frames the body?).
    @Test func chunkedBodiesAreAdmittedAndOtherCodingsRefused() async throws {
        let fixture = try await EdgeFixture()
        let decision = Self.decide(fixture, "POST /public/ HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nX-Request-Id: r\r\n\r\n")
        guard case .forward(let admitted) = decision else { Issue.record("not forwarded: \(decision)"); return }
        #expect(admitted.chunked && admitted.bodyLength == 0)
        #expect(String(buffer: admitted.request).contains("Transfer-Encoding: chunked\r\n"))
        let cases: [(String, Int, String)] = [
            ("Transfer-Encoding: gzip, chunked", 501, "transfer coding \"gzip\" is not supported (only chunked)"),
            ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 501, "chunked is applied more than once"),
            ("Transfer-Encoding: chunked\r\nContent-Length: 5", 400, "Content-Length is given more than once or beside Transfer-Encoding"),
        ]
        for (field, status, why) in cases {
            let refusal = Self.refusal(Self.decide(fixture, "POST /public/ HTTP/1.1\r\nHost: gw\r\n\(field)\r\n\r\n"))
            #expect(refusal.map { Int($0.response.status.code) } == status && refusal?.response.reason == why && refusal?.keepAlive == false, "\(field)")
        }
        try await fixture.close()
    }

    /// An absolute-form target and a Host with a trailing dot are written again in the form the
    /// scanner reads, then decided as any head: the same decision and upstream request as the
    /// canonical head, the client's bytes consumed.
    @Test func absoluteFormAndATrailingDotAreReadAsTheCanonicalHead() async throws {
        let fixture = try await EdgeFixture()
        let canonical = "GET /public/a?q=1 HTTP/1.1\r\nAccept: */*\r\nX-Request-Id: r\r\nhost: gw.example:81\r\n\r\n"
        let want = Self.upstream(Self.decide(fixture, canonical))
        #expect(want?.hasPrefix("GET /public/a?q=1 HTTP/1.1\r\nAccept: */*\r\nhost: gw.example:81\r\nx-forwarded-for: 192.0.2.7\r\n") == true, "\(want ?? "nil")")
        for head in ["GET HTTP://gw.example:81/public/a?q=1 HTTP/1.1\r\nHost: ignored\r\nAccept: */*\r\nX-Request-Id: r\r\n\r\n",
                     "GET /public/a?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: gw.example.:81\r\nX-Request-Id: r\r\n\r\n"] {
            let decision = Self.decide(fixture, head)
            #expect(Self.upstream(decision) == want, "\(head.debugDescription)")
            guard case .forward(let admitted) = decision else { Issue.record("not forwarded: \(head.debugDescription)"); continue }
            #expect(admitted.consumed == head.utf8.count)
        }
        let refused = Self.refusal(Self.decide(fixture, "GET http://gw/nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
        #expect(refused?.response.status.code == 404 && refused?.consumed == 62)
        try await fixture.close()
    }
}

/// 100 random heads, each read three ways: as the scanner reads it (origin form, Host last),
/// in absolute form, and with a trailing dot on its Host. The second and third are written
/// again by the admission's normalizer; all three must give the same decision and, when
/// forwarded, a byte-identical upstream request.
@Suite struct AdmissionRandomHeadTests {
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func summary(_ decision: Admission.Decision) -> String {
        switch decision {
        case .forward(let a): "forward \(a.route.name) \(String(buffer: a.request))"
        case .awaitSession(let a, let id): "session \(id) \(String(buffer: a.request))"
        case .answer(let r): "answer \(r.response.status.code) \(r.response.reason) \(r.keepAlive) \(r.route)"
        case .builtIn(let c): "built-in \(c.path) \(c.keepAlive)"
        case .local(let c): "local \(c.method) \(c.path) \(c.bodyLength)"
        case .preflight(let p): "preflight \(p.headers.count)"
        case .fullReader(let why): "full reader \(why)"
        case .incomplete: "incomplete"
        case .rewritten: "rewritten"
        }
    }

    @Test func aHeadDecidesTheSameInEveryFormItCanTake() async throws {
        let fixture = try await EdgeFixture()
        var rng = Seeded(state: 0x5EED)
        let good = try fixture.token(session: "0b7f4c1e-0000-4000-8000-00000000abcd")
        let methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
        let paths = ["/public/", "/public/a/b", "/api/items", "/cut/x", "/live/feed", "/strip/s/t", "/override/o", "/nowhere", "/healthz", "/auth/v1/settings",
                     "/public/../api", "/public/%2e"]
        let queries = ["", "?a=1", "?access_token=\(good)", "?a=1&access_token=\(good)&b=2", "?q=%20x"]
        let extras: [String] = ["Accept: */*", "Authorization: Bearer \(good)", "Authorization: Bearer a.b.c", "apikey: \(good)",
                                "Cookie: theme=dark; sb-access-token=\(good)", "Cookie: lang=en", "X-Forwarded-For: 10.0.0.1", "X-Forwarded-For: 10.0.0.2",
                                "X-User-Id: spoof", "X_User_Role: admin", "Connection: keep-alive", "Connection: close", "Connection: X-Hop", "X-Hop: 1",
                                "Content-Length: 0", "Expect: 100-continue", "X-HTTP-Method-Override: DELETE", "Upgrade: websocket", "Forwarded: for=x",
                                "Keep-Alive: 5", "X-Custom: \(Int.random(in: 0...1_000_000, using: &rng))"]
        var forwarded = 0
        for n in 0..<100 {
            let method = methods.randomElement(using: &rng)!
            let target = paths.randomElement(using: &rng)! + queries.randomElement(using: &rng)!
            var lines = (0..<Int.random(in: 0...6, using: &rng)).map { _ in extras.randomElement(using: &rng)! }
            lines.append("X-Request-Id: rand-\(n)")
            let host = ["gw", "gw.example", "gw.example:8080"].randomElement(using: &rng)!
            let fields = lines.map { $0 + "\r\n" }.joined()
            let canonical = "\(method) \(target) HTTP/1.1\r\n\(fields)host: \(host)\r\n\r\n"
            let absolute = "\(method) http://\(host)\(target) HTTP/1.1\r\nHost: elsewhere\r\n\(fields)\r\n"
            let name = host.split(separator: ":")
            let dotted = "\(method) \(target) HTTP/1.1\r\n\(fields)Host: \(name[0]).\(name.count > 1 ? ":" + name[1] : "")\r\n\r\n"
            let want = Self.summary(AdmissionTests.decide(fixture, canonical))
            #expect(Self.summary(AdmissionTests.decide(fixture, absolute)) == want, "absolute form of \(canonical.debugDescription)")
            #expect(Self.summary(AdmissionTests.decide(fixture, dotted)) == want, "trailing dot of \(canonical.debugDescription)")
            if want.hasPrefix("forward") || want.hasPrefix("session") { forwarded += 1 }
        }
        #expect(forwarded >= 20, "the vectors reach the upstream often enough to compare their requests (\(forwarded))")
        try await fixture.close()
    }
}
