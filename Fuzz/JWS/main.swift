// Fuzz target: compact JWS parsing (RFC 7515 section 7.1) as a token from a request reaches it.
//
// The input is a token's bytes. They go through the splitter (CompactJWS), the `--no-verify`
// decoder (DecodedToken), and the verifier's signature path against a ring of one HS256 secret
// and one ES256 key: header JSON, alg and crit rules, kid lookup, base64url of every part and
// the signature check. Random bytes do not carry a valid signature, so the claims are fuzzed
// past the signature by fuzz-claims, which signs inside the harness.
import FuzzSupport
import JOSE

enum Harness {
    static let ring: KeyRing = {
    do {
        let secret = try JWTKey.secret(Array("fuzz-secret-0123456789abcdef0123456789".utf8), kid: "hs", source: "fuzz")
        let ec = try JWTKey.generate(for: .ES256, kid: "es", source: "fuzz", modified: 0)
        return KeyRing(keys: [secret, ec])
    } catch { fatalError("fuzz key setup: \(error)") }
    }()
    static let verifier = TokenVerifier(keys: KeyStore(ring: ring), policy: ClaimPolicy(requireExpiration: false), cacheCapacity: 0)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    if let parts = try? CompactJWS(bytes) {
        require(parts.header.upperBound < parts.payload.lowerBound && parts.payload.upperBound < parts.signature.lowerBound, "CompactJWS parts out of order")
        require(parts.signature.upperBound == count, "CompactJWS signature does not end the token")
    }
    let text = String(decoding: bytes, as: UTF8.self)
    let decoded = DecodedToken(text)
    _ = decoded.problems.joined(separator: "\n")
    _ = decoded.claims?.serialized(pretty: true)
    _ = decoded.headerJSON?.serialized()
    do {
        _ = try Harness.verifier.verify(bytes: bytes, now: 1_700_000_000)
    } catch {
        _ = error.description
    }
    return 0
}

_ = Harness.verifier
runFuzzer(test)
