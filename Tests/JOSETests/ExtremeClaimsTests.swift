import Foundation
import JOSE
import Testing

/// Signed, well-formed, absurd: every kind of JSON value in every registered claim gets a
/// reason and never a trap, the time renderings are total, and refusals are remembered.
@Suite struct ExtremeClaimsTests {
    static let key = try! JWTKey.secret(Array(repeating: 9, count: 64), kid: "hs", source: "test", modified: 1)
    let now = 1_800_000_000.0

    /// Every kind of JSON value, spelled as raw JSON text (a `JSONValue` cannot spell some).
    static let values: [String] = [
        "\"2030-01-01\"", "\"\"", "{}", "{\"a\":1}", "[]", "[1800000000]", "true", "false", "null",
        "1e308", "-1e308", "1e-320", "9223372036854775808", "-9223372036854775809", "18446744073709551616",
        "9223372036854775807", "-9223372036854775808", "9.2233720368547758e18", "-9.2233720368547758e18",
        String(repeating: "9", count: 400), "-" + String(repeating: "9", count: 400), "0." + String(repeating: "0", count: 400) + "1",
        "0", "-1", "1.5", "-0.0", "1e19", "253402300800", "-62135596801",
    ]
    static let claims = ["exp", "nbf", "iat", "iss", "aud", "sub", "role", "session_id", "jti"]

    func sign(_ payload: String) throws -> String {
        try TokenSigner.sign(payload: Array(payload.utf8), key: Self.key, algorithm: .HS256)
    }

    @Test func everyValueInEveryRegisteredClaimGetsAReason() throws {
        let verifier = TokenVerifier(keys: KeyStore(ring: KeyRing(keys: [Self.key])), cacheCapacity: 100)
        for claim in Self.claims {
            for value in Self.values {
                let exp = claim == "exp" ? "" : ",\"exp\":\(Int(now) + 3600)"
                let token = try sign("{\"\(claim)\":\(value)\(exp)}")
                for _ in 0..<2 {  // the second answer may come from a cache
                    do {
                        let verified = try verifier.verify(token, now: now)
                        let view = verified.claims.supabase
                        _ = (view.userID, view.role, view.sessionID, view.methods, view.isAnonymous)
                        try view.validate()
                    } catch {
                        #expect(!error.message.isEmpty, "\(claim)=\(value)")
                    }
                }
                let decoded = DecodedToken(token)
                #expect(decoded.claims != nil || !decoded.problems.isEmpty)
            }
        }
    }

    @Test func timesNoClockCanHoldAreInvalidClaims() throws {
        let verifier = TokenVerifier(keys: KeyStore(ring: KeyRing(keys: [Self.key])), cacheCapacity: 0)
        for value in ["1e308", "-1e308", "9223372036854775808", "-9223372036854775809", "18446744073709551616", "1e19", String(repeating: "9", count: 300)] {
            for claim in ["exp", "nbf", "iat"] {
                let token = try sign("{\"\(claim)\":\(value),\"exp\":1}".replacingOccurrences(of: ",\"exp\":1", with: claim == "exp" ? "" : ",\"exp\":\(Int(now) + 60)"))
                #expect { try verifier.verify(token, now: now) } throws: { error in
                    guard let failure = error as? AuthFailure else { return false }
                    return failure.reason == .invalidClaim && failure.message.contains("64-bit")
                }
            }
        }
        // The edges a clock can hold are ordinary times.
        let far = try sign("{\"exp\":9.2e18}")
        #expect(throws: Never.self) { try verifier.verify(far, now: now) }
        // Past a double's range: refused whole, with that reason.
        let huge = try sign("{\"exp\":\(String(repeating: "9", count: 400))}")
        #expect { try verifier.verify(huge, now: now) } throws: { ($0 as? AuthFailure)?.message.contains("beyond what a 64-bit integer or float can hold") == true }
        let tiny = try sign("{\"exp\":1e-320}")
        #expect { try verifier.verify(tiny, now: now) } throws: { ($0 as? AuthFailure)?.reason == .expired }
    }

    @Test func timestampAndDurationAreTotal() {
        #expect(Timestamp.utc(0) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.utc(1_764_081_496) == "2025-11-25T14:38:16Z")
        #expect(Timestamp.utc(-1) == "1969-12-31T23:59:59Z")
        #expect(Timestamp.utc(1_764_081_496.25, milliseconds: true) == "2025-11-25T14:38:16.250Z")
        #expect(Timestamp.utc(-0.5, milliseconds: true) == "1969-12-31T23:59:59.500Z")
        #expect(Timestamp.utc(9.2e18, milliseconds: true).hasSuffix(".000Z"))
        #expect(Timestamp.utc(951_782_400) == "2000-02-29T00:00:00Z")
        #expect(Timestamp.utc(253_402_300_799) == "9999-12-31T23:59:59Z")
        #expect(Timestamp.utc(253_402_300_800) == "+10000-01-01T00:00:00Z")
        #expect(Timestamp.utc(-62_167_219_200) == "0000-01-01T00:00:00Z")
        #expect(Timestamp.utc(-62_167_219_201) == "-0001-12-31T23:59:59Z")
        #expect(Timestamp.utc(9.2e18).hasPrefix("+291"))
        #expect(Timestamp.utc(-9.2e18).hasPrefix("-291"))
        for absurd in [1e308, -1e308, .infinity, -.infinity, .nan, 9.3e18, -9.3e18] {
            #expect(!Timestamp.utc(absurd).isEmpty)
            #expect(Duration.describe(absurd) == "forever")
        }
        // The subnormal a JSON `1e-320` becomes, read at run time: as a literal the compiler
        // warns that it underflows.
        let subnormal = Double("1e-320")!
        #expect(subnormal > 0 && !subnormal.isNormal)
        #expect(Duration.describe(subnormal) == "0s")
        #expect(Duration.describe(-3725) == "1h 2m")
        #expect(Duration.describe(9.2e18).hasSuffix("h") || Duration.describe(9.2e18).contains("d"))
    }

    @Test func refusalsAreRememberedUntilTheKeysChange() throws {
        let store = KeyStore(ring: KeyRing(keys: [Self.key]))
        let verifier = TokenVerifier(keys: store, policy: ClaimPolicy(leeway: 0, issuers: ["https://a"]), cacheCapacity: 100)
        let expired = try sign("{\"exp\":\(Int(now) - 30),\"iss\":\"https://a\"}")
        let first = #expect(throws: AuthFailure.self) { try verifier.verify(expired, now: now) }
        #expect(first?.message.contains("30s ago") == true)
        // From the cache, and the message keeps counting.
        let later = #expect(throws: AuthFailure.self) { try verifier.verify(expired, now: now + 60) }
        #expect(later?.reason == .expired)
        #expect(later?.message.contains("1m 30s ago") == true)
        #expect(verifier.refusals?.statistics.hits == 1)

        let wrongIssuer = try sign("{\"exp\":\(Int(now) + 30),\"iss\":\"https://b\"}")
        for _ in 0..<3 { #expect { try verifier.verify(wrongIssuer, now: now) } throws: { ($0 as? AuthFailure)?.reason == .wrongIssuer } }
        #expect(verifier.refusals?.statistics.hits == 3)

        // A forged signature is remembered; a token differing in one byte is not the same entry.
        var forged = Array(try sign("{\"exp\":\(Int(now) + 30),\"iss\":\"https://a\"}").utf8)
        forged[forged.count - 3] = forged[forged.count - 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let bad = String(decoding: forged, as: UTF8.self)
        for _ in 0..<2 { #expect { try verifier.verify(bad, now: now) } throws: { ($0 as? AuthFailure)?.reason == .badSignature } }
        #expect(verifier.refusals?.statistics.hits == 4)

        // Not-yet-valid can change with time: never remembered.
        let early = try sign("{\"exp\":\(Int(now) + 300),\"nbf\":\(Int(now) + 100),\"iss\":\"https://a\"}")
        #expect(throws: AuthFailure.self) { try verifier.verify(early, now: now) }
        #expect(throws: Never.self) { try verifier.verify(early, now: now + 200) }

        // A new key ring forgets every refusal: the bad signature is checked again (and the
        // token that was forged under the old key is still refused, now by the new ring).
        store.setRemoteKeys([try JWTKey.secret(Array(repeating: 1, count: 64), kid: "other", source: "test", modified: 2)], from: "https://keys")
        #expect { try verifier.verify(bad, now: now) } throws: { ($0 as? AuthFailure)?.reason == .badSignature }
        #expect(verifier.refusals?.statistics.hits == 4)
        #expect(verifier.refusals?.statistics.count == 1)
    }

    @Test func refusalCacheIsBounded() throws {
        let verifier = TokenVerifier(keys: KeyStore(ring: KeyRing(keys: [Self.key])), cacheCapacity: 50)
        for i in 0..<500 {
            let token = try sign("{\"exp\":\(Int(now) - 100 - i)}")
            #expect(throws: AuthFailure.self) { try verifier.verify(token, now: now) }
        }
        #expect((verifier.refusals?.statistics.count ?? 0) <= 50)
    }
}
