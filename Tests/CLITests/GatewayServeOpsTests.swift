import Foundation
import JOSE
import Synchronization
import Testing

/// Error statuses, streaming with bounded memory, pooling, operations endpoints, reload and
/// drain, against the real process.
@Suite(.serialized) struct GatewayServeOpsTests {
    static let keys = CLITests.sharedKeys

    /// Sends raw bytes and returns the first response line.
    static func raw(_ port: Int, _ bytes: String) throws -> String {
        let raw = try DirectPathTests.exchange(port, bytes, responses: 1).raw
        return String(raw.prefix { $0 != "\r" && $0 != "<" })
    }

    @Test func everyErrorStatus() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: """
        [server]
        max_body_bytes = 1000
        max_header_bytes = 4096

        [[route]]
        path = "/up/"
        upstream = "\(up.url)"
        auth = "public"
        timeouts = { first_byte = "300ms" }

        [[route]]
        path = "/down/"
        upstream = "http://127.0.0.1:1"
        auth = "public"
        """, keys: Self.keys)

        let tooLarge = try Curl.request(gw.url + "/up/echo", ["--data-binary", String(repeating: "x", count: 2000)])
        #expect(tooLarge.status == 413 && tooLarge.json?["error"]?.string == "payload_too_large")
        let chunkedTooLarge = try Curl.request(gw.url + "/up/echo", ["-H", "Transfer-Encoding: chunked", "--data-binary", String(repeating: "y", count: 5000)])
        #expect(chunkedTooLarge.status == 413)
        let headers = try Curl.request(gw.url + "/up/echo", ["-H", "X-Big: " + String(repeating: "h", count: 6000)])
        #expect(headers.status == 431 && headers.json?["error"]?.string == "request_header_fields_too_large")
        // A refused connect tells the client the route and the kind of failure; the upstream's
        // address is for the access log.
        let down = try Curl.request(gw.url + "/down/x")
        #expect(down.status == 502 && down.json?["reason"]?.string?.hasSuffix("connection refused") == true && !down.body.contains("127.0.0.1"), "\(down.body)")
        // A token in a fragment (OAuth redirects put it there) never reaches the access log.
        let fragment = try DirectPathTests.exchange(gw.port, "GET /up/echo#access_token=SECRET-IN-FRAGMENT HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(fragment.statuses == [400])
        // A client that stops before its body is whole: 499 at once, not held for the idle timeout.
        let started = Date()
        let abandoned = try DirectPathTests.exchange(gw.port, "POST /up/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", shutWrite: true)
        #expect(abandoned.raw.hasSuffix("<EOF>") && Date().timeIntervalSince(started) < 3, "\(abandoned.raw)")
        Thread.sleep(forTimeInterval: 0.2)
        #expect(!gw.child.stdout.contains("SECRET-IN-FRAGMENT"), "the fragment is cut from the logged path")
        #expect(gw.child.stdout.contains("cannot connect to http://127.0.0.1:1"), "the address is in the log")
        #expect(gw.child.stdout.contains("client closed with 7 body bytes to go"))
        let garbage = try DirectPathTests.exchange(gw.port, "GARBAGE\r\n\r\n", responses: 1)
        #expect(garbage.statuses == [400] && garbage.raw.contains(#""error":"bad_request","reason":"the request line does not start with a method the gateway's HTTP/1.1 parser knows"#), "\(garbage.raw)")
        // OPTIONS * (asterisk-form) is about the server: answered here with what it passes on.
        let star = try DirectPathTests.exchange(gw.port, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(star.statuses == [200] && star.raw.lowercased().contains("allow: get, head, post"), "\(star.raw)")
        let traversal = try Curl.request(gw.url + "/up/../down/x", ["--path-as-is"])
        #expect(traversal.status == 400 && traversal.json?["reason"]?.string?.contains("dot segments") == true, "no route is chosen for a path an upstream would rewrite")
        // The absolute form is accepted (RFC 9112 section 3.2.2): its authority is the host.
        #expect(try Self.raw(gw.port, "GET http://elsewhere/ HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 404"))
        let absolute = try DirectPathTests.exchange(gw.port, "GET http://Target.example:81/up/echo?q=1 HTTP/1.1\r\nHost: ignored\r\nConnection: close\r\n\r\n")
        #expect(absolute.statuses == [200] && absolute.raw.contains(#""path": "/up/echo?q=1""#) && absolute.raw.contains(#""host": "Target.example:81""#), "\(absolute.raw)")
        #expect(try Self.raw(gw.port, "GET http://user@elsewhere/ HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 400"))
        let refused = try Curl.request(gw.url + "/down/x")
        #expect(refused.status == 502 && refused.json?["error"]?.string == "bad_gateway")
        #expect(refused.json?["request_id"]?.string == refused.headers["x-request-id"] && refused.headers["x-request-id"]?.isEmpty == false,
                "the id made for the request is the one answered")
        let reset = try Curl.request(gw.url + "/up/reset", ["-H", "X-Request-Id: client-given-7"])
        #expect(reset.status == 502 && reset.json?["request_id"]?.string == "client-given-7" && reset.headers["x-request-id"] == "client-given-7")
        let slow = try Curl.request(gw.url + "/up/slow?ms=2000")
        #expect(slow.status == 504 && slow.json?["error"]?.string == "gateway_timeout")
        #expect(slow.json?["request_id"]?.string == slow.headers["x-request-id"] && slow.headers["x-request-id"]?.isEmpty == false)
        // Still serving after all of that.
        #expect(try Curl.request(gw.url + "/up/echo").status == 200)
        #expect(gw.child.process.isRunning)
    }

    /// Bytes that do not parse as HTTP/1.1 are answered in the gateway's vocabulary (a JSON
    /// reason, a request id, the connection closed), after the requests pipelined before them;
    /// a malformed body of a request in progress ends that request with the reason.
    @Test func malformedRequestsAreAnsweredWithTheReason() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: "[[route]]\npath = \"/up/\"\nupstream = \"\(up.url)\"\nauth = \"public\"\n", keys: Self.keys)
        func reason(_ raw: String) -> String? {
            raw.firstMatch(of: /"reason":"([^"]*)"/).map { String($0.output.1) }
        }
        let cases: [(bytes: String, status: Int, reason: String)] = [
            ("GET / HTTP/1.1\r\nHo st: x\r\n\r\n", 400, "a header field is not name: value, or holds a character HTTP does not allow in its name or value"),
            ("GET / HTTP/1.1\r\nHost: x\r\nA: b\u{01}c\r\n\r\n", 400, "a header field is not name: value, or holds a character HTTP does not allow in its name or value"),
            ("GET /up/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400, "Content-Length is not a number"),
            ("GET /up/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
             "Content-Length is given more than once or beside Transfer-Encoding"),
            ("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "the request line is not METHOD SP target SP HTTP/1.x"),
            ("GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n", 400, "a line of the request head does not end in CRLF"),
        ]
        for (bytes, status, expected) in cases {
            let answer = try DirectPathTests.exchange(gw.port, bytes)
            #expect(answer.statuses == [status] && reason(answer.raw) == expected, "\(bytes.debugDescription): \(answer.raw)")
            #expect(answer.raw.contains("connection: close") && answer.raw.hasSuffix("<EOF>"), "closed after the answer: \(answer.raw)")
        }

        // Behind a proxied request still waiting for its upstream and a handed-over one: both
        // answered first, in order, then the 400.
        let pipelined = try DirectPathTests.exchange(gw.port, "GET /up/slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP\r\n\r\n")
        #expect(pipelined.statuses == [200, 200, 400] && reason(pipelined.raw)?.hasPrefix("the request line does not start with a method") == true, "\(pipelined.raw)")
        let id = pipelined.raw.firstMatch(of: /"request_id":"([^"]+)"/).map { String($0.output.1) }
        #expect(id != nil && pipelined.raw.contains("x-request-id: \(id ?? "?")"), "the answer's id is in its header and body")

        // A chunked body that stops being chunked while it streams to the upstream.
        let chunked = try DirectPathTests.exchange(gw.port, "POST /up/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
        #expect(chunked.statuses == [400] && reason(chunked.raw) == "a chunk of the chunked request body has an invalid size line", "\(chunked.raw)")

        // After a request the direct path handed over, a head past the decoder's 80 KiB: 431.
        let long = try DirectPathTests.exchange(gw.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /up/echo HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "b", count: 90_000) + "\r\n\r\n")
        #expect(long.statuses == [200, 431] && long.raw.contains(#""error":"request_header_fields_too_large""#), "\(long.raw.prefix(600))")

        #expect(try Curl.request(gw.url + "/up/echo").status == 200)
        #expect(gw.child.process.isRunning)
    }

    /// Findings of a review against HAProxy and Envoy, each on the path(s) it was found on.
    @Test func requestsAGatewayMustNotPassAsTheyCame() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: """
        [[route]]
        exact = "/up/secret"
        upstream = "\(up.url)"
        auth = "required"

        [[route]]
        path = "/up/"
        upstream = "\(up.url)"
        auth = "public"
        """, keys: Self.keys)
        func reason(_ raw: String) -> String? { raw.firstMatch(of: /"reason":"([^"]*)"/).map { String($0.output.1) } }

        // A fragment would route /up/secret#x by the public prefix while the upstream serves
        // /up/secret: refused on both paths (HTTP/1.0 takes the full path).
        for version in ["1.1", "1.0"] {
            let fragment = try DirectPathTests.exchange(gw.port, "GET /up/secret#x HTTP/\(version)\r\nHost: x\r\n\r\n", responses: 1)
            #expect(fragment.raw.hasPrefix("HTTP/\(version) 400") && reason(fragment.raw)?.hasPrefix("the request target holds a fragment") == true,
                    "\(fragment.raw)")
        }

        // Answers to HEAD carry no body: a keep-alive client reads the next answer right.
        let head = try DirectPathTests.exchange(gw.port, "HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\nHEAD /up/secret HTTP/1.1\r\nHost: x\r\n\r\nGET /up/echo HTTP/1.1\r\nHost: x\r\n\r\n", responses: 3)
        #expect(head.statuses == [404, 401, 200], "\(head.raw)")
        #expect(!head.raw.contains("\"error\""), "no body after a HEAD answer: \(head.raw)")

        // CONNECT is answered with its reason and the connection closes (what follows would be
        // a tunnel's bytes), whatever the target's form.
        for target in ["example.com:443", "/up/echo"] {
            let connect = try DirectPathTests.exchange(gw.port, "CONNECT \(target) HTTP/1.1\r\nHost: x\r\n\r\nGET /up/echo HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(connect.statuses == [400] && reason(connect.raw)?.hasPrefix("CONNECT is not supported") == true && connect.raw.hasSuffix("<EOF>"), "\(connect.raw)")
        }

        // After a request that took the connection to the full path too.
        let later = try DirectPathTests.exchange(gw.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nCONNECT /up/echo HTTP/1.1\r\nHost: x\r\n\r\nGET /up/echo HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(later.statuses == [200, 400] && reason(later.raw)?.hasPrefix("CONNECT is not supported") == true && later.raw.hasSuffix("<EOF>"), "\(later.raw)")

        // A Host that is not host[:port] is refused on both paths.
        for (host, version) in [("x/y?z@w", "1.1"), ("x, y", "1.1"), ("a@b", "1.0")] {
            let bad = try DirectPathTests.exchange(gw.port, "GET /up/echo HTTP/\(version)\r\nHost: \(host)\r\n\r\n", responses: 1)
            #expect(bad.raw.hasPrefix("HTTP/\(version) 400") && reason(bad.raw)?.hasPrefix("the Host header is not") == true, "\(host): \(bad.raw)")
        }
        let literal = try Curl.request(gw.url + "/up/echo", ["-H", "Host: [::1]:8080"])
        #expect(literal.status == 200, "an IPv6 literal with a port is a valid Host")

        // Connection may not nominate Host: it reaches the upstream.
        let nominated = try Curl.request(gw.url + "/up/echo", ["-H", "Host: kept.example", "-H", "Connection: host, x-drop", "-H", "X-Drop: 1"])
        #expect(nominated.json?["headers"]?["host"]?.string == "kept.example" && nominated.json?["headers"]?["x-drop"] == nil, "\(nominated.body)")

        // A request's trailers are not forwarded (they could carry identity headers).
        let trailers = try DirectPathTests.exchange(gw.port, "POST /up/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-User-Id: evil\r\nX-Auth-Claims: e30\r\n\r\n")
        #expect(trailers.statuses == [200] && trailers.raw.contains("\"body_bytes\": 3") && trailers.raw.contains("\"trailers\": []"), "\(trailers.raw)")

        // Upstream answers the direct path refuses are refused on the full path too (HTTP/1.0
        // takes it): a 101 to a request that asked for no upgrade, a head over 64 KiB, a chunked
        // body whose framing breaks in the first read (the head is held until then: a 502, not
        // a head and a cut).
        for (kind, expected) in [("switching", "upstream switched protocols unasked"), ("huge-head", "upstream answered badly: response head over 64 KiB"),
                                 ("bad-chunk", "upstream answered badly: not valid HTTP/1.1"), ("ctl-in-extension", "upstream answered badly: not valid HTTP/1.1")] {
            let answer = try DirectPathTests.exchange(gw.port, "GET /up/raw?kind=\(kind) HTTP/1.0\r\nHost: x\r\n\r\n")
            #expect(answer.raw.hasPrefix("HTTP/1.0 502") && reason(answer.raw)?.hasPrefix(expected) == true, "\(kind): \(answer.raw.prefix(300))")
        }

        // Connection may not nominate Transfer-Encoding either: the chunked body stays framed
        // (unframed, a GET's body was read by the upstream as a second request).
        let smuggle = try DirectPathTests.exchange(gw.port, "GET /up/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n"
                                                   + "30\r\nGET /up/secret HTTP/1.1\r\nHost: x\r\nX-A: aaaaa\r\n\r\n\r\n0\r\n\r\nGET /up/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(smuggle.statuses == [200, 200] && smuggle.raw.contains("\"body_bytes\": 48"), "\(smuggle.raw)")

        // The client closes in the middle of a request: nobody is answered 400, the request
        // is counted as the client's close (499).
        func counted(_ status: Int) throws -> Double {
            try Curl.request(gw.url + "/metrics").body.split(separator: "\n")
                .filter { $0.hasPrefix("gateway_requests_total") && $0.contains("status=\"\(status)\"") }
                .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
        }
        let (before400, before499) = (try counted(400), try counted(499))
        _ = try DirectPathTests.exchange(gw.port, "POST /up/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", shutWrite: true)
        Thread.sleep(forTimeInterval: 0.3)
        let (after400, after499) = (try counted(400), try counted(499))
        #expect(after400 == before400 && after499 == before499 + 1, "400: \(before400) -> \(after400), 499: \(before499) -> \(after499)")

        // Bad bytes in the body of a request queued behind one in flight: the one in flight is
        // answered, then the 400 for the queued one (it never reaches an upstream half-sent).
        // (The first request is chunked, so both are read by the full path.)
        let queued = try DirectPathTests.exchange(gw.port, "POST /up/slow?ms=300 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                                                  + "POST /up/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n")
        #expect(queued.statuses == [200, 400] && reason(queued.raw)?.contains("chunk") == true && queued.raw.hasSuffix("<EOF>"), "\(queued.raw)")

        // Connections handed to the full path and closed there are counted closed once.
        for _ in 0..<5 { _ = try DirectPathTests.exchange(gw.port, "GARBAGE\r\n\r\n") }
        let metrics = try Curl.request(gw.url + "/metrics").body
        let open = metrics.split(separator: "\n").first { $0.hasPrefix("gateway_open_connections") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        #expect(open.map { (0...2).contains($0) } == true, "open connections: \(open.map(String.init(describing:)) ?? "none")")
        #expect(gw.child.process.isRunning)
    }

    /// Pipelined requests in one TCP write, mixing proxied, local and refused answers: each
    /// gets its answer, in order.
    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: "[[route]]\npath = \"/up/\"\nupstream = \"\(up.url)\"\nauth = \"public\"\n", keys: Self.keys)
        let script = """
        import re,socket,sys
        s=socket.create_connection(("127.0.0.1",\(gw.port)));s.settimeout(10)
        req=lambda p: ("GET %s HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" % p).encode()
        s.sendall(req("/up/echo")+req("/healthz")+req("/up/fixed?bytes=5")+req("/nowhere")+req("/up/echo"))
        data=b""
        try:
            while len(re.findall(rb"HTTP/1\\.1 [0-9]{3}", data))<5:
                chunk=s.recv(65536)
                if not chunk: break
                data+=chunk
        except Exception: pass
        print(" ".join(m.decode() for m in re.findall(rb"HTTP/1\\.1 ([0-9]{3})", data)))
        """
        let out = try CLI.run(["python3", "-c", script], executable: "/usr/bin/env").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(out == "200 200 200 404 200", "statuses in order: \(out)")
        #expect(gw.child.process.isRunning)
    }

    @Test func failedConnectTriesTheNextUpstreamAndEjectsTheFailedOne() throws {
        let up = try TestUpstream(name: "alive")
        let config = """
        [[route]]
        path = "/"
        upstream = ["http://127.0.0.1:1", "\(up.url)"]
        auth = "public"
        """
        func logged(_ gw: TestGateway, _ text: String) -> Bool {
            for _ in 0..<100 {
                if gw.child.stdout.contains(text) || gw.child.stderr.contains(text) { return true }
                Thread.sleep(forTimeInterval: 0.02)
            }
            return false
        }
        // GET is retried on the next upstream: every answer comes from the live one, though
        // round robin sends the first attempt of one in two to the refusing one.
        let gw = try TestGateway(config: config, keys: Self.keys)
        for _ in 0..<2 {
            #expect(try Curl.request(gw.url + "/echo").json?["name"]?.string == "alive")
        }
        #expect(logged(gw, "upstream ejected"), "the refusing upstream is ejected")

        // A POST is not retried: on a new gateway, the first POST whose turn is the refusing
        // upstream gets 502, and that upstream is ejected (it would have been half of all POSTs).
        for fullPath in [false, true] {
            let gw = try TestGateway(config: config, keys: Self.keys)
            // Transfer-Encoding: chunked takes the full path (NIOHTTP1), Content-Length the direct one.
            let post = ["-X", "POST", "--data", "x"] + (fullPath ? ["-H", "Transfer-Encoding: chunked"] : [])
            var first: [Int] = []
            while first.count < 3, !first.contains(502) {
                first.append(try Curl.request(gw.url + "/echo", post).status)
            }
            let ejectedAt = Date()
            #expect(first.last == 502, "full path \(fullPath): the first POST sent to the refusing upstream: \(first)")
            let posts = try (0..<6).map { _ in try Curl.request(gw.url + "/echo", post).status }
            let metrics = try Curl.request(gw.url + "/metrics").body
            // The ejection lasts 5 s; on a machine too slow to send seven requests in 4 s the
            // order after it is not this test's to check.
            if Date().timeIntervalSince(ejectedAt) < 4 {
                #expect(posts == Array(repeating: 200, count: 6), "full path \(fullPath): POSTs go to the live upstream meanwhile: \(posts)")
                #expect(metrics.contains(#"gateway_upstream_connect_failures{upstream="127.0.0.1:1"} 1"#), "failures in a row, per upstream")
                #expect(metrics.contains(#"gateway_upstream_connect_errors_total{upstream="127.0.0.1:1"}"#), "and a counter of them all")
            }
            #expect(logged(gw, "upstream ejected"))
        }
    }

    /// `[cors]`: preflights answered here (allowed or refused with the reason), before routes
    /// and tokens; every answer to an allowed origin carries the CORS headers, the gateway's
    /// 401 included; an upstream's own CORS headers are replaced; without `[cors]` a preflight
    /// is proxied as before.
    @Test func corsPolicyAnswersPreflightsAndMarksEveryAnswer() throws {
        let up = try TestUpstream(name: "up")
        let app = "https://app.example.com"
        let gw = try TestGateway(config: """
        [cors]
        allow_origins = ["\(app)", "http://localhost:3000"]
        allow_credentials = true

        [[route]]
        path = "/api/"
        upstream = "\(up.url)"
        auth = "required"

        [[route]]
        path = "/open/"
        upstream = "\(up.url)"
        auth = "public"
        """, keys: Self.keys)
        func preflight(_ path: String, origin: String = app, method: String = "POST", headers: String = "authorization, content-type, x-client-info") throws -> Curl.Response {
            try Curl.request(gw.url + path, ["-X", "OPTIONS", "-H", "Origin: \(origin)", "-H", "Access-Control-Request-Method: \(method)",
                                             "-H", "Access-Control-Request-Headers: \(headers)"])
        }
        for path in ["/api/items", "/auth/v1/token?grant_type=password", "/nowhere"] {
            let ok = try preflight(path)
            #expect(ok.status == 204 && ok.body.isEmpty, "\(path): \(ok.status) \(ok.body)")
            #expect(ok.headers["access-control-allow-origin"] == app && ok.headers["access-control-allow-credentials"] == "true")
            #expect(ok.headers["access-control-allow-methods"]?.contains("POST") == true && ok.headers["access-control-allow-headers"]?.contains("x-client-info") == true)
            #expect(ok.headers["access-control-max-age"] == "600" && ok.headers["vary"]?.contains("Origin") == true)
        }
        for (refused, why) in [(try preflight("/api/items", origin: "https://evil.example"), "origin https://evil.example is not allowed"),
                               (try preflight("/api/items", method: "TRACE"), "method TRACE is not allowed"),
                               (try preflight("/api/items", headers: "authorization, x-evil"), "request header x-evil is not allowed")] {
            #expect(refused.status == 403 && refused.json?["error"]?.string == "cors_refused", "\(refused.status) \(refused.body)")
            #expect(refused.json?["reason"]?.string?.hasPrefix(why) == true, "\(refused.body)")
            #expect(refused.headers["access-control-allow-origin"] == nil)
        }

        // Several Access-Control-Request-Headers fields make one list.
        let twoFields = ["-X", "OPTIONS", "-H", "Origin: \(app)", "-H", "Access-Control-Request-Method: GET", "-H", "Access-Control-Request-Headers: authorization"]
        #expect(try Curl.request(gw.url + "/api/x", twoFields + ["-H", "Access-Control-Request-Headers: apikey"]).status == 204)
        #expect(try Curl.request(gw.url + "/api/x", twoFields + ["-H", "Access-Control-Request-Headers: x-evil"]).status == 403)

        // The gateway's own answers are readable by the app: its endpoints, and its 401.
        for path in ["/auth/v1/settings", "/healthz"] {
            let own = try Curl.request(gw.url + path, ["-H", "Origin: \(app)"])
            #expect(own.status == 200 && own.headers["access-control-allow-origin"] == app, "\(path): \(own.headers)")
        }
        #expect(try Curl.request(gw.url + "/api/echo", ["-H", "Origin: https://evil.example"]).headers["access-control-allow-origin"] == nil)
        let plain401 = try Curl.request(gw.url + "/api/echo")
        #expect(plain401.status == 401 && plain401.headers["vary"] == "Origin", "the direct path's own answer varies by Origin too: \(plain401.headers)")
        let unauthorized = try Curl.request(gw.url + "/api/echo", ["-H", "Origin: \(app)"])
        #expect(unauthorized.status == 401 && unauthorized.headers["access-control-allow-origin"] == app)
        #expect(unauthorized.headers["access-control-expose-headers"]?.contains("www-authenticate") == true)
        let token = try GatewayServeTests.token()
        let proxied = try Curl.request(gw.url + "/api/echo", ["-H", "Origin: http://localhost:3000"] + Curl.bearer(token))
        #expect(proxied.status == 200 && proxied.json?["name"]?.string == "up" && proxied.headers["access-control-allow-origin"] == "http://localhost:3000")
        #expect(proxied.headers["vary"]?.contains("Origin") == true)

        // The upstream's own CORS answer is replaced under the policy, with an Origin or without.
        let replaced = try Curl.request(gw.url + "/open/cors", ["-H", "Origin: \(app)"])
        #expect(replaced.status == 200 && replaced.headers["access-control-allow-origin"] == app && replaced.headers["access-control-allow-methods"] == nil, "\(replaced.headers)")
        let raw = try CLI.run(["-s", "-D", "-", "-o", "/dev/null", "-H", "Origin: \(app)", gw.url + "/open/cors"], executable: "/usr/bin/curl").stdout
        #expect(raw.lowercased().components(separatedBy: "access-control-allow-origin:").count == 2, "exactly one: \(raw)")
        let noOrigin = try Curl.request(gw.url + "/open/cors")
        #expect(noOrigin.status == 200 && noOrigin.headers["access-control-allow-origin"] == nil && noOrigin.headers["vary"]?.contains("Origin") == true,
                "the direct path too: \(noOrigin.headers)")
        let other = try Curl.request(gw.url + "/open/echo", ["-H", "Origin: https://evil.example"])
        #expect(other.status == 200 && other.headers["access-control-allow-origin"] == nil, "an origin not allowed reads nothing")

        // Without [cors], a preflight is an OPTIONS request like any other: proxied.
        let plain = try TestGateway(config: "[[route]]\npath = \"/open/\"\nupstream = \"\(up.url)\"\nauth = \"public\"\n", keys: Self.keys)
        let passed = try Curl.request(plain.url + "/open/echo", ["-X", "OPTIONS", "-H", "Origin: \(app)", "-H", "Access-Control-Request-Method: POST"])
        #expect(passed.status == 200 && passed.json?["method"]?.string == "OPTIONS")
    }

    @Test func streamsAGibibyteEachWayInBoundedMemory() throws {
        let size = Int(ProcessInfo.processInfo.environment["GATEWAY_STREAM_BYTES"] ?? "") ?? 1 << 30
        let up = try TestUpstream()
        let gw = try TestGateway(config: """
        [server]
        access_log = "off"

        [[route]]
        path = "/"
        upstream = "\(up.url)"
        auth = "public"
        """, keys: Self.keys)
        // A sparse file: curl -T streams it from disk (--data-binary @file would load it into memory).
        let file = CLI.temporaryDirectory() + "/upload.bin"
        #expect(truncate(file, off_t(size)) == 0 || FileManager.default.createFile(atPath: file, contents: nil) && truncate(file, off_t(size)) == 0)

        final class Sample: Sendable {
            let done = Atomic<Bool>(false), peak = Atomic<Int>(0)
        }
        func sampled(_ body: () throws -> Curl.Response) rethrows -> (Curl.Response, Int) {
            let peak = Mutex(0)
            let done = Atomic(false)
            let sampler = Thread {
                while !done.load(ordering: .relaxed) {
                    let now = gw.child.rssKiB
                    peak.withLock { $0 = max($0, now) }
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
            sampler.start()
            defer { done.store(true, ordering: .relaxed) }
            let response = try body()
            return (response, peak.withLock { $0 })
        }
        let (download, downPeak) = try sampled { try Curl.request(gw.url + "/stream?bytes=\(size)", ["-w", "", "-o", "/dev/null"], timeout: 300) }
        _ = download
        let check = try CLI.run(["-s", "-o", "/dev/null", "-w", "%{size_download}", gw.url + "/stream?bytes=\(size)"], executable: "/usr/bin/curl")
        #expect(Int(check.stdout) == size, "download size")
        let (upload, upPeak) = try sampled { try Curl.request(gw.url + "/echo", ["-T", file, "-X", "POST", "-H", "Content-Type: application/octet-stream"], timeout: 300) }
        #expect(upload.status == 200)
        #expect(upload.json?["body_bytes"]?.integer == Int64(size))
        let (chunked, _) = try sampled { try Curl.request(gw.url + "/echo", ["-T", file, "-X", "POST", "-H", "Transfer-Encoding: chunked"], timeout: 300) }
        #expect(chunked.json?["body_bytes"]?.integer == Int64(size))
        // Without Expect: 100-continue the upload stays on the direct path (Content-Length body).
        let (direct, directPeak) = try sampled { try Curl.request(gw.url + "/echo", ["-T", file, "-X", "POST", "-H", "Expect:"], timeout: 300) }
        #expect(direct.status == 200 && direct.json?["body_bytes"]?.integer == Int64(size))
        print("streaming \(size) bytes: peak RSS download \(downPeak / 1024) MiB, upload \(upPeak / 1024) MiB, direct-path upload \(directPeak / 1024) MiB")
        #expect(downPeak < 64 * 1024 && upPeak < 64 * 1024 && directPeak < 64 * 1024,
                "gateway RSS must stay under 64 MiB (download \(downPeak) KiB, upload \(upPeak) KiB, direct-path upload \(directPeak) KiB)")
        try? FileManager.default.removeItem(atPath: file)
    }

    @Test func expectContinueAndEarlyRejection() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: "[[route]]\npath = \"/\"\nupstream = \"\(up.url)\"\n", keys: Self.keys)
        let token = try GatewayServeTests.token()
        let body = String(repeating: "z", count: 10_000)
        let accepted = try Curl.request(gw.url + "/echo", Curl.bearer(token) + ["-H", "Expect: 100-continue", "--data-binary", body])
        #expect(accepted.status == 200 && accepted.json?["body_bytes"]?.integer == 10_000)
        #expect(accepted.json?["headers"]?["expect"] == nil)
        let started = Date()
        let refused = try Curl.request(gw.url + "/echo", ["-H", "Expect: 100-continue", "--expect100-timeout", "10", "--data-binary", body])
        #expect(refused.status == 401)
        #expect(Date().timeIntervalSince(started) < 5, "refusal must come before the body is sent")
    }

    @Test func upstreamConnectionsAreKeptAliveAndReused() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: "[[route]]\npath = \"/\"\nupstream = \"\(up.url)\"\nauth = \"public\"\n", keys: Self.keys, extra: ["--threads", "1"])
        for _ in 0..<20 { _ = try Curl.request(gw.url + "/echo") }
        let connections = try Curl.request(up.url + "/connections").json?["connections"]?.integer ?? 99
        #expect(connections <= 3, "20 requests opened \(connections) upstream connections")
    }

    @Test func healthReadinessAndMetrics() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: "[[route]]\nname = \"api\"\npath = \"/\"\nupstream = \"\(up.url)\"\n", keys: Self.keys)
        let token = try GatewayServeTests.token()
        _ = try Curl.request(gw.url + "/echo", Curl.bearer(token))
        _ = try Curl.request(gw.url + "/echo", Curl.bearer(token))
        _ = try Curl.request(gw.url + "/echo", Curl.bearer("x.y.z"))
        #expect(try Curl.request(gw.url + "/healthz").status == 200)
        let ready = try Curl.request(gw.url + "/readyz")
        #expect(ready.status == 200 && ready.json?["status"]?.string == "ready")
        let metrics = try Curl.request(gw.url + "/metrics").body
        #expect(metrics.contains("gateway_requests_total{route=\"api\",status=\"200\"} 2"))
        #expect(metrics.contains("gateway_requests_total{route=\"api\",status=\"401\"} 1"))
        #expect(metrics.contains("gateway_token_verifications_total{outcome=\"valid\"} 2"))
        #expect(metrics.contains("gateway_token_verifications_total{outcome=\"malformed\"} 1"))
        #expect(metrics.contains("gateway_upstream_latency_seconds_bucket{route=\"api\""))
        #expect(metrics.contains("gateway_token_cache_hit_ratio 0.333"), "1 hit of 3 lookups (the malformed token is a miss too)")
        #expect(metrics.contains("gateway_open_connections"))
    }

    /// logrotate moves the access log away and sends SIGHUP: the next lines go to a new file.
    @Test func sighupOpensTheAccessLogAgain() throws {
        let up = try TestUpstream()
        let dir = CLI.temporaryDirectory()
        let config = "[server]\naccess_log = \"\(dir)/access.log\"\n[[route]]\npath = \"/a/\"\nupstream = \"\(up.url)\"\nauth = \"public\"\n"
        let gw = try TestGateway(config: config, keys: Self.keys, directory: dir)
        #expect(try Curl.request(gw.url + "/a/before").status == 200)
        #expect(rename(dir + "/access.log", dir + "/access.log.1") == 0)
        gw.child.signal(SIGHUP)
        var waits = 0
        while waits < 200, !gw.child.stderr.contains("reload: config and keys in service") {
            waits += 1
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(try Curl.request(gw.url + "/a/after").status == 200)
        Thread.sleep(forTimeInterval: 0.2)
        let old = (try? String(contentsOfFile: dir + "/access.log.1", encoding: .utf8)) ?? ""
        let new = (try? String(contentsOfFile: dir + "/access.log", encoding: .utf8)) ?? ""
        #expect(old.contains("/a/before") && !old.contains("/a/after"), "\(old)")
        #expect(new.contains("/a/after"), "a new file after the reload: \(new)")
    }

    @Test func sighupReloadsAndRefusesABadConfig() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: "[[route]]\npath = \"/a/\"\nupstream = \"\(up.url)\"\nauth = \"public\"\n", keys: Self.keys)
        #expect(try Curl.request(gw.url + "/b/x").status == 404)
        try TestGateway.text(config: "[[route]]\npath = \"/b/\"\nupstream = \"\(up.url)\"\nauth = \"public\"\n", keys: Self.keys)
            .write(toFile: gw.configPath, atomically: true, encoding: .utf8)
        gw.child.signal(SIGHUP)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try Curl.request(gw.url + "/b/x").status == 200)
        #expect(try Curl.request(gw.url + "/a/x").status == 404)
        try TestGateway.text(config: "[[route]]\npath = \"/c/\"\nupstrem = \"\(up.url)\"\n", keys: Self.keys)
            .write(toFile: gw.configPath, atomically: true, encoding: .utf8)
        gw.child.signal(SIGHUP)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(gw.child.stderr.contains("reload refused"))
        #expect(gw.child.stderr.contains("upstrem"))
        #expect(try Curl.request(gw.url + "/b/x").status == 200, "the old config keeps serving")
    }

    /// Keys are read again on SIGHUP; a folder left with no verification key (a rotation half
    /// done) is refused like a bad config, and the keys in service stay.
    @Test func sighupRefusesAKeyFolderLeftEmpty() throws {
        let up = try TestUpstream()
        let folder = CLI.temporaryDirectory() + "/keys"
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.keys)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for file in files { try FileManager.default.copyItem(atPath: Self.keys + "/" + file, toPath: folder + "/" + file) }
        let gw = try TestGateway(config: "[[route]]\npath = \"/\"\nupstream = \"\(up.url)\"\nauth = \"required\"\n", keys: folder)
        let token = try GatewayServeTests.token()
        #expect(try Curl.request(gw.url + "/x", Curl.bearer(token)).status == 200)
        let aside = CLI.temporaryDirectory()
        for file in files { try FileManager.default.moveItem(atPath: folder + "/" + file, toPath: aside + "/" + file) }
        gw.child.signal(SIGHUP)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(gw.child.stderr.contains("reload refused") && gw.child.stderr.contains("no verification keys left"), "\(gw.child.stderr.suffix(400))")
        #expect(try Curl.request(gw.url + "/x", Curl.bearer(token)).status == 200, "the keys in service stay")
        #expect(try Curl.request(gw.url + "/readyz").status == 200)
    }

    /// The runtime's store stops answering (PostgreSQL behind a forwarder that plays an
    /// outage): /readyz says so, session checks and logins are answered 503 within their
    /// deadlines instead of hanging, plain proxying goes on, and all recovers when it is back.
    @Test func runtimeOutageIsAnswered503AndNotReady() throws {
        guard let url = ProcessInfo.processInfo.environment["GATEWAY_POSTGRES_URL"], let target = URL(string: url), let pgPort = target.port else {
            Issue.record("GATEWAY_POSTGRES_URL is not set: run scripts/test.sh, which starts PostgreSQL (scripts/postgres.sh start)")
            return
        }
        // A database of its own: the store suite, running meanwhile, holds the migration lock
        // of the default one at times.
        let database = "gateway_outage_test"
        _ = try? CLI.run(["psql", url, "-q", "-c", "CREATE DATABASE \(database)"], executable: "/usr/bin/env")
        let forwarder = try Child("/usr/bin/env", ["python3", CLI.packageRoot.appendingPathComponent("Tests/Integration/tcp_forwarder.py").path, "127.0.0.1", "\(pgPort)"])
        let port = Int(try forwarder.waitForLine("forwarder listening on ")) ?? 0
        let up = try TestUpstream()
        let gw = try TestGateway(config: """
        [runtime]
        store = "postgres://\(target.user ?? "postgres")@127.0.0.1:\(port)/\(database)"

        [[route]]
        path = "/s/"
        upstream = "\(up.url)"
        session = "required"

        [[route]]
        path = "/up/"
        upstream = "\(up.url)"
        auth = "public"
        """, keys: Self.keys, startTimeout: 60)
        let token = try GatewayServeTests.token(session: UUID().uuidString.lowercased())
        func ready() throws -> (Int, String) { let r = try Curl.request(gw.url + "/readyz"); return (r.status, r.body) }
        #expect(try ready().0 == 200 && ready().1.contains(#""runtime":"ok""#))
        #expect(try Curl.request(gw.url + "/s/x", Curl.bearer(token)).status == 403, "no such session, answered by the store")

        forwarder.signal(SIGUSR1)
        var notReady = false
        for _ in 0..<40 where !notReady {
            Thread.sleep(forTimeInterval: 0.25)
            let (status, body) = try ready()
            notReady = status == 503 && body.contains(#""runtime":"unreachable""#)
        }
        let outageReadiness = try ready()
        #expect(notReady, "\(outageReadiness)")
        #expect(gw.child.stderr.contains("runtime store not answering"), "the reason is logged")
        var started = Date()
        let lookup = try Curl.request(gw.url + "/s/x", Curl.bearer(token))
        #expect(lookup.status == 503 && lookup.json?["reason"]?.string?.contains("did not answer within 3s") == true, "\(lookup.status) \(lookup.body)")
        #expect(Date().timeIntervalSince(started) < 6)
        started = Date()
        let login = try Curl.request(gw.url + "/auth/v1/token?grant_type=password", ["-X", "POST", "-H", "Content-Type: application/json",
                                                                                     "--data", #"{"email":"a@example.com","password":"secret-password"}"#], timeout: 30)
        #expect(login.status == 503 && login.json?["error_code"]?.string == "runtime_unavailable", "\(login.status) \(login.body)")
        #expect(Date().timeIntervalSince(started) < 13)
        let sessionAPI = try Curl.request(gw.url + "/api/session/\(UUID().uuidString.lowercased())", Curl.bearer(token), timeout: 30)
        #expect(sessionAPI.status == 503 && sessionAPI.json?["error"]?.string == "runtime_unavailable"
                && sessionAPI.json?["request_id"]?.string == sessionAPI.headers["x-request-id"],
                "the session API's own error shape, with its request_id: \(sessionAPI.status) \(sessionAPI.body)")
        #expect(try Curl.request(gw.url + "/up/x").status == 200, "proxying does not need the runtime")

        forwarder.signal(SIGUSR2)
        var back = false
        for _ in 0..<120 where !back {
            Thread.sleep(forTimeInterval: 0.25)
            back = try ready().0 == 200
        }
        let finalReadiness = try ready()
        #expect(back, "\(finalReadiness)")
        #expect(try Curl.request(gw.url + "/s/x", Curl.bearer(token)).status == 403)
    }

    @Test func sigtermDrainsInFlightRequestsThenExits() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: "[[route]]\npath = \"/\"\nupstream = \"\(up.url)\"\nauth = \"public\"\n", keys: Self.keys)
        nonisolated(unsafe) var slow: Curl.Response? = nil
        let request = Thread { slow = try? Curl.request(gw.url + "/slow?ms=1500") }
        request.start()
        Thread.sleep(forTimeInterval: 0.4)
        gw.child.signal(SIGTERM)
        Thread.sleep(forTimeInterval: 0.3)
        let late = try CLI.run(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", gw.url + "/echo"], executable: "/usr/bin/curl")
        #expect(late.stdout == "000", "no new connections while draining")
        let status = gw.child.waitForExit(timeout: 10)
        #expect(status == 0)
        while request.isExecuting || !request.isFinished { Thread.sleep(forTimeInterval: 0.05) }
        #expect(slow?.status == 200, "the in-flight request was answered")
    }

    /// A request still running when drain_timeout runs out is cut by the gateway, and logged so.
    @Test func drainTimeoutCutsAreLoggedAsTheGateways() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: "[server]\ndrain_timeout = \"1s\"\n[[route]]\npath = \"/\"\nupstream = \"\(up.url)\"\nauth = \"public\"\n", keys: Self.keys)
        let request = Thread { _ = try? Curl.request(gw.url + "/slow?ms=6000") }
        request.start()
        // In flight once the gateway holds its connection (beside this poll's own), and a moment.
        var polls = 0
        while polls < 100, !((try? Curl.request(gw.url + "/metrics"))?.body.contains("gateway_open_connections 2") ?? false) {
            polls += 1
            Thread.sleep(forTimeInterval: 0.05)
        }
        Thread.sleep(forTimeInterval: 0.3)
        gw.child.signal(SIGTERM)
        #expect(gw.child.waitForExit(timeout: 10) == 0)
        #expect(gw.child.stdout.contains("closed by the gateway: drain_timeout ran out") && gw.child.stdout.contains(#""status":"503""#), "\(gw.child.stdout.suffix(600))")
    }

    /// A download whose client reads slowly when SIGTERM comes: the drain lets every byte go
    /// out on both paths (the end of it was still queued when the exchange ended, and the
    /// idle connection was closed under it).
    @Test func drainLetsASlowDownloadFinish() throws {
        let up = try TestUpstream()
        let gw = try TestGateway(config: "[server]\ndrain_timeout = \"90s\"\n[[route]]\npath = \"/\"\nupstream = \"\(up.url)\"\nauth = \"public\"\n", keys: Self.keys)
        let size = 6_000_000
        let script = """
        import socket,sys,time
        got=[0,0]
        socks=[]
        for full in (0,1):
            s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            s.connect(("127.0.0.1",\(gw.port))); s.settimeout(20)
            extra=b"Transfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n" if full else b"\\r\\n"
            s.sendall(b"GET /fixed?bytes=\(size) HTTP/1.1\\r\\nHost: x\\r\\n" + extra)
            socks.append(s)
        sys.stdout.write("started\\n"); sys.stdout.flush()
        done=[False,False]
        while not all(done):
            for i,s in enumerate(socks):
                if done[i]: continue
                try:
                    chunk=s.recv(16384)
                except socket.timeout:
                    done[i]=True; continue
                if not chunk: done[i]=True
                got[i]+=len(chunk)
            time.sleep(0.01)
        print("%d %d" % (got[0], got[1]))
        """
        let reader = try Child("/usr/bin/env", ["python3", "-c", script])
        _ = try reader.waitForLine("started")
        Thread.sleep(forTimeInterval: 0.5)
        gw.child.signal(SIGTERM)
        #expect(gw.child.waitForExit(timeout: 30) == 0)
        _ = reader.waitForExit(timeout: 30)
        let counts = reader.stdout.split(separator: "\n").last.map { $0.split(separator: " ").compactMap { Int($0) } } ?? []
        // Each answer is its head plus the body: at least the body's size arrived on both.
        #expect(counts.count == 2 && counts.allSatisfy { $0 > size }, "bytes received (direct, full): \(counts)")
    }
}
