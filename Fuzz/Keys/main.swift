// Fuzz target: key loading. The first byte picks the reader, the rest is the file's bytes:
// a JWKS or single JWK (every kty, public and private, alg/use/key_ops), PEM (SPKI, PKCS#8,
// traditional, certificates), an HMAC secret, or a key file read from disk by its extension
// (KeyRing.load(file:)). Every key that loads is described, exported (JWK, PEM), put in a ring
// and, when it can sign, signs a message that it must then verify.
import Foundation
import FuzzSupport
import JOSE

enum Harness {
    static let folder: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let path = "\(base)/gateway-fuzz-keys-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()
    static let extensions = [".json", ".pem", ".secret", ".key"]
    static let message = Array("header.payload".utf8)
}

/// Keys over 4096 bits sign slowly by nature (a config holds them, not a request): not signed here.
func signsQuickly(_ key: JWTKey) -> Bool {
    let words = key.typeDescription.split(separator: " ")
    guard words.first == "RSA", words.count > 1, let bits = Int(words[1]) else { return true }
    return bits <= 4096
}

func exercise(_ keys: [JWTKey]) {
    for key in keys {
        _ = (key.label, key.typeDescription, key.algorithms, key.restriction, key.isPrivate, key.isSecret)
        _ = key.publicJWK?.serialized()
        // Read back from PEM (an RSA private key is checked again on import, primes included: slow).
        if let pem = key.pem(includingPrivate: true), !(key.isPrivate && key.typeDescription.hasPrefix("RSA")) {
            _ = try? JWTKey.pem(Array(pem.utf8), kid: key.kid, source: "again")
        }
        guard key.canSign, key.canVerify, signsQuickly(key), let alg = key.algorithms.first else { continue }
        do {
            let signature = try Harness.message.withUnsafeBytes { bytes throws(AuthFailure) in try key.sign(alg, message: bytes) }
            let ok = Harness.message.withUnsafeBytes { m in signature.withUnsafeBytes { s in key.verify(alg, message: m, signature: s) } }
            require(ok, "\(key.label) does not verify its own \(alg.rawValue) signature")
        } catch {
            _ = "\(error)"
        }
    }
    let ring = KeyRing(keys: keys)
    _ = ring.publicJWKS.serialized()
    _ = try? ring.signingKey()
    for alg in [Algorithm.HS256, .RS256, .PS384, .ES256, .ES512, .EdDSA] {
        if let header = try? JWSHeader(json: JSONDocument.parse("{\"alg\":\"\(alg.rawValue)\"}").value) { _ = try? ring.verificationKeys(for: header) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let selector = input.byte()
    let data = Array(input.rest)
    switch selector % 8 {
    case 0, 1, 2:
        do { exercise(try KeyRing.jwks(data, source: "fuzz.json")) } catch { _ = error.description }
    case 3, 4:
        do { exercise([try JWTKey.pem(data, kid: "fuzz", source: "fuzz.pem")]) } catch { _ = error.message }
    case 5:
        do { exercise([try JWTKey.secret(data, kid: "fuzz", algorithm: [nil, .HS256, .HS384, .HS512, .RS256][Int(selector / 8) % 5], source: "fuzz.secret")]) } catch { _ = error.message }
    default:
        let path = "\(Harness.folder)/key\(Harness.extensions[Int(selector / 8) % Harness.extensions.count])"
        // Not written (the harness's folder is gone or full): nothing of the input to load.
        guard FileManager.default.createFile(atPath: path, contents: Data(data), attributes: [.posixPermissions: selector & 0x80 != 0 ? 0o644 : 0o600])
        else { return 0 }
        do {
            let ring = try KeyRing.load(file: path)
            _ = ring.warnings
            exercise(ring.keys)
        } catch { _ = error.description }
        unlink(path)
    }
    return 0
}

_ = Harness.folder
atexit { _ = try? FileManager.default.removeItem(atPath: Harness.folder) }
runFuzzer(test)
