/// One key in the ring: its `kid`, the algorithms it may serve, whether it may verify or sign,
/// and the material (an OpenSSL key or an HMAC secret).
///
/// A key is bound to its algorithms when it is loaded: a JWK's `alg` binds it to that one;
/// otherwise its type decides (P-256 -> ES256, RSA -> RS*/PS*, Ed25519 -> EdDSA, secret -> HS*).
/// No other algorithm can ever be checked with it, which closes the HMAC-with-a-public-key and
/// cross-family confusions.
public final class JWTKey: Sendable {
    enum Material: Sendable {
        case secret(HMACSecret)
        case pkey(PKey)
    }

    public let kid: String?
    /// The algorithms this key may verify or sign, most preferred first.
    public let algorithms: [Algorithm]
    public let canVerify: Bool
    public let canSign: Bool
    /// Why the key may not verify (`use`/`key_ops`), for error messages.
    public let restriction: String?
    /// Where it came from: a file, or `file#index` inside a JWKS.
    public let source: String
    /// Seconds since 1970 of the source file's modification; the newest signing key signs.
    public let modified: Double
    let material: Material

    init(kid: String?, algorithms: [Algorithm], use: String? = nil, keyOps: [String]? = nil,
         source: String, modified: Double, material: Material) {
        self.kid = kid
        self.algorithms = algorithms
        self.source = source
        self.modified = modified
        self.material = material
        var restriction: String? = nil
        var verify = true, sign = true
        if let use, use != "sig" {
            verify = false; sign = false
            restriction = "its use is \"\(use)\", not \"sig\""
        }
        if let keyOps {
            if !keyOps.contains("verify") { verify = false; restriction = restriction ?? "its key_ops \(keyOps) do not include \"verify\"" }
            if !keyOps.contains("sign") { sign = false }
        }
        self.restriction = verify ? nil : restriction
        self.canVerify = verify
        let hasPrivate: Bool = switch material {
        case .secret: true
        case .pkey(let key): key.hasPrivate
        }
        self.canSign = sign && hasPrivate
    }

    public var isPrivate: Bool {
        switch material {
        case .secret: true
        case .pkey(let key): key.hasPrivate
        }
    }

    public var isSecret: Bool {
        if case .secret = material { return true }
        return false
    }

    /// "EC P-256", "RSA 2048", "oct 64 bytes", ...
    public var typeDescription: String {
        switch material {
        case .secret(let secret): "oct \(secret.bytes.count) bytes"
        case .pkey(let key): key.description
        }
    }

    /// A one-line name for messages: kid, type and source.
    public var label: String {
        "\(kid.map { "kid \"\($0)\"" } ?? "no kid") (\(typeDescription), \(source))"
    }

    /// Verifies `signature` over `message` for `alg`; false when the key may not serve `alg`.
    public func verify(_ alg: Algorithm, message: UnsafeRawBufferPointer, signature: UnsafeRawBufferPointer) -> Bool {
        guard canVerify, algorithms.contains(alg) else { return false }
        switch material {
        case .secret(let secret): return alg.family == .hmac && secret.verify(alg, message, signature)
        case .pkey(let key): return key.verify(alg, message: message, signature: signature)
        }
    }

    /// Signs `message` for `alg`.
    public func sign(_ alg: Algorithm, message: UnsafeRawBufferPointer) throws(AuthFailure) -> [UInt8] {
        guard canSign else { throw AuthFailure(.keyConfig, "key \(label) cannot sign (no private part, or restricted by use/key_ops)") }
        guard algorithms.contains(alg) else {
            throw AuthFailure(.keyConfig, "key \(label) may not sign \(alg.rawValue) (allowed: \(algorithms.map(\.rawValue).joined(separator: ", ")))")
        }
        do {
            switch material {
            case .secret(let secret): return try secret.mac(alg, message)
            case .pkey(let key): return try key.sign(alg, message: message)
            }
        } catch { throw AuthFailure(.cryptoFailure, "signing with \(label) failed: \(error)") }
    }

    /// The public JWK to publish, or nil for an HMAC secret.
    public var publicJWK: JSONValue? {
        guard case .pkey(let key) = material else { return nil }
        var members = key.publicJWKMembers
        if let kid { members.append(("kid", .string(kid))) }
        if algorithms.count == 1 { members.append(("alg", .string(algorithms[0].rawValue))) }
        members.append(("use", .string("sig")))
        members.append(("key_ops", .array([.string("verify")])))
        return .object(members)
    }

    /// The key as PEM (PKCS#8 private or SPKI public); nil for secrets.
    public func pem(includingPrivate: Bool) -> String? {
        guard case .pkey(let key) = material else { return nil }
        return try? key.pem(includingPrivate: includingPrivate && key.hasPrivate)
    }

    /// True when both hold the same public key (or the same secret).
    func sameMaterial(as other: JWTKey) -> Bool {
        switch (material, other.material) {
        case (.secret(let a), .secret(let b)): a.bytes == b.bytes
        case (.pkey(let a), .pkey(let b)): a.samePublicKey(as: b)
        default: false
        }
    }
}

extension JWTKey {
    /// The algorithms a key of this material serves when no `alg` binds it.
    static func defaultAlgorithms(for material: Material) throws(AuthFailure) -> [Algorithm] {
        switch material {
        case .secret(let secret):
            let algs = [Algorithm.HS256, .HS384, .HS512].filter { secret.bytes.count >= $0.digestSize }
            if algs.isEmpty {
                throw AuthFailure(.keyConfig, "HMAC secret is \(secret.bytes.count) bytes; at least 32 are required (RFC 7518 section 3.2)")
            }
            return algs
        case .pkey(let key):
            switch key.kind {
            case .rsa(let bits, let pssOnly):
                if bits < 2048 { throw AuthFailure(.keyConfig, "RSA key is \(bits) bits; at least 2048 are required (RFC 7518 section 3.3)") }
                return pssOnly ? [.PS256, .PS384, .PS512] : [.RS256, .RS384, .RS512, .PS256, .PS384, .PS512]
            case .ec(let curve): return [curve.algorithm]
            case .ed25519: return [.EdDSA]
            }
        }
    }

    /// Makes a key from PEM text; the kid is usually the file name without `.pem`.
    public static func pem(_ text: [UInt8], kid: String?, source: String, modified: Double = 0) throws(AuthFailure) -> JWTKey {
        let material = Material.pkey(try PKey.pem(text))
        return JWTKey(kid: kid, algorithms: try defaultAlgorithms(for: material), source: source, modified: modified, material: material)
    }

    /// Makes an HMAC key from the secret's bytes, exactly as given.
    public static func secret(_ bytes: [UInt8], kid: String?, algorithm: Algorithm? = nil, source: String, modified: Double = 0) throws(AuthFailure) -> JWTKey {
        if bytes.isEmpty { throw AuthFailure(.keyConfig, "HMAC secret is empty") }
        let secret: HMACSecret
        do { secret = try HMACSecret(bytes) } catch { throw AuthFailure(.keyConfig, "HMAC secret unusable: \(error)") }
        let material = Material.secret(secret)
        var algorithms = try defaultAlgorithms(for: material)
        if let algorithm {
            guard algorithm.family == .hmac else { throw AuthFailure(.keyConfig, "alg \(algorithm.rawValue) does not fit an HMAC secret") }
            guard bytes.count >= algorithm.digestSize else {
                throw AuthFailure(.keyConfig, "HMAC secret is \(bytes.count) bytes; \(algorithm.rawValue) needs at least \(algorithm.digestSize)")
            }
            algorithms = [algorithm]
        }
        return JWTKey(kid: kid, algorithms: algorithms, source: source, modified: modified, material: material)
    }

    /// Generates a new private key for `alg` (HS* makes a 64-byte random secret).
    public static func generate(for alg: Algorithm, kid: String, source: String, modified: Double) throws(AuthFailure) -> JWTKey {
        if alg.family == .hmac {
            return try secret(secureRandomBytes(64), kid: kid, source: source, modified: modified)
        }
        let material = Material.pkey(try PKey.generate(for: alg))
        return JWTKey(kid: kid, algorithms: try defaultAlgorithms(for: material), source: source, modified: modified, material: material)
    }
}
