import Foundation
import JOSE
import Testing

/// Route policy holds whatever the upstream makes of a request: the findings of an outside
/// audit (HEAD past a GET-only route, `;` path parameters, a Host with its trailing dot,
/// method-override headers), each sent on the direct path and on the full path.
@Suite(.serialized) struct PolicyBypassTests {
    static let keys = CLITests.sharedKeys

    /// How a request reaches the full path: a Connection header naming another header makes
    /// the direct path hand it over.
    enum Path: String, CaseIterable { case direct, full }

    struct Answer {
        let status: Int
        let body: String
        var json: JSONNode? { try? JSONDocument.parse(body).value }
        /// The upstream that answered (the echo's "name"), or nil for the gateway's own answer.
        var upstream: String? { json?["name"]?.string }
        func header(_ name: String) -> String? { json?["headers"]?[name]?.string }
    }

    static func send(_ gw: TestGateway, _ path: Path, _ method: String, _ target: String, host: String = "x", headers: [String] = []) throws -> Answer {
        var lines = ["\(method) \(target) HTTP/1.1", "Host: \(host)"] + headers
        if path == .full { lines.append("Connection: keep-alive, x-hand-over") }
        // One request, its answer read whole (by Content-Length; HEAD has no body).
        let script = """
        import re,socket,sys
        s=socket.create_connection(("127.0.0.1",\(gw.port)));s.settimeout(10)
        s.sendall(sys.stdin.buffer.read())
        data=b""
        while b"\\r\\n\\r\\n" not in data:
            chunk=s.recv(65536)
            if not chunk: break
            data+=chunk
        head,_,body=data.partition(b"\\r\\n\\r\\n")
        m=re.search(rb"(?i)\\r\\ncontent-length: *([0-9]+)",head)
        n=int(m.group(1)) if m and not \(method == "HEAD" ? "True" : "False") else 0
        while len(body)<n:
            chunk=s.recv(65536)
            if not chunk: break
            body+=chunk
        sys.stdout.write(head[9:12].decode("latin-1")+"\\n"+body.decode("latin-1"))
        """
        let out = try CLI.run(["python3", "-c", script], stdin: Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8), executable: "/usr/bin/env").stdout
        let parts = out.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        return Answer(status: Int(parts.first ?? "") ?? 0, body: parts.count > 1 ? String(parts[1]) : "")
    }

    static func gateway(_ admin: TestUpstream, _ open: TestUpstream) throws -> TestGateway {
        try TestGateway(config: """
        [[route]]
        path = "/admin/"
        methods = ["GET"]
        upstream = "\(admin.url)"
        auth = "required"

        [[route]]
        host = "secure.example"
        path = "/"
        upstream = "\(admin.url)"
        auth = "required"

        [[route]]
        path = "/override/"
        upstream = "\(open.url)"
        auth = "public"
        allow_method_override = ["X-HTTP-Method-Override"]

        [[route]]
        path = "/"
        upstream = "\(open.url)"
        auth = "public"
        """, keys: keys)
    }

    @Test func headIsAdmittedOnlyWhereGetIs() throws {
        let admin = try TestUpstream(name: "admin"), open = try TestUpstream(name: "open")
        let gw = try Self.gateway(admin, open)
        for path in Path.allCases {
            // Without a token HEAD is refused like GET (it used to fall through to the public route).
            #expect(try Self.send(gw, path, "HEAD", "/admin/x").status == 401, "\(path)")
            #expect(try Self.send(gw, path, "GET", "/admin/x").status == 401, "\(path)")
            let token = try GatewayServeTests.token()
            #expect(try Self.send(gw, path, "GET", "/admin/echo", headers: ["Authorization: Bearer \(token)"]).upstream == "admin", "\(path)")
            // A method the route does not list still goes on to the next route.
            #expect(try Self.send(gw, path, "POST", "/admin/echo").upstream == "open", "\(path)")
        }
        // HEAD alone is a config error with its reason.
        let dir = CLI.temporaryDirectory()
        try TestGateway.text(config: "[[route]]\npath = \"/\"\nmethods = [\"HEAD\"]\nupstream = \"\(open.url)\"\n", keys: Self.keys)
            .write(toFile: dir + "/gateway.conf", atomically: true, encoding: .utf8)
        let check = try CLI.run(["config", "check", dir + "/gateway.conf"])
        #expect(check.status != 0)
        #expect((check.stdout + check.stderr).contains("HEAD is admitted wherever GET is"), "\(check.stdout)")
    }

    @Test func pathParametersAreRefused() throws {
        let admin = try TestUpstream(name: "admin"), open = try TestUpstream(name: "open")
        let gw = try Self.gateway(admin, open)
        for path in Path.allCases {
            for target in ["/public/..;/admin/x", "/admin;x=1/x", "/a;b", "/public/x;jsessionid=1"] {
                let answer = try Self.send(gw, path, "GET", target)
                #expect(answer.status == 400, "\(path) \(target): \(answer.status) \(answer.body)")
                #expect(answer.json?["reason"]?.string?.contains("path parameters") == true, "\(path) \(target): \(answer.body)")
            }
            // In the query, ';' is only data.
            #expect(try Self.send(gw, path, "GET", "/echo?a=1;b=2").upstream == "open", "\(path)")
        }
        #expect(gw.child.process.isRunning)
    }

    @Test func hostWithTrailingDotMatchesTheNameWithout() throws {
        let admin = try TestUpstream(name: "admin"), open = try TestUpstream(name: "open")
        let gw = try Self.gateway(admin, open)
        let token = try GatewayServeTests.token()
        for path in Path.allCases {
            for host in ["secure.example.", "SECURE.example.:8443", "secure.example"] {
                #expect(try Self.send(gw, path, "GET", "/echo", host: host).status == 401, "\(path) \(host)")
                let answer = try Self.send(gw, path, "GET", "/echo", host: host, headers: ["Authorization: Bearer \(token)"])
                #expect(answer.upstream == "admin", "\(path) \(host): \(answer.body)")
                let forwarded = answer.header("host") ?? ""
                #expect(!forwarded.lowercased().hasPrefix("secure.example."), "\(path) \(host): upstream saw Host \(forwarded)")
                #expect(!(answer.header("x-forwarded-host") ?? "").contains("example."), "\(path) \(host)")
            }
            #expect(try Self.send(gw, path, "GET", "/echo", host: "other.example.").upstream == "open", "\(path)")
        }
    }

    @Test func methodOverrideHeadersAreDropped() throws {
        let admin = try TestUpstream(name: "admin"), open = try TestUpstream(name: "open")
        let gw = try Self.gateway(admin, open)
        let overrides = ["X-HTTP-Method-Override: DELETE", "X-HTTP-Method: DELETE", "X-Method-Override: DELETE",
                         "x_http_method_override: DELETE", "X-Http-Method-OVERRIDE: PUT"]
        for path in Path.allCases {
            let plain = try Self.send(gw, path, "GET", "/echo", headers: overrides)
            #expect(plain.upstream == "open", "\(path): \(plain.body)")
            for name in ["x-http-method-override", "x-http-method", "x-method-override", "x_http_method_override"] {
                #expect(plain.header(name) == nil, "\(path): \(name) reached the upstream")
            }
            // A route that allows one by name passes that one (dash spelling only), not the others.
            let allowed = try Self.send(gw, path, "GET", "/override/echo", headers: overrides)
            #expect(allowed.header("x-http-method-override") != nil, "\(path): \(allowed.body)")
            #expect(allowed.header("x-http-method") == nil && allowed.header("x-method-override") == nil && allowed.header("x_http_method_override") == nil,
                    "\(path): \(allowed.body)")
        }
    }
}
