import Foundation
import JOSE
import Testing

/// RFC 7515 Appendix A (A.1 HS256, A.2 RS256, A.3 ES256, A.4 ES512) with the RFC's own keys.
/// RFC 7520 section 4 (4.1-4.4) are in the Wycheproof file and run there.
@Suite struct RFCExamplesTests {
    struct Example: Sendable, CustomTestStringConvertible {
        let section: String
        let alg: String
        let jwk: JSONValue
        let jws: String
        var testDescription: String { "RFC 7515 \(section) \(alg)" }
    }

    static let examples: [Example] = {
        let url = TestPaths.fixtures.appendingPathComponent("rfc7515-appendix-a.json")
        let document = try! JSONDocument.parse(Array(try! Data(contentsOf: url)))
        return document.value["examples"]!.array!.map {
            Example(section: $0["section"]!.string!, alg: $0["alg"]!.string!, jwk: $0["jwk"]!.jsonValue, jws: $0["jws"]!.string!)
        }
    }()

    private func key(_ example: Example) throws -> JWTKey {
        try JWTKey.jwk(try JSONDocument.parse(example.jwk.serialized()).value, source: example.section)
    }

    @Test func allFourExamplesArePresent() {
        #expect(Self.examples.map(\.section) == ["A.1", "A.2", "A.3", "A.4"])
    }

    @Test(arguments: examples)
    func verifies(_ example: Example) throws {
        let verifier = TokenVerifier(keys: KeyStore(ring: KeyRing(keys: [try key(example)])), cacheCapacity: 0)
        let signed = try verifier.verifySignature(example.jws)
        #expect(signed.header.algorithm.rawValue == example.alg)
    }

    @Test(arguments: examples)
    func tamperedSignatureFails(_ example: Example) throws {
        var bytes = Array(example.jws.utf8)
        let i = bytes.count - 5
        bytes[i] = bytes[i] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let verifier = TokenVerifier(keys: KeyStore(ring: KeyRing(keys: [try key(example)])), cacheCapacity: 0)
        #expect(throws: AuthFailure.self) { try verifier.verifySignature(String(decoding: bytes, as: UTF8.self)) }
    }

    /// HS256 and RS256 are deterministic: signing the same input reproduces the RFC's signature.
    @Test(arguments: examples.filter { $0.alg == "HS256" || $0.alg == "RS256" })
    func signingReproducesTheRFC(_ example: Example) throws {
        let parts = example.jws.split(separator: ".", omittingEmptySubsequences: false)
        let input = Array("\(parts[0]).\(parts[1])".utf8)
        let signature = try input.withUnsafeBytes { try key(example).sign(Algorithm(rawValue: example.alg)!, message: $0) }
        #expect(Base64URL.encode(signature) == String(parts[2]))
    }

    /// A.1's claims expire in 2011: the full verifier refuses it as expired, not as forged.
    @Test func fullVerifyReportsExpiry() throws {
        let example = Self.examples[0]
        let verifier = TokenVerifier(keys: KeyStore(ring: KeyRing(keys: [try key(example)])))
        #expect {
            try verifier.verify(example.jws)
        } throws: { ($0 as? AuthFailure)?.reason == .expired }
    }
}
