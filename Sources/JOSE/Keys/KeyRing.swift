import Synchronization

/// An immutable set of keys, and the rules for picking one.
///
/// Verification: a token with a `kid` is checked only against keys with that kid that serve
/// its `alg`; a token without a kid only against keys that serve its `alg`. Signing: the
/// newest private key (optionally of one kid or algorithm).
public struct KeyRing: Sendable {
    public let keys: [JWTKey]
    /// Notes about the load that are not errors (loose permissions, skipped keys).
    public let warnings: [String]
    /// Unique per ring instance; caches of verified tokens are tied to it.
    public let generation: UInt64

    private let byKid: [String: [JWTKey]]
    private let byAlgorithm: [Algorithm: [JWTKey]]

    private static let counter = Atomic<UInt64>(0)

    public init(keys: [JWTKey], warnings: [String] = []) {
        let merged = Self.mergingDuplicates(keys)
        self.keys = merged
        self.warnings = warnings
        self.generation = Self.counter.add(1, ordering: .relaxed).newValue
        var byKid: [String: [JWTKey]] = [:]
        var byAlgorithm: [Algorithm: [JWTKey]] = [:]
        for key in merged {
            if let kid = key.kid { byKid[kid, default: []].append(key) }
            if key.canVerify { for alg in key.algorithms { byAlgorithm[alg, default: []].append(key) } }
        }
        self.byKid = byKid
        self.byAlgorithm = byAlgorithm
    }

    /// The keys that may check a token with this header, or the reason there are none.
    public func verificationKeys(for header: JWSHeader) throws(AuthFailure) -> [JWTKey] {
        let alg = header.algorithm
        if let kid = header.keyID {
            guard let named = byKid[kid] else {
                throw AuthFailure(.unknownKid, "no key with kid \"\(kid)\" in the key ring")
            }
            let usable = named.filter { $0.canVerify && $0.algorithms.contains(alg) }
            if usable.isEmpty {
                let key = named[0]
                if let restriction = key.restriction {
                    throw AuthFailure(.keyAlgMismatch, "key \"\(kid)\" may not verify: \(restriction)")
                }
                throw AuthFailure(.keyAlgMismatch, "key \"\(kid)\" (\(key.typeDescription)) may not verify \(alg.rawValue); it serves \(key.algorithms.map(\.rawValue).joined(separator: ", "))")
            }
            return usable
        }
        guard let fitting = byAlgorithm[alg], !fitting.isEmpty else {
            throw AuthFailure(.unknownKid, "token has no kid and no key in the ring serves \(alg.rawValue)")
        }
        return fitting
    }

    /// The key that signs: the newest private key, narrowed by kid and algorithm.
    public func signingKey(kid: String? = nil, algorithm: Algorithm? = nil) throws(AuthFailure) -> (key: JWTKey, algorithm: Algorithm) {
        let candidates = keys.filter { key in
            key.canSign && (kid == nil || key.kid == kid) && (algorithm == nil || key.algorithms.contains(algorithm!))
        }
        guard let key = candidates.max(by: { $0.modified < $1.modified }) else {
            var wanted = "a private key"
            if let kid { wanted += " with kid \"\(kid)\"" }
            if let algorithm { wanted += " for \(algorithm.rawValue)" }
            throw AuthFailure(.keyConfig, "no \(wanted) in the key ring (run `gateway keys generate`)")
        }
        return (key, algorithm ?? key.algorithms[0])
    }

    /// The public JWKS to publish: asymmetric keys that may verify, without private parts.
    public var publicJWKS: JSONValue {
        .object([("keys", .array(keys.filter(\.canVerify).compactMap(\.publicJWK)))])
    }

    /// Drops a public key when a private key with the same kid and material already serves
    /// all its algorithms (a `keys generate` pair: `kid.pem` and its entry in jwks.json), so a
    /// bad signature is not checked twice.
    private static func mergingDuplicates(_ keys: [JWTKey]) -> [JWTKey] {
        keys.filter { key in
            guard !key.isPrivate else { return true }
            return !keys.contains { other in
                other !== key && other.isPrivate && other.kid == key.kid && other.canVerify
                    && Set(key.algorithms).isSubset(of: Set(other.algorithms)) && other.sameMaterial(as: key)
            }
        }
    }
}
