import Foundation
import JOSE
import Testing

/// Wycheproof's JSON Web Signature vectors (the project's copy in Fixtures/wycheproof), every case run:
/// a case passes when our verdict equals the expected one. Cases we cannot judge (JWE, or an
/// algorithm outside HS/RS/PS/ES/EdDSA expected to be valid) are counted as skipped, never
/// as passed.
///
/// A few vectors in the file contradict the file itself or RFC 7515. They are found by rules
/// over the data (never by id), still run, and are expected to disagree through
/// `withKnownIssue`: if our verdict ever matched them, the test would fail and say so.
///   1. a case expected invalid is byte-identical (key and token) to one expected valid;
///   2. a token with bytes outside base64url is expected valid (RFC 7515 section 2 forbids it);
///   3. a key bound by its JWK `alg` to one algorithm is expected to verify another (the
///      file's own WrongPrimitive cases say that must fail).
@Suite struct WycheproofTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let id: Int
        let comment: String
        let group: String
        let jwk: JSONValue
        let jws: String
        let valid: Bool
        /// Why the expected verdict contradicts the file or RFC 7515, if it does.
        var defect: String? = nil
        var testDescription: String { "tc\(id) \(group)/\(comment)" }
    }

    struct Vectors: Sendable {
        let declared: Int
        let cases: [Case]
        let skipped: [String]
    }

    static let vectors: Vectors = {
        guard let data = try? Data(contentsOf: TestPaths.wycheproofJWS),
              let document = try? JSONDocument.parse(Array(data))
        else { return Vectors(declared: -1, cases: [], skipped: []) }
        let root = document.value
        var cases: [Case] = [], skipped: [String] = []
        for group in root["testGroups"]?.array ?? [] {
            let name = group["comment"]?.string ?? "?"
            let keyNode = group["public"] ?? group["private"]
            for test in group["tests"]?.array ?? [] {
                let id = Int(test["tcId"]?.integer ?? -1)
                let comment = test["comment"]?.string ?? ""
                let valid = test["result"]?.string == "valid"
                guard group["type"]?.string == "JsonWebSignature", let jws = test["jws"]?.string, let keyNode else {
                    skipped.append("tc\(id) \(name)/\(comment): not a compact JWS test")
                    continue
                }
                let alg = DecodedToken(jws).headerJSON?["alg"]?.string
                if valid, let alg, Algorithm(rawValue: alg) == nil {
                    skipped.append("tc\(id) \(name)/\(comment): algorithm \(alg) is not supported")
                    continue
                }
                cases.append(Case(id: id, comment: comment, group: name, jwk: keyNode.jsonValue, jws: jws, valid: valid))
            }
        }
        let base64url = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".utf8)
        for i in cases.indices {
            let c = cases[i]
            if !c.valid, let twin = cases.first(where: { $0.valid && $0.jws == c.jws && $0.jwk.serialized() == c.jwk.serialized() }) {
                cases[i].defect = "byte-identical key and token to tc\(twin.id), which is expected valid"
            } else if c.valid, !c.jws.utf8.allSatisfy(base64url.contains) {
                cases[i].defect = "expects a token with non-base64url bytes to verify (RFC 7515 section 2)"
            } else if c.valid, let keyAlg = c.jwk["alg"].flatMap({ if case .string(let s) = $0 { s } else { nil } }),
                      let alg = DecodedToken(c.jws).headerJSON?["alg"]?.string, keyAlg != alg {
                cases[i].defect = "expects a key bound to \(keyAlg) to verify \(alg) (contradicts the file's WrongPrimitive cases)"
            }
        }
        return Vectors(declared: Int(root["numberOfTests"]?.integer ?? -1), cases: cases, skipped: skipped)
    }()

    @Test func allVectorsAreAccountedFor() {
        let v = Self.vectors
        #expect(v.declared == 401, "vector file not found or changed at \(TestPaths.wycheproofJWS.path)")
        #expect(v.cases.count + v.skipped.count == v.declared)
        let defects = v.cases.filter { $0.defect != nil }
        print("Wycheproof JWS: \(v.declared) cases: \(v.cases.count - defects.count) must agree, \(defects.count) defective vectors expected to disagree, \(v.skipped.count) skipped")
        for c in defects { print("  defective \(c.testDescription): \(c.defect!)") }
        for reason in v.skipped { print("  skipped \(reason)") }
    }

    @Test(arguments: vectors.cases)
    func verdict(_ c: Case) throws {
        if let defect = c.defect {
            withKnownIssue("defective vector: \(defect)") { check(c) }
        } else {
            check(c)
        }
    }

    private func check(_ c: Case) {
        let verdict: Result<VerifiedSignature, any Error>
        do {
            let document = try JSONDocument.parse(c.jwk.serialized())
            let key = try JWTKey.jwk(document.value, source: "wycheproof")
            let verifier = TokenVerifier(keys: KeyStore(ring: KeyRing(keys: [key])), cacheCapacity: 0)
            verdict = .success(try verifier.verifySignature(c.jws))
        } catch {
            verdict = .failure(error)
        }
        switch verdict {
        case .success: #expect(c.valid, "accepted an invalid JWS")
        case .failure(let error): #expect(!c.valid, "refused a valid JWS: \(error)")
        }
    }
}
