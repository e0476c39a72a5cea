// Fuzz target: the claims of a token whose signature is valid.
//
// The input (after one selector byte) is a token's payload, any bytes. The harness signs it
// (HS256 or ES256 with a key the verifier trusts), so every input gets past the signature
// check: the verifier parses the claims JSON, reads the registered claims (exp, nbf, iat as
// any JSON number, iss, sub, aud) and applies a ClaimPolicy; the Supabase view reads and
// checks role, session_id, aal, is_anonymous, email, phone, metadata, amr; the messages and
// dates of every refusal are rendered. (Tokens through the gateway's routes, Authenticator,
// Identity and RoutePolicy: fuzz-request and fuzz-http1, which sign "@TOKEN@".)
//
// Every time claim goes through, including NumericDates no 64-bit clock holds (1e308, 2^63,
// -1e19): the verifier refuses them as invalid_claim and Timestamp.utc / Duration.describe
// are total over every Double (fixed on main, "Claim times are total..."; the harness used to
// skip such tokens).
import Foundation
import FuzzSupport
import JOSE

enum Harness {
    static let issuer = "https://issuer.example/auth/v1"
    static let hs256 = try! JWTKey.secret(Array("fuzz-hs256-secret-0123456789abcdef0123456789abcdef".utf8), kid: "fuzz-hs", source: "fuzz")
    static let es256 = try! JWTKey.generate(for: .ES256, kid: "fuzz-es", source: "fuzz", modified: 0)
    static let ring = KeyRing(keys: [hs256, es256])
    static let plain = TokenVerifier(keys: KeyStore(ring: ring), cacheCapacity: 0)
    static let strict = TokenVerifier(keys: KeyStore(ring: ring),
                                      policy: ClaimPolicy(requireExpiration: true, leeway: 30, issuers: [issuer, "other"],
                                                          audiences: ["authenticated", "anon"],
                                                          requiredClaims: ["role", "app_metadata.tenant_id", "session_id"]),
                                      cacheCapacity: 8)
    static let now = 1_750_000_000.0
}

/// A compact JWS over exactly `payload` (any bytes), signed with `key`.
func sign(_ payload: UnsafeRawBufferPointer, key: JWTKey, algorithm: Algorithm) -> String {
    let header = "{\"alg\":\"\(algorithm.rawValue)\",\"kid\":\"\(key.kid ?? "")\",\"typ\":\"JWT\"}"
    let input = Base64URL.encode(header.utf8) + "." + Base64URL.encode(payload)
    do {
        let signature = try Array(input.utf8).withUnsafeBytes { bytes throws(AuthFailure) in try key.sign(algorithm, message: bytes) }
        return input + "." + Base64URL.encode(signature)
    } catch {
        fatalError("fuzz signing: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let selector = input.byte()
    let payload = input.rest
    let es = selector & 1 != 0
    let token = sign(payload, key: es ? Harness.es256 : Harness.hs256, algorithm: es ? .ES256 : .HS256)

    // The claims as read from the payload, also when the verifier refuses them.
    var claims: Claims? = nil
    if let document = try? JSONDocument.parse(payload) { claims = try? Claims(json: document.value) }

    let verifier = selector & 2 != 0 ? Harness.strict : Harness.plain
    do {
        let verified = try verifier.verify(token, now: Harness.now)
        require(verified.payloadSegment == Base64URL.encode(payload), "the verified payload is not the one signed")
        claims = verified.claims
    } catch {
        _ = error.description
        // A refusal is about the claims, never the signature the harness made.
        do { _ = try verifier.verifySignature(token) } catch { require(false, "a token signed here did not verify: \(error)") }
    }

    if let claims {
        let supabase = claims.supabase
        _ = (supabase.userID, supabase.role, supabase.sessionID, supabase.assuranceLevel, supabase.isAnonymous)
        _ = (supabase.email, supabase.phone, supabase.methods)
        _ = supabase.appMetadata?.serialized(pretty: true)
        _ = supabase.userMetadata?.jsonValue.serialized()
        do { try supabase.validate() } catch { _ = error.description }
        for path in ["app_metadata.tenant_id", "user_metadata.a.b", "amr", "a..b", ".", ""] { _ = claims[path: path]?.serialized() }
        for date in [claims.expiration, claims.notBefore, claims.issuedAt].compactMap({ $0 }) {
            _ = Timestamp.utc(date)
            _ = Duration.describe(date - Harness.now)
        }
        do { try ClaimPolicy(requireExpiration: false, leeway: 0).validate(claims, now: Harness.now) } catch { _ = error.description }
    }

    return 0
}

_ = Harness.plain
_ = Harness.strict
runFuzzer(test)
