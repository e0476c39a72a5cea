import Foundation
import JOSE
import Testing

/// The verifier's rules with keys made in the test: claims policy, key binding and selection,
/// the cache, and reloading a key folder.
@Suite struct VerifierTests {
    static let ec = try! JWTKey.generate(for: .ES256, kid: "ec", source: "test", modified: 1)
    static let rsa = try! JWTKey.generate(for: .RS256, kid: "rsa", source: "test", modified: 2)
    static let hmac = try! JWTKey.secret(Array(repeating: 7, count: 64), kid: "hs", source: "test", modified: 3)

    func verifier(_ keys: [JWTKey] = [ec, rsa, hmac], policy: ClaimPolicy = ClaimPolicy(), cache: Int = 0) -> TokenVerifier {
        TokenVerifier(keys: KeyStore(ring: KeyRing(keys: keys)), policy: policy, cacheCapacity: cache)
    }

    func token(_ claims: [(String, JSONValue)], key: JWTKey = ec, alg: Algorithm = .ES256) throws -> String {
        try TokenSigner.sign(claims: .object(claims), key: key, algorithm: alg)
    }

    let now = 1_800_000_000.0

    @Test func timeClaimsWithLeeway() throws {
        let v = verifier(policy: ClaimPolicy(leeway: 60))
        let valid = try token([("exp", .int(Int64(now) + 10))])
        #expect(throws: Never.self) { try v.verify(valid, now: now) }
        #expect(throws: Never.self) { try v.verify(valid, now: now + 65) }  // within leeway
        #expect { try v.verify(valid, now: now + 71) } throws: { ($0 as? AuthFailure)?.reason == .expired }

        let future = try token([("exp", .int(Int64(now) + 999)), ("nbf", .double(now + 120.5))])
        #expect { try v.verify(future, now: now) } throws: { ($0 as? AuthFailure)?.reason == .notYetValid }
        #expect(throws: Never.self) { try v.verify(future, now: now + 61) }

        let issuedAhead = try token([("exp", .int(Int64(now) + 999)), ("iat", .int(Int64(now) + 600))])
        #expect { try v.verify(issuedAhead, now: now) } throws: { ($0 as? AuthFailure)?.reason == .notYetValid }

        let noExp = try token([("sub", .string("u"))])
        #expect { try v.verify(noExp, now: now) } throws: { ($0 as? AuthFailure)?.reason == .missingClaim }
        #expect(throws: Never.self) { try verifier(policy: ClaimPolicy(requireExpiration: false)).verify(noExp, now: now) }

        let decimal = try token([("exp", .double(now + 0.5))])
        #expect(throws: Never.self) { try verifier(policy: ClaimPolicy(leeway: 0)).verify(decimal, now: now) }
        let stringExp = try token([("exp", .string("tomorrow"))])
        #expect { try v.verify(stringExp, now: now) } throws: { ($0 as? AuthFailure)?.reason == .invalidClaim }
    }

    @Test func issuerAudienceAndRequiredClaims() throws {
        let policy = ClaimPolicy(issuers: ["https://a"], audiences: ["authenticated", "service"], requiredClaims: ["app_metadata.tenant_id"])
        let v = verifier(policy: policy)
        let exp: (String, JSONValue) = ("exp", .int(Int64(now) + 100))
        let good = try token([exp, ("iss", .string("https://a")), ("aud", .array([.string("x"), .string("service")])),
                              ("app_metadata", .object([("tenant_id", .string("t1"))]))])
        let verified = try v.verify(good, now: now)
        #expect(verified.claims[path: "app_metadata.tenant_id"]?.string == "t1")

        func reason(_ claims: [(String, JSONValue)]) throws -> AuthFailure.Reason? {
            let t = try token(claims)
            do { _ = try v.verify(t, now: now); return nil } catch { return error.reason }
        }
        #expect(try reason([exp, ("iss", .string("https://b")), ("aud", .string("service"))]) == .wrongIssuer)
        #expect(try reason([exp, ("aud", .string("service"))]) == .missingClaim)
        #expect(try reason([exp, ("iss", .string("https://a")), ("aud", .string("anon"))]) == .wrongAudience)
        #expect(try reason([exp, ("iss", .string("https://a")), ("aud", .int(5))]) == .invalidClaim)
        #expect(try reason([exp, ("iss", .string("https://a")), ("aud", .string("service"))]) == .missingClaim)
    }

    @Test func keysAreBoundToTheirAlgorithms() throws {
        let v = verifier()
        let claims: [(String, JSONValue)] = [("exp", .int(Int64(now) + 100))]
        // HS256 signed with the EC key's kid: never an HMAC over public key bytes.
        let confused = try TokenSigner.sign(claims: .object(claims), key: try JWTKey.secret(Array(repeating: 1, count: 32), kid: "ec", source: "attacker"), algorithm: .HS256)
        #expect { try v.verify(confused, now: now) } throws: { ($0 as? AuthFailure)?.reason == .keyAlgMismatch }
        // ES384 claimed for a P-256 key.
        let header = Base64URL.encode(Array(#"{"alg":"ES384","kid":"ec"}"#.utf8))
        let wrongCurve = header + "." + Base64URL.encode(Array("{}".utf8)) + "." + Base64URL.encode([UInt8](repeating: 1, count: 96))
        #expect { try v.verify(wrongCurve, now: now) } throws: { ($0 as? AuthFailure)?.reason == .keyAlgMismatch }
        // PS256 with the RSA key works (no alg binds it), RS512 too.
        #expect(throws: Never.self) { try v.verify(try token(claims, key: Self.rsa, alg: .PS256), now: now) }
        #expect(throws: Never.self) { try v.verify(try token(claims, key: Self.rsa, alg: .RS512), now: now) }
        // A JWK's alg binds it to that algorithm alone.
        let bound = try JWTKey.jwk(try JSONDocument.parse(#"{"kty":"oct","k":"\#(Base64URL.encode([UInt8](repeating: 9, count: 64)))","alg":"HS512","kid":"b"}"#).value, source: "t")
        #expect(bound.algorithms == [.HS512])
        #expect { try verifier([bound]).verify(try token(claims, key: bound, alg: .HS256), now: now) } throws: { _ in true }
    }

    @Test func keySelectionByKidAndAlg() throws {
        let claims: [(String, JSONValue)] = [("exp", .int(Int64(now) + 100))]
        let v = verifier()
        let unknown = Base64URL.encode(Array(#"{"alg":"ES256","kid":"nope"}"#.utf8)) + ".e30." + Base64URL.encode([UInt8](repeating: 0, count: 64))
        #expect { try v.verify(unknown, now: now) } throws: { ($0 as? AuthFailure)?.reason == .unknownKid }
        // No kid: only keys serving the alg are tried.
        let anonymous = try JWTKey.secret(Array(repeating: 7, count: 64), kid: nil, source: "t")
        let noKid = try TokenSigner.sign(claims: .object(claims), key: anonymous, algorithm: .HS256)
        #expect(try v.verify(noKid, now: now).key.kid == "hs")
        let noFit = try TokenSigner.sign(claims: .object(claims), key: try JWTKey.generate(for: .EdDSA, kid: nil as String? ?? "", source: "t", modified: 0), algorithm: .EdDSA)
        #expect { try verifier([Self.ec]).verify(noFit, now: now) } throws: { ($0 as? AuthFailure)?.reason == .unknownKid }
    }

    @Test func headerRules() throws {
        let v = verifier()
        func reason(_ header: String) -> AuthFailure.Reason? {
            let t = Base64URL.encode(Array(header.utf8)) + ".e30." + Base64URL.encode([UInt8](repeating: 0, count: 64))
            do { _ = try v.verify(t, now: now); return nil } catch { return error.reason }
        }
        #expect(reason(#"{"alg":"none"}"#) == .unsupportedAlg)
        #expect(reason(#"{"alg":"NONE"}"#) == .unsupportedAlg)
        #expect(reason(#"{"alg":"HS1"}"#) == .unsupportedAlg)
        #expect(reason(#"{"kid":"ec"}"#) == .malformed)
        #expect(reason(#"{"alg":"ES256","kid":7}"#) == .malformed)
        #expect(reason(#"{"alg":"ES256","alg":"HS256"}"#) == .malformed)  // duplicate member
        #expect(reason(#"{"alg":"ES256","kid":"ec","crit":["exp"],"exp":1}"#) == .unsupportedCritical)
        #expect(reason(#"{"alg":"ES256","kid":"ec","crit":["b64"]}"#) == .malformed)  // listed but absent
        #expect(reason(#"{"alg":"ES256","kid":"ec","crit":[]}"#) == .malformed)
        #expect(reason(#"["alg"]"#) == .malformed)
        // jku/x5u/jwk never supply a key: the ring's key is used, and the forged signature fails.
        #expect(reason(#"{"alg":"ES256","kid":"ec","jku":"https://evil/jwks","jwk":{"kty":"oct","k":"AA"}}"#) == .badSignature)
    }

    @Test func sizeLimit() throws {
        let v = TokenVerifier(keys: KeyStore(ring: KeyRing(keys: [Self.ec])), maximumTokenSize: 100, cacheCapacity: 0)
        let t = try token([("exp", .int(Int64(now) + 100)), ("pad", .string(String(repeating: "x", count: 200)))])
        #expect { try v.verify(t, now: now) } throws: { ($0 as? AuthFailure)?.reason == .tokenTooLarge }
    }

    @Test func cacheHitsRepeatsAndEntriesDieAtExp() throws {
        let v = verifier(policy: ClaimPolicy(leeway: 0), cache: 10)
        let t = try token([("exp", .int(Int64(now) + 100))])
        _ = try v.verify(t, now: now)
        _ = try v.verify(t, now: now + 1)
        #expect(v.cache!.statistics.hits == 1)
        #expect { try v.verify(t, now: now + 100) } throws: { ($0 as? AuthFailure)?.reason == .expired }
        // A token differing in one byte never borrows the entry.
        var bytes = Array(t.utf8)
        bytes[bytes.count - 2] = bytes[bytes.count - 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(throws: AuthFailure.self) { try v.verify(String(decoding: bytes, as: UTF8.self), now: now) }
        // Bounded: many distinct tokens never grow it past capacity.
        for i in 0..<50 { _ = try v.verify(try token([("exp", .int(Int64(now) + 100)), ("i", .int(Int64(i)))]), now: now) }
        #expect(v.cache!.statistics.count <= 10)
    }

    @Test func reloadSwapsKeysAndKeepsTheOldRingOnFailure() throws {
        let dir = TestPaths.temporaryDirectory()
        _ = try KeyFolder.generate(.ES256, kid: "one", in: dir)
        let store = try KeyStore(directory: dir)
        let v = TokenVerifier(keys: store, cacheCapacity: 100)
        let signer = try store.ring.signingKey()
        let t = try TokenSigner.sign(claims: .object([("exp", .int(Int64(Date().timeIntervalSince1970) + 100))]), key: signer.key, algorithm: signer.algorithm)
        _ = try v.verify(t)
        _ = try v.verify(t)  // cached
        // Key removed: reload, and the cached verdict dies with the old ring.
        try FileManager.default.removeItem(atPath: dir + "/one.pem")
        try FileManager.default.removeItem(atPath: dir + "/jwks.json")
        _ = try KeyFolder.generate(.ES256, kid: "two", in: dir)
        #expect(try store.reloadIfChanged())
        #expect { try v.verify(t) } throws: { ($0 as? AuthFailure)?.reason == .unknownKid }
        // A broken file: reload fails with its name, the ring in service stays.
        try "not a key".write(toFile: dir + "/broken.pem", atomically: true, encoding: .utf8)
        #expect { try store.reload() } throws: { "\($0)".contains("broken.pem") }
        #expect(store.ring.keys.map(\.kid) == ["two"])
    }

    @Test func supabaseView() throws {
        let t = try token([("exp", .int(Int64(now) + 100)), ("sub", .string("u1")), ("role", .string("authenticated")),
                           ("session_id", .string("s1")), ("aal", .string("aal2")), ("is_anonymous", .bool(true)),
                           ("amr", .array([.object([("method", .string("password")), ("timestamp", .int(1))])])),
                           ("app_metadata", .object([("tenant_id", .string("t"))]))])
        let s = try verifier().verify(t, now: now).claims.supabase
        #expect(s.userID == "u1" && s.role == "authenticated" && s.sessionID == "s1" && s.assuranceLevel == "aal2")
        #expect(s.isAnonymous && s.methods == ["password"] && s.appMetadata?["tenant_id"]?.string == "t")
        #expect(throws: Never.self) { try s.validate() }
        let bad = try verifier().verify(try token([("exp", .int(Int64(now) + 100)), ("aal", .string("aal3"))]), now: now).claims.supabase
        #expect { try bad.validate() } throws: { ($0 as? AuthFailure)?.reason == .invalidClaim }
    }
}
