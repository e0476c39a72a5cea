import Foundation
import JOSE
import Testing

/// The CLI as a user meets it: the built binary, its output and its exit status.
@Suite(.serialized) struct CLITests {
    static let issuer = "http://127.0.0.1:8080/auth/v1"
    /// One key folder for the suite: generating RSA keys for every test would dominate its time.
    static let sharedKeys = try! CLI.keyFolder()
    var keys: String { Self.sharedKeys }

    func mint(_ extra: [String] = [], kid: String = "es256", alg: String = "ES256") throws -> String {
        let result = try CLI.run(["token", "mint", "--keys", keys, "--kid", kid, "--alg", alg, "--issuer", Self.issuer,
                                  "--sub", "3f1c2a4e-7b6d-4e8f-9a0b-1c2d3e4f5a6b", "--session-id", "8d7c6b5a-4f3e-4d2c-8b1a-0f9e8d7c6b5a"] + extra)
        #expect(result.status == 0, "mint failed: \(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func verify(_ token: String?, _ extra: [String] = [], stdin: [UInt8]? = nil) throws -> CLI.Output {
        try CLI.run(["token", "verify", "--keys", keys, "--issuer", Self.issuer, "--audience", "authenticated"] + extra + (token.map { [$0] } ?? []), stdin: stdin)
    }

    @Test(arguments: ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"])
    func mintThenVerifyEveryAlgorithm(alg: String) throws {
        let kid = switch alg {
        case "HS256", "HS384", "HS512": alg.lowercased()
        case "ES256", "ES384", "ES512": alg.lowercased()
        case "EdDSA": "ed25519"
        default: "rsa"
        }
        let token = try mint(kid: kid, alg: alg)
        let result = try verify(token)
        #expect(result.status == 0, "\(alg): \(result.stderr)")
        #expect(result.stdout.isEmpty && result.stderr.isEmpty, "verify must be silent when valid")
    }

    @Test func verifyExitCodesAndReasons() throws {
        let token = try mint()
        #expect(try verify(token).status == 0)

        let wrongIssuer = try CLI.run(["token", "verify", "--keys", keys, "--issuer", "https://other", token])
        #expect(wrongIssuer.status == 1)
        #expect(wrongIssuer.stderrLines.count == 1)
        #expect(wrongIssuer.stderr.hasPrefix("rejected: wrong_issuer:"))

        let wrongAudience = try CLI.run(["token", "verify", "--keys", keys, "--audience", "service", token])
        #expect(wrongAudience.status == 1 && wrongAudience.stderr.contains("wrong_audience"))

        var forged = Array(token.utf8)
        forged[forged.count - 3] = forged[forged.count - 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let bad = try verify(String(decoding: forged, as: UTF8.self))
        #expect(bad.status == 1 && bad.stderr.contains("bad_signature"))

        let expired = try mint(["--ttl", "1s"])
        Thread.sleep(forTimeInterval: 2.2)
        let late = try verify(expired, ["--leeway", "0"])
        #expect(late.status == 1 && late.stderr.contains("expired"), "\(late.stderr)")
        #expect(try verify(expired, ["--leeway", "1m"]).status == 0, "leeway must be honoured")

        let usage = try CLI.run(["token", "verify", "--no-such-flag", token])
        #expect(usage.status == 2)
        let missingKeys = try CLI.run(["token", "verify", "--keys", "/nonexistent/keys", token])
        #expect(missingKeys.status == 2 && missingKeys.stderr.contains("/nonexistent/keys"))
        let badLeeway = try CLI.run(["token", "verify", "--keys", keys, "--leeway", "soon", token])
        #expect(badLeeway.status == 2)
    }

    @Test func readsTheTokenFromStandardInput() throws {
        let token = try mint()
        #expect(try verify("-", stdin: Array((token + "\n").utf8)).status == 0)
        #expect(try verify(nil, stdin: Array(token.utf8)).status == 0)
    }

    /// One hostile input, named so test output shows the name and not a megabyte of bytes.
    struct BadInput: CustomTestStringConvertible, Sendable {
        let name: String
        let bytes: [UInt8]
        var testDescription: String { name }
    }

    /// Bad input never crashes or hangs: each is exit 1 with one line naming the reason.
    @Test(arguments: ([
        ("empty", [UInt8]()),
        ("huge", [UInt8](repeating: UInt8(ascii: "a"), count: 1_048_576)),
        ("deeply nested header", Array((Base64URL.encode(Array(("{\"alg\":\"HS256\",\"x\":" + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "}").utf8)) + ".e30.c2ln").utf8)),
        ("invalid UTF-8", [0xC3, 0x28, 0x2E, 0xFF, 0xFE, 0x2E, 0x80]),
        ("NUL bytes", Array("eyJhbGciOiJIUzI1NiJ9".utf8) + [0] + Array(".e30.c2ln".utf8)),
        ("four dots", Array("a.b.c.d.e".utf8)),
        ("alg none", Array((Base64URL.encode(Array("{\"alg\":\"none\"}".utf8)) + "." + Base64URL.encode(Array("{}".utf8)) + ".").utf8)),
        ("JSON garbage header", Array((Base64URL.encode(Array("{\"alg\":".utf8)) + ".e30.c2ln").utf8)),
    ] as [(String, [UInt8])]).map { BadInput(name: $0.0, bytes: $0.1) })
    func badInputIsRejectedWithOneLine(_ bad: BadInput) throws {
        let name = bad.name, input = bad.bytes
        let started = Date()
        let result = try verify("-", stdin: input)
        #expect(result.status == 1, "\(name): status \(result.status), stderr \(result.stderr)")
        #expect(result.stderrLines.count == 1, "\(name): \(result.stderr)")
        #expect(result.stderr.hasPrefix("rejected: "), "\(name): \(result.stderr)")
        #expect(Date().timeIntervalSince(started) < 10, "\(name) took too long")
    }

    @Test func inspectShowsVerdictKeyAndTimes() throws {
        let token = try mint(["--ttl", "1h", "--claim", "app_metadata.tenant_id=acme"])
        let text = try CLI.run(["token", "inspect", "--keys", keys, token])
        #expect(text.status == 0)
        #expect(text.stdout.contains("Verdict  VALID"))
        #expect(text.stdout.contains("kid \"es256\""))
        #expect(text.stdout.contains("expires in 59m") || text.stdout.contains("expires in 1h"))
        #expect(text.stdout.contains("tenant       acme"))

        let json = try CLI.run(["token", "inspect", "--json", "--keys", keys, token])
        #expect(json.status == 0)
        let report = try JSONDocument.parse(json.stdout).value
        #expect(report["valid"]?.bool == true)
        #expect(report["key"]?["kid"]?.string == "es256")
        #expect(report["claims"]?["session_id"]?.string == "8d7c6b5a-4f3e-4d2c-8b1a-0f9e8d7c6b5a")
        #expect(report["times"]?["exp"]?["utc"]?.string?.hasSuffix("Z") == true)

        let rejected = try CLI.run(["token", "inspect", "--json", "--keys", keys, "--issuer", "https://elsewhere", token])
        #expect(rejected.status == 1)
        let verdict = try JSONDocument.parse(rejected.stdout).value
        #expect(verdict["valid"]?.bool == false)
        #expect(verdict["reason"]?.string == "wrong_issuer")
        #expect(verdict["claims"]?["sub"]?.string != nil, "a refused token is still shown")

        let unverified = try CLI.run(["token", "inspect", "--no-verify", token])
        #expect(unverified.status == 0)
        #expect(unverified.stdout.contains("NOT VERIFIED"))
        #expect(unverified.stderr.contains("nothing was verified"))
    }

    @Test func keysGenerateWritesPrivateKeysWithMode0600AndPublishesJWKS() throws {
        let attributes = try FileManager.default.attributesOfItem(atPath: keys + "/es256.pem")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let secret = try FileManager.default.attributesOfItem(atPath: keys + "/hs256.secret")
        #expect((secret[.posixPermissions] as? Int) == 0o600)
        let jwks = try JSONDocument.parse(Array(try Data(contentsOf: URL(fileURLWithPath: keys + "/jwks.json")))).value
        let published = jwks["keys"]?.array ?? []
        #expect(published.count >= 5, "EC x3, RSA, Ed25519; HMAC secrets are never published")
        #expect(published.allSatisfy { $0["d"] == nil && $0["k"] == nil }, "no private members in jwks.json")

        let again = try CLI.run(["keys", "generate", "--alg", "ES256", "--kid", "es256", "--dir", keys])
        #expect(published.count == 5)
        #expect(again.status == 2 && again.stderr.contains("already exists"))

        let list = try CLI.run(["keys", "list", "--keys", keys])
        #expect(list.status == 0)
        #expect(list.stdout.contains("es256") && list.stdout.contains("EC P-256") && list.stdout.contains("verify+sign"))
    }

    /// A secret file's bytes are the secret exactly: a trailing newline is part of it.
    @Test func secretFilesAreUsedExactlyAsStored() throws {
        let dir = CLI.temporaryDirectory()
        let secret = String(repeating: "s", count: 40)
        try Data((secret + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/nl.secret"))
        let token = try CLI.run(["token", "mint", "--secret-file", dir + "/nl.secret", "--sub", "u"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let header = try JSONDocument.parse(Base64URL.decode(token.split(separator: ".")[0])!).value
        #expect(header["kid"]?.string == "nl", "kid is the file name without .secret")
        #expect(try CLI.run(["token", "verify", "--secret-file", dir + "/nl.secret", token]).status == 0)
        try Data(secret.utf8).write(to: URL(fileURLWithPath: dir + "/nl2.secret"))
        let trimmed = try CLI.run(["token", "verify", "--secret-file", dir + "/nl2.secret", token])
        #expect(trimmed.status == 1, "a secret without the newline is a different secret")
    }

    @Test func singleFileKeySources() throws {
        let token = try mint()
        #expect(try CLI.run(["token", "verify", "--pem", keys + "/es256.pem", token]).status == 0)
        #expect(try CLI.run(["token", "verify", "--jwks", keys + "/jwks.json", token]).status == 0)
        let wrong = try CLI.run(["token", "verify", "--jwks", keys + "/jwks.json", try mint(kid: "hs256", alg: "HS256")])
        #expect(wrong.status == 1 && wrong.stderr.contains("unknown_kid"))
    }

    @Test func configSuppliesKeysAndPolicy() throws {
        let dir = CLI.temporaryDirectory()
        try """
        [auth]
        issuer = "\(Self.issuer)"
        audience = ["authenticated"]
        keys = "\(keys)"
        leeway = "30s"
        """.write(toFile: dir + "/gateway.conf", atomically: true, encoding: .utf8)
        let token = try mint()
        #expect(try CLI.run(["token", "verify", token], directory: dir).status == 0)
        #expect(try CLI.run(["token", "verify", "--issuer", "x", token], directory: dir).status == 1)
    }

    @Test func configCheckReportsEveryMistakeWithItsLine() throws {
        let dir = CLI.temporaryDirectory()
        try """
        [server]
        listen = "127.0.0.1"
        threads = "two"

        [auth]
        issuer = "http://x"
        leway = "60s"
        """.write(toFile: dir + "/bad.conf", atomically: true, encoding: .utf8)
        let result = try CLI.run(["config", "check", dir + "/bad.conf"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("line 2: server.listen"))
        #expect(result.stdout.contains("line 3: server.threads: expected an integer"))
        #expect(result.stdout.contains("line 7: auth.leway: unknown key (did you mean \"leeway\"?)"))
    }

    /// A key folder that is not there (a typo: serve would make a development key in it and
    /// refuse every real token) and an access log that cannot be written are found by
    /// `config check`, and `serve` will not start with them.
    @Test func configCheckAndServeRefuseFilesThatAreNotThere() throws {
        let dir = CLI.temporaryDirectory()
        try """
        [server]
        access_log = "/nonexistent/dir/access.log"

        [auth]
        keys = "\(dir)/keyz"
        """.write(toFile: dir + "/typo.conf", atomically: true, encoding: .utf8)
        let check = try CLI.run(["config", "check", dir + "/typo.conf"])
        #expect(check.status == 1)
        #expect(check.stdout.contains("[auth] keys: the folder \(dir)/keyz does not exist"), "\(check.stdout)")
        #expect(check.stdout.contains("[server] access_log: cannot create /nonexistent/dir/access.log"), "\(check.stdout)")
        let serve = try CLI.run(["serve", "--config", dir + "/typo.conf", "--listen", "127.0.0.1:0"])
        #expect(serve.status != 0 && serve.stderr.contains("does not exist"), "\(serve.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/keyz"), "no key folder was made")
        // The default folder name is still made on first run, with a development key.
        try "[auth]\nkeys = \"Keys\"\n".write(toFile: dir + "/fresh.conf", atomically: true, encoding: .utf8)
        #expect(try CLI.run(["config", "check", dir + "/fresh.conf"]).status == 0)
    }
}
