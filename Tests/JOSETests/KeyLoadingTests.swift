import Foundation
import JOSE
import Testing

/// Key files as operators have them: PEM in its several forms, JWKs public and private, and
/// the errors for keys we refuse.
@Suite struct KeyLoadingTests {
    static func openssl(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = Pipe()
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test(arguments: [
        ("EC traditional", ["ecparam", "-name", "prime256v1", "-genkey", "-noout"], "EC P-256", true),
        ("RSA traditional", ["genrsa", "-traditional", "2048"], "RSA 2048", true),
        ("Ed25519 PKCS#8", ["genpkey", "-algorithm", "ed25519"], "OKP Ed25519", true),
        ("P-384 PKCS#8", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"], "EC P-384", true),
    ] as [(String, [String], String, Bool)])
    func pemForms(name: String, command: [String], type: String, isPrivate: Bool) throws {
        let pem = try Self.openssl(command)
        let key = try JWTKey.pem(Array(pem.utf8), kid: "k", source: name)
        #expect(key.typeDescription == type)
        #expect(key.isPrivate == isPrivate)
        // Its public half, as SPKI, loads as a public key with the same algorithms.
        let publicKey = try JWTKey.pem(Array(key.pem(includingPrivate: false)!.utf8), kid: "k", source: name)
        #expect(!publicKey.isPrivate && publicKey.algorithms == key.algorithms)
    }

    @Test func pkcs1PublicKeyAndCertificate() throws {
        let dir = TestPaths.temporaryDirectory()
        let rsa = try Self.openssl(["genrsa", "2048"])
        try rsa.write(toFile: dir + "/rsa.pem", atomically: true, encoding: .utf8)
        let pkcs1 = try Self.openssl(["rsa", "-in", dir + "/rsa.pem", "-RSAPublicKey_out"])
        #expect(pkcs1.contains("BEGIN RSA PUBLIC KEY"))
        #expect(try JWTKey.pem(Array(pkcs1.utf8), kid: nil, source: "pkcs1").typeDescription == "RSA 2048")
        let cert = try Self.openssl(["req", "-new", "-x509", "-key", dir + "/rsa.pem", "-subj", "/CN=test", "-days", "1"])
        #expect(try JWTKey.pem(Array(cert.utf8), kid: nil, source: "cert").typeDescription == "RSA 2048")
    }

    @Test(arguments: [
        ("short RSA", #"genrsa 1024"#, "at least 2048"),
        ("secp256k1", #"ecparam -name secp256k1 -genkey -noout"#, "unsupported curve"),
    ])
    func refusedPEMKeys(name: String, command: String, message: String) throws {
        let pem = try Self.openssl(command.split(separator: " ").map(String.init))
        #expect { try JWTKey.pem(Array(pem.utf8), kid: nil, source: name) } throws: { "\($0)".contains(message) }
    }

    @Test(arguments: [
        (#"{"kty":"oct","k":"c2hvcnQ"}"#, "at least 32"),
        (#"{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}"#, "exactly 32 bytes"),
        (#"{"kty":"EC","crv":"P-256","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"AI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}"#, "not on curve"),
        (#"{"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"}"#, "not supported"),
        (#"{"kty":"RSA","n":"AQAB"}"#, "missing \"e\""),
        (#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","alg":"RS256"}"#, "does not fit"),
        (#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","alg":"none"}"#, "not a signature algorithm"),
        (#"{"kty":"oct","k":"AAAA AAAA"}"#, "base64url"),
        (#"{"kty":"OKP","crv":"X25519","x":"AA"}"#, "not supported"),
    ])
    func refusedJWKs(json: String, message: String) throws {
        let node = try JSONDocument.parse(json).value
        #expect { try JWTKey.jwk(node, source: "t") } throws: { "\($0)".contains(message) }
    }

    @Test func privateJWKsSignAndPublicOnesOnlyVerify() throws {
        let generated = try JWTKey.generate(for: .ES384, kid: "g", source: "t", modified: 0)
        let publicNode = try JSONDocument.parse(generated.publicJWK!.serialized()).value
        let publicKey = try JWTKey.jwk(publicNode, source: "t")
        #expect(publicKey.canVerify && !publicKey.canSign)
        #expect(publicKey.algorithms == [.ES384])
        let restricted = try JWTKey.jwk(try JSONDocument.parse(#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","use":"enc"}"#).value, source: "t")
        #expect(!restricted.canVerify && !restricted.canSign)
    }

    @Test func aFolderWithABrokenFileFailsNamingIt() throws {
        let dir = TestPaths.temporaryDirectory()
        _ = try KeyFolder.generate(.EdDSA, kid: "ok", in: dir)
        try #"{"keys":[{"kty":"RSA"}]}"#.write(toFile: dir + "/extra.json", atomically: true, encoding: .utf8)
        try "ignored".write(toFile: dir + "/README.md", atomically: true, encoding: .utf8)
        #expect { try KeyRing.load(directory: dir) } throws: { error in
            guard let failure = error as? AuthFailure, failure.reason == .keyConfig else { return false }
            return failure.message.contains("extra.json") && failure.message.contains("key #0") && failure.message.contains("missing \"n\"")
        }
    }

    @Test func theNewestPrivateKeySignsAndJWKSListsPublicKeysOnly() throws {
        let old = try JWTKey.generate(for: .ES256, kid: "old", source: "t", modified: 100)
        let new = try JWTKey.generate(for: .RS256, kid: "new", source: "t", modified: 200)
        let secret = try JWTKey.secret(Array(repeating: 1, count: 32), kid: "s", source: "t", modified: 50)
        let ring = KeyRing(keys: [old, new, secret])
        #expect(try ring.signingKey().key.kid == "new")
        #expect(try ring.signingKey().algorithm == .RS256)
        #expect(try ring.signingKey(algorithm: .ES256).key.kid == "old")
        let jwks = ring.publicJWKS.serialized()
        #expect(!jwks.contains("\"d\"") && !jwks.contains("\"k\"") && jwks.contains("\"old\"") && jwks.contains("\"new\""))
    }
}
