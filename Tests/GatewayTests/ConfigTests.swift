import Gateway
import Runtime
import Testing

@Suite struct ConfigTests {
    @Test func fullConfigParses() throws {
        let config = try GatewayConfig.parse("""
        [server]
        listen = "[::1]:9443"
        threads = 2
        max_body_bytes = 1048576
        drain_timeout = "10s"
        access_log = "off"

        [auth]
        issuer = ["https://a/auth/v1", "https://b/auth/v1"]
        audience = "authenticated"
        leeway = "30s"
        token_sources = ["authorization", "cookie:sb-access-token", "query:access_token"]

        [identity]
        tenant_claim = "app_metadata.org"
        strip = ["X-Internal-Admin"]

        [[route]]
        name = "api"
        path = "/api/"
        host = "API.example.com"
        methods = ["get", "POST"]
        strip_prefix = true
        upstream = ["http://127.0.0.1:9000/base", "http://[::1]:9001"]
        auth = "required"
        require = { role = ["authenticated"], aal = "aal2", claims = { "app_metadata.org" = "acme" } }
        session = "required"
        timeouts = { connect = "250ms", first_byte = "5s", idle = "1m" }
        """, baseDirectory: "/etc/gateway")
        #expect(config.server.host == "::1" && config.server.port == 9443 && config.server.threads == 2)
        #expect(config.auth.issuers.count == 2 && config.auth.leeway == 30)
        #expect(config.auth.keys == "/etc/gateway/Keys")
        #expect(config.auth.tokenSources == [.authorization, .cookie("sb-access-token"), .query("access_token")])
        #expect(config.identity.namespace.contains("x-internal-admin"))
        let route = try #require(config.routes.first)
        #expect(route.match == .prefix("/api/") && route.host == "api.example.com" && route.methods == ["GET", "HEAD", "POST"])
        #expect(route.upstreams.map(\.description) == ["http://127.0.0.1:9000/base", "http://[::1]:9001"])
        #expect(route.connectTimeout == 0.25 && route.idleTimeout == 60 && route.session == .required)
        #expect(route.conditions.first?.path == "app_metadata.org")
    }

    @Test func everyMistakeIsReportedWithItsLine() throws {
        let text = """
        [server]
        listen = "nowhere"

        [auth]
        token_sources = ["smoke-signals"]

        [[route]]
        path = "api/"
        upstream = "https://tls.example.com"
        auth = "sometimes"

        [[route]]
        exact = "/x"
        upstream = "http://127.0.0.1:1"
        session = "required"
        auth = "public"
        timeouts = { connect = "soon" }
        """
        #expect {
            try GatewayConfig.parse(text)
        } throws: { error in
            let issues = (error as? ConfigError)?.issues ?? []
            let lines = issues.map { "\($0)" }
            let expected = [
                "line 2: server.listen", "line 5: auth.token_sources", "line 8: route[0].path", "line 9: route[0].upstream",
                "line 10: route[0].auth", "line 15: route[1].session", "line 17: route[1].timeouts.connect",
            ]
            return expected.allSatisfy { prefix in lines.contains { $0.hasPrefix(prefix) } } && issues.count == expected.count
        }
    }

    /// Limits out of range are mistakes with their line and the range; the edges are accepted.
    /// (max_header_bytes stays below NIOHTTP1's own 80 KiB, where a head would get its error.)
    @Test func limitsOutOfRangeAreReported() throws {
        let text = """
        [server]
        max_header_bytes = 70000
        threads = 2000
        """
        #expect {
            try GatewayConfig.parse(text)
        } throws: { error in
            let lines = ((error as? ConfigError)?.issues ?? []).map { "\($0)" }
            return lines.count == 2 && lines.contains { $0.hasPrefix("line 2: server.max_header_bytes") && $0.contains("65536") }
                && lines.contains { $0.hasPrefix("line 3: server.threads") }
        }
        #expect(throws: (any Error).self) { try GatewayConfig.parse("[server]\nmax_header_bytes = 1023\n") }
        #expect(try GatewayConfig.parse("[server]\nmax_header_bytes = 65536\n").server.maxHeaderBytes == 65_536)
        #expect(try GatewayConfig.parse("[server]\nmax_header_bytes = 1024\n").server.maxHeaderBytes == 1024)
    }

    /// `session_limit`: absent or 0 is no limit (Supabase Auth's default); a limit evicts the
    /// least recently used session unless `session_limit_mode = "refuse"`; mistakes name the
    /// choices.
    @Test func sessionLimitAndItsMode() throws {
        #expect(try GatewayConfig.parse("").runtime.sessionLimit == .unlimited)
        #expect(try GatewayConfig.parse("[runtime]\nsession_limit = 0\n").runtime.sessionLimit == .unlimited)
        #expect(try GatewayConfig.parse("[runtime]\nsession_limit = 3\n").runtime.sessionLimit == .evict(beyond: 3))
        #expect(try GatewayConfig.parse("[runtime]\nsession_limit = 3\nsession_limit_mode = \"refuse\"\n").runtime.sessionLimit == .refuse(beyond: 3))
        #expect(try GatewayConfig.parse("[runtime]\nsession_limit_mode = \"evict\"\n").runtime.sessionLimit == .unlimited)
        for (text, expected) in [
            ("[runtime]\nsession_limit = -1\n", "line 2: runtime.session_limit: expected 0...1000000 (0 for no limit), found -1"),
            ("[runtime]\nsession_limit = 2.5\n", "line 2: runtime.session_limit: expected an integer 0...1000000 (0 for no limit)"),
            ("[runtime]\nsession_limit = 3\nsession_limit_mode = \"oldest\"\n", "line 3: runtime.session_limit_mode: expected \"evict\""),
        ] {
            #expect {
                try GatewayConfig.parse(text)
            } throws: { error in
                let lines = ((error as? ConfigError)?.issues ?? []).map { "\($0)" }
                return lines.count == 1 && lines[0].hasPrefix(expected)
            }
        }
    }

    /// Values a config check must refuse, or the server would crash or refuse every request
    /// with them: each reported with its line.
    @Test(arguments: [
        ("[server]\nidle_timeout = \"1e12s\"\n", "line 2: server.idle_timeout"),
        ("[server]\nidle_timeout = inf\n", "line 2: server.idle_timeout"),
        ("[server]\nidle_timeout = \"0s\"\n", "line 2: server.idle_timeout"),
        ("[server]\ndrain_timeout = 1e300\n", "line 2: server.drain_timeout"),
        ("[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\ntimeouts = { connect = \"0s\" }\n", "line 4: route[0].timeouts.connect"),
        ("[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\ntimeouts = { idle = \"1e12s\" }\n", "line 4: route[0].timeouts.idle"),
        ("[identity]\nuser_id_header = \"X User: Id\"\n", "line 2: identity.user_id_header"),
        ("[identity]\nstrip = [\"X-Ok\", \"bad name\"]\n", "line 2: identity.strip"),
        ("[auth]\naudience = []\n", "line 2: auth.audience"),
        ("[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"required\"\nrequire = { role = [] }\n", "line 5: route[0].require.role"),
        ("[[route]]\npath = \"/\"\nhost = \"Example.com:8080\"\nupstream = \"http://127.0.0.1:1\"\n", "line 3: route[0].host"),
        ("[[route]]\npath = \"/\"\nupstream = \"http://[::1:80\"\n", "line 3: route[0].upstream"),
        ("[[route]]\npath = \"/\"\nupstream = \"http://a b:80\"\n", "line 3: route[0].upstream"),
        ("[server]\nthreads = 1\n\n[[rout]]\npath = \"/\"\n", "line 4: rout"),
        ("[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"optional\"\nrequire = { role = [\"admin\"] }\n", "line 5: route[0].require"),
    ])
    func valuesThatWouldBreakServingAreRefused(text: String, expected: String) throws {
        #expect {
            try GatewayConfig.parse(text)
        } throws: { error in
            let lines = ((error as? ConfigError)?.issues ?? []).map { "\($0)" }
            return lines.count == 1 && lines[0].hasPrefix(expected)
        }
    }

    @Test func namesAndHostsAreReadAsTheProxyCompares() throws {
        let config = try GatewayConfig.parse("""
        [identity]
        strip = ["X_Internal_Flag"]

        [[route]]
        path = "/"
        host = "API.Example.com"
        upstream = "http://[::1]:8080/base"
        timeouts = { connect = "250ms", idle = "5m" }
        """)
        #expect(config.identity.namespace.contains("x-internal-flag"))
        #expect(config.routes[0].host == "api.example.com")
        #expect(config.routes[0].upstreams.first?.host == "::1" && config.routes[0].upstreams.first?.basePath == "/base")
        #expect(config.routes[0].connectTimeout == 0.25 && config.routes[0].idleTimeout == 300)
    }

    @Test func routerMatchesInFileOrder() throws {
        let config = try GatewayConfig.parse("""
        [[route]]
        exact = "/api/health"
        upstream = "http://127.0.0.1:1"
        auth = "public"
        [[route]]
        path = "/api/"
        methods = ["GET"]
        upstream = "http://127.0.0.1:2"
        [[route]]
        path = "/api/"
        host = "admin.local"
        upstream = "http://127.0.0.1:3"
        [[route]]
        path = "/"
        upstream = "http://127.0.0.1:4/root/"
        strip_prefix = true
        """)
        let router = Router(routes: config.routes)
        #expect(router.match(method: "GET", host: nil, path: "/api/health")?.upstreams[0].port == 1)
        #expect(router.match(method: "GET", host: nil, path: "/api/x")?.upstreams[0].port == 2)
        #expect(router.match(method: "POST", host: "admin.local", path: "/api/x")?.upstreams[0].port == 3)
        #expect(router.match(method: "POST", host: "other", path: "/api/x")?.upstreams[0].port == 4)
        #expect(router.match(method: "GET", host: nil, path: "/api")?.upstreams[0].port == 2, "the prefix without its slash")
        #expect(router.match(method: "GET", host: nil, path: "/apix")?.upstreams[0].port == 4, "prefixes match whole segments")
        let root = config.routes[3]
        #expect(Router.upstreamURI(route: root, upstream: root.upstreams[0], path: "/a/b", query: "x=1") == "/root/a/b?x=1")
    }

    @Test func routeNamesAreUnique() {
        #expect(throws: ConfigError.self) {
            try GatewayConfig.parse("[[route]]\nname = \"pub\"\npath = \"/a/\"\nupstream = \"http://127.0.0.1:1\"\n[[route]]\nname = \"pub\"\npath = \"/b/\"\nupstream = \"http://127.0.0.1:1\"\n")
        }
    }

    @Test func corsSectionIsChecked() throws {
        let config = try GatewayConfig.parse("[cors]\nallow_origins = [\"https://App.Example.com\", \"http://[::1]:3000\"]\nmax_age = \"1h\"\n")
        #expect(config.cors?.allowOrigins == ["https://app.example.com", "http://[::1]:3000"] && config.cors?.maxAge == 3600)
        #expect(try GatewayConfig.parse("").cors == nil, "off unless configured")
        func issues(_ text: String) -> String {
            do { _ = try GatewayConfig.parse(text); return "" } catch { return error.issues.map { "\($0.path): \($0.message)" }.joined(separator: " | ") }
        }
        #expect(issues("[cors]\nallow_origins = [\"https://app.example.com/\"]\n").contains("an origin has no path: write https://app.example.com"))
        #expect(issues("[cors]\nallow_origins = [\"app.example.com\"]\n").contains("expected scheme://host[:port]"))
        #expect(issues("[cors]\nallow_origins = \"*\"\nallow_credentials = true\n").contains("cannot be true with allow_origins = \"*\""))
        #expect(issues("[cors]\nallow_credentials = true\n").contains("name at least one origin"))
        #expect(issues("[cors]\nallow_origins = \"*\"\nallow_methods = [\"get\"]\n").contains("not an upper-case method name"))
        #expect(issues("[cors]\nallow_origins = \"*\"\nallow_headers = [\"x y\"]\n").contains("not a header name"))
        #expect(issues("[cors]\nallow_origins = \"*\"\nmax_age = \"2d\"\n").hasPrefix("cors.max_age: expected"))
        #expect(issues("[cors]\nallow_origin = \"*\"\n").contains("did you mean \"allow_origins\""))
    }

    @Test(arguments: ["/public/../admin/x", "/public/%2e%2e/admin", "/a/./b", "/a%2Fb", "/a\\b", "/x/%2E%2e/y", "/..", "//admin/x", "/%61dmin/x", "/a%zz", "/a%+1", "/a%-1/b", "/a%2", "/public/..;/admin/x", "/admin;x=1/x", "/a;b"])
    func unsafePathsAreRefused(path: String) {
        #expect(Router.unsafePath(path) != nil, "\(path)")
    }

    @Test(arguments: ["/", "/api/v1/items", "/a..b/c", "/file.txt", "/.well-known/jwks.json", "/a/b%20c"])
    func ordinaryPathsPass(path: String) {
        #expect(Router.unsafePath(path) == nil, "\(path)")
    }
}
