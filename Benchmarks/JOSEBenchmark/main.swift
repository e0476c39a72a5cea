// Token verification throughput, one thread, against the raw OpenSSL primitive in the same run.
//
//   swift run -c release jose-bench [--distinct N] [--seconds S] [--algs ES256,RS256,...]
//
// For each algorithm it prints tokens/s for:
//   raw       EVP one-shot verify of the same signing input and signature (EVP_DigestVerifyInit_ex
//             + EVP_DigestVerify on a fresh EVP_MD_CTX; for HS*, EVP_Q_mac + CRYPTO_memcmp), i.e. what
//             a caller of libcrypto pays for the signature alone, without parsing anything
//   distinct  full TokenVerifier.verify (split, base64url, header JSON, key choice, signature,
//             claims JSON, policy) over N distinct tokens, cache off
//   repeat    one token again and again, cache off (full verify every time)
//   hit       one token again and again, cache on (a verified-token cache hit)
// and ratio = distinct / raw. "claims" is jansson parsing one payload alone, for scale.
import COpenSSL
import Foundation
import JOSE

struct Options {
    var distinct = 10_000
    var seconds = 1.0
    /// For profiling: run just the distinct-token cell.
    var onlyDistinct = false
    var algorithms: [Algorithm] = [.HS256, .RS256, .PS256, .ES256, .ES384, .ES512, .EdDSA]

    init() {
        var args = CommandLine.arguments.dropFirst().makeIterator()
        while let arg = args.next() {
            switch arg {
            case "--distinct": distinct = Int(args.next() ?? "") ?? distinct
            case "--seconds": seconds = Double(args.next() ?? "") ?? seconds
            case "--only-distinct": onlyDistinct = true
            case "--algs": algorithms = (args.next() ?? "").split(separator: ",").compactMap { Algorithm(rawValue: String($0)) }
            default: fatalError("unknown argument \(arg)")
            }
        }
    }
}

let options = Options()
let issuer = "http://127.0.0.1:8080/auth/v1"

func claims(now: Int64, index: Int) -> JSONValue {
    let sub = UUID().uuidString.lowercased()
    return .object([
        ("iss", .string(issuer)), ("sub", .string(sub)), ("aud", .string("authenticated")),
        ("exp", .int(now + 30 * 86400)), ("iat", .int(now)), ("email", .string("bench\(index)@example.com")), ("phone", .string("")),
        ("app_metadata", .object([("provider", .string("email")), ("providers", .array([.string("email")]))])),
        ("user_metadata", .object([])), ("role", .string("authenticated")), ("aal", .string("aal1")),
        ("amr", .array([.object([("method", .string("password")), ("timestamp", .int(now))])])),
        ("session_id", .string(UUID().uuidString.lowercased())), ("is_anonymous", .bool(false)),
    ])
}

/// Runs `body` in batches until `seconds` pass; returns operations per second.
func rate(_ seconds: Double, batch: Int, _ body: () -> Void) -> Double {
    var operations = 0
    let start = DispatchTime.now().uptimeNanoseconds
    var elapsed = 0.0
    repeat {
        for _ in 0..<batch { body() }
        operations += batch
        elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    } while elapsed < seconds
    return Double(operations) / elapsed
}

/// The raw primitive: verify `signature` over `message` with one fresh EVP context.
final class Raw {
    let pkey: OpaquePointer?
    let secret: [UInt8]
    let alg: Algorithm

    init(alg: Algorithm, pem: String?, secret: [UInt8]) {
        self.alg = alg
        self.secret = secret
        if let pem {
            pkey = pem.withCString { text in
                let bio = BIO_new_mem_buf(text, Int32(strlen(text)))  // not copied: read inside this scope
                defer { BIO_free(bio) }
                return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
            }
        } else {
            pkey = nil
        }
    }

    func verify(_ message: [UInt8], _ signature: [UInt8]) -> Bool {
        if alg.family == .hmac {
            var out = [UInt8](repeating: 0, count: 64)
            var length = 0
            let ok = EVP_Q_mac(nil, "HMAC", nil, alg.digestName, nil, secret, secret.count, message, message.count, &out, 64, &length)
            if ok == nil { return false }
            return length == signature.count && CRYPTO_memcmp(out, signature, length) == 0
        }
        let ctx = EVP_MD_CTX_new()
        defer { EVP_MD_CTX_free(ctx) }
        var pctx: OpaquePointer? = nil
        guard EVP_DigestVerifyInit_ex(ctx, &pctx, alg.digestName, nil, nil, pkey, nil) == 1 else { return false }
        if alg.family == .rsaPSS {
            _ = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING)
            _ = EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST)
        }
        return EVP_DigestVerify(ctx, signature, signature.count, message, message.count) == 1
    }

    /// JWS r||s to DER, once, outside the timed loop (the raw primitive takes DER).
    static func der(_ raw: [UInt8]) -> [UInt8] {
        let half = raw.count / 2
        let sig = ECDSA_SIG_new()
        ECDSA_SIG_set0(sig, BN_bin2bn(raw, Int32(half), nil), BN_bin2bn(Array(raw[half...]), Int32(half), nil))
        var out = [UInt8](repeating: 0, count: Int(i2d_ECDSA_SIG(sig, nil)))
        out.withUnsafeMutableBufferPointer { buffer in
            var p: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            _ = i2d_ECDSA_SIG(sig, &p)
        }
        ECDSA_SIG_free(sig)
        return out
    }
}

func format(_ value: Double) -> String {
    value >= 1_000_000 ? String(format: "%.2fM", value / 1_000_000) : value >= 10_000 ? String(format: "%.0fk", value / 1000) : String(format: "%.0f", value)
}

print("jose-bench: one thread, \(options.distinct) distinct tokens per algorithm, \(options.seconds)s per cell")
print("OpenSSL \(String(cString: OpenSSL_version(0)))")
print("")
print("alg     raw/s     distinct/s  ratio   repeat/s   hit/s     hit ns   claims ns  token bytes")
let now = Int64(Date().timeIntervalSince1970)
for alg in options.algorithms {
    let secret = (0..<64).map { _ in UInt8.random(in: 0...255) }
    let key = alg.family == .hmac
        ? try JWTKey.secret(secret, kid: alg.rawValue.lowercased(), source: "bench")
        : try JWTKey.generate(for: alg, kid: alg.rawValue.lowercased(), source: "bench", modified: 0)
    let ring = KeyRing(keys: [key])
    let policy = ClaimPolicy(issuers: [issuer], audiences: ["authenticated"])
    let uncached = TokenVerifier(keys: KeyStore(ring: ring), policy: policy, cacheCapacity: 0)
    let cached = TokenVerifier(keys: KeyStore(ring: ring), policy: policy, cacheCapacity: 100_000)
    let tokens = try (0..<options.distinct).map { try TokenSigner.sign(claims: claims(now: now, index: $0), key: key, algorithm: alg) }

    let first = tokens[0]
    let parts = first.split(separator: ".")
    let message = Array("\(parts[0]).\(parts[1])".utf8)
    var signature = Base64URL.decode(parts[2])!
    if alg.family == .ecdsa { signature = Raw.der(signature) }
    let raw = Raw(alg: alg, pem: key.pem(includingPrivate: true), secret: alg.family == .hmac ? secret : [])
    let rawMessage = message, rawSignature = signature
    precondition(raw.verify(rawMessage, rawSignature), "raw verify failed for \(alg)")
    precondition((try? uncached.verify(first)) != nil, "verify failed for \(alg)")

    let batch = alg.family == .hmac ? 1000 : 50
    var i = 0
    let distinctRate = rate(options.seconds, batch: batch) {
        _ = try? uncached.verify(tokens[i])
        i = (i + 1) % tokens.count
    }
    if options.onlyDistinct {
        print("\(alg.rawValue) distinct \(format(distinctRate))/s")
        continue
    }
    let rawRate = rate(options.seconds, batch: batch) { _ = raw.verify(rawMessage, rawSignature) }
    let repeatRate = rate(options.seconds, batch: batch) { _ = try? uncached.verify(first) }
    _ = try cached.verify(first)
    let hitRate = rate(options.seconds, batch: 10_000) { _ = try? cached.verify(first) }
    let payload = Base64URL.decode(parts[1])!
    let claimsRate = rate(options.seconds / 2, batch: 1000) { _ = try? JSONDocument.parse(payload) }

    print(alg.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
        + format(rawRate).padding(toLength: 10, withPad: " ", startingAt: 0)
        + format(distinctRate).padding(toLength: 12, withPad: " ", startingAt: 0)
        + String(format: "%.2fx", distinctRate / rawRate).padding(toLength: 8, withPad: " ", startingAt: 0)
        + format(repeatRate).padding(toLength: 11, withPad: " ", startingAt: 0)
        + format(hitRate).padding(toLength: 10, withPad: " ", startingAt: 0)
        + String(format: "%.0f", 1e9 / hitRate).padding(toLength: 9, withPad: " ", startingAt: 0)
        + String(format: "%.0f", 1e9 / claimsRate).padding(toLength: 11, withPad: " ", startingAt: 0)
        + "\(first.utf8.count)")
}
