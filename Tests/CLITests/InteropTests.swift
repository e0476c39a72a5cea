import Foundation
import JOSE
import Testing

/// Tokens cross between this gateway and PyJWT / jwcrypto (Tests/Interop/interop.py) for all
/// 13 algorithms, both ways. The libraries come from Tests/Interop/requirements.txt, which
/// scripts/test.sh installs; without them this suite fails and says so.
@Suite(.serialized) struct InteropTests {
    static let script = CLI.packageRoot.appendingPathComponent("Tests/Interop/interop.py").path
    static let algorithms = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
    static let issuer = "http://127.0.0.1:8080/auth/v1"

    /// The interop key layout (hs256.secret ... rsa.pem ... ed25519.pem), made by this gateway.
    static let keys: String = try! CLI.keyFolder()

    static func kid(_ alg: String) -> String {
        switch alg {
        case "HS256", "HS384", "HS512", "ES256", "ES384", "ES512": alg.lowercased()
        case "EdDSA": "ed25519"
        default: "rsa"
        }
    }

    static func python(_ arguments: [String]) throws -> CLI.Output {
        try CLI.run([script] + arguments, executable: "/usr/bin/env", prefixPython: true)
    }

    @Test func pythonLibrariesArePresent() throws {
        let check = try CLI.run(["python3", "-c", "import jwt, jwcrypto, cryptography"], executable: "/usr/bin/env")
        #expect(check.status == 0, "PyJWT/jwcrypto missing: pip install -r Tests/Interop/requirements.txt (scripts/test.sh does it)\n\(check.stderr)")
    }

    @Test(arguments: ["pyjwt", "jwcrypto"])
    func theirTokensVerifyHere(lib: String) throws {
        let out = CLI.temporaryDirectory() + "/\(lib).json"
        let signed = try Self.python(["sign", "--lib", lib, "--keys", Self.keys, "--out", out, "--iss", Self.issuer])
        try #require(signed.status == 0, "\(lib) sign failed: \(signed.stderr)")
        let tokens = try JSONDocument.parse(Array(try Data(contentsOf: URL(fileURLWithPath: out)))).value
        for alg in Self.algorithms {
            let entry = try #require(tokens[alg], "\(lib) produced no \(alg) token")
            let token = try #require(entry["token"]?.string)
            let result = try CLI.run(["token", "inspect", "--json", "--keys", Self.keys, "--issuer", Self.issuer, "--audience", "authenticated", token])
            #expect(result.status == 0, "\(lib) \(alg) refused: \(result.stdout) \(result.stderr)")
            let report = try JSONDocument.parse(result.stdout).value
            #expect(report["key"]?["kid"]?.string == Self.kid(alg), "\(lib) \(alg) verified by the wrong key")
            #expect(report["claims"]?["session_id"]?.string == entry["session_id"]?.string)
        }
    }

    @Test(arguments: ["pyjwt", "jwcrypto"])
    func ourTokensVerifyThere(lib: String) throws {
        var members: [(String, JSONValue)] = []
        for alg in Self.algorithms {
            let minted = try CLI.run(["token", "mint", "--keys", Self.keys, "--kid", Self.kid(alg), "--alg", alg, "--issuer", Self.issuer,
                                      "--sub", UUID().uuidString.lowercased(), "--session-id", UUID().uuidString.lowercased(),
                                      "--email", "interop@example.com", "--ttl", "10m"])
            try #require(minted.status == 0, "mint \(alg): \(minted.stderr)")
            members.append((alg, .string(minted.stdout.trimmingCharacters(in: .whitespacesAndNewlines))))
        }
        let file = CLI.temporaryDirectory() + "/ours.json"
        try JSONValue.object(members).serialized().write(toFile: file, atomically: true, encoding: .utf8)
        let result = try Self.python(["verify", "--lib", lib, "--keys", Self.keys, "--tokens", file, "--iss", Self.issuer])
        #expect(result.status == 0, "\(lib) refused our tokens: \(result.stdout) \(result.stderr)")
        let verdicts = try JSONDocument.parse(result.stdout).value
        for alg in Self.algorithms {
            #expect(verdicts[alg]?.string == "ok", "\(lib) \(alg): \(verdicts[alg]?.string ?? "missing")")
        }
    }
}
