/// Verifies compact JWS tokens against a key store and a claim policy, with a cache of tokens
/// already verified.
///
/// Order of checks: size, shape, header (alg, crit, kid), key selection, signature, then, only
/// for an authentic token, the claims JSON and the policy. A forged token costs at most one
/// signature check per candidate key and never reaches the claims parser.
public final class TokenVerifier: Sendable {
    public let keys: KeyStore
    public let policy: ClaimPolicy
    public let maximumTokenSize: Int
    public let cache: VerifiedTokenCache?
    /// Tokens refused for a reason the current key ring and policy cannot change.
    public let refusals: RefusalCache?
    private let headers = HeaderCache()

    public init(keys: KeyStore, policy: ClaimPolicy = ClaimPolicy(), maximumTokenSize: Int = CompactJWS.defaultMaximumSize,
                cacheCapacity: Int = 100_000) {
        self.keys = keys
        self.policy = policy
        self.maximumTokenSize = maximumTokenSize
        self.cache = cacheCapacity > 0 ? VerifiedTokenCache(capacity: cacheCapacity) : nil
        self.refusals = cacheCapacity > 0 ? RefusalCache(capacity: min(cacheCapacity, Self.refusalCapacity)) : nil
    }

    /// At most this many refusals are remembered (about 10 MB of tokens at the default size).
    public static let refusalCapacity = 10_000

    /// Verifies a token given as text.
    public func verify(_ token: String, now: Double = Timestamp.now()) throws(AuthFailure) -> VerifiedToken {
        var token = token
        do {
            return try token.withUTF8 { try verify(bytes: UnsafeRawBufferPointer($0), now: now) }
        } catch let failure as AuthFailure { throw failure } catch { fatalError("unreachable: \(error)") }
    }

    /// Verifies a token given as bytes (a header value, a query parameter).
    public func verify(bytes token: UnsafeRawBufferPointer, now: Double = Timestamp.now()) throws(AuthFailure) -> VerifiedToken {
        if token.count > maximumTokenSize {
            throw AuthFailure(.tokenTooLarge, "token is \(token.count) bytes, the limit is \(maximumTokenSize)")
        }
        if let cache, let hit = cache.lookup(token, now: now, generation: keys.generation) {
            return hit
        }
        let ring = keys.ring
        if let refusals, let known = refusals.lookup(token, generation: ring.generation, now: now) {
            throw known
        }
        var expiration: Double? = nil
        let signed: VerifiedSignature, claims: Claims
        do throws(AuthFailure) {
            signed = try verifySignature(bytes: token, ring: ring)
            let document: JSONDocument
            do { document = try JSONDocument.read(signed.payload) } catch {
                throw AuthFailure(.malformed, "claims are not valid JSON: \(error)")
            }
            claims = try Claims(json: document.value)
            expiration = claims.expiration
            try policy.validate(claims, now: now)
        } catch {
            refusals?.insert(token, error, exp: expiration, generation: ring.generation)
            throw error
        }
        let verified = VerifiedToken(header: signed.header, claims: claims, key: signed.key, payloadSegment: signed.payloadSegment)
        if let cache {
            let validUntil = claims.expiration.map { $0 + policy.leeway } ?? now + cache.maximumLifetime
            cache.insert(token, verified, validUntil: validUntil, generation: ring.generation, now: now)
        }
        return verified
    }

    /// Checks only the JWS signature (RFC 7515): the payload may be anything.
    public func verifySignature(bytes token: UnsafeRawBufferPointer, ring: KeyRing? = nil) throws(AuthFailure) -> VerifiedSignature {
        let ring = ring ?? keys.ring
        let parts = try CompactJWS(token, maximumSize: maximumTokenSize)
        let headerBytes = UnsafeRawBufferPointer(rebasing: token[parts.header])
        let header: JWSHeader
        if let known = headers.header(headerBytes) {
            header = known
        } else {
            header = try JWSHeader(decoded: try token.decodeBase64URL(parts.header, part: "header"))
            headers.insert(headerBytes, header)
        }
        let candidates = try ring.verificationKeys(for: header)
        let signature = try token.decodeBase64URL(parts.signature, part: "signature")
        let payload = try token.decodeBase64URL(parts.payload, part: "payload")
        let message = UnsafeRawBufferPointer(rebasing: token[parts.signingInput])
        let key = signature.withUnsafeBytes { sig in
            candidates.first { $0.verify(header.algorithm, message: message, signature: sig) }
        }
        guard let key else {
            let tried = candidates.count == 1 ? "key \(candidates[0].kid.map { "\"\($0)\"" } ?? "(no kid)")" : "any of \(candidates.count) candidate keys"
            throw AuthFailure(.badSignature, "\(header.algorithm.rawValue) signature does not verify with \(tried)")
        }
        return VerifiedSignature(header: header, payload: payload, key: key,
                                 payloadSegment: String(decoding: UnsafeRawBufferPointer(rebasing: token[parts.payload]), as: UTF8.self))
    }

    /// Text form of ``verifySignature(bytes:ring:)``.
    public func verifySignature(_ token: String) throws(AuthFailure) -> VerifiedSignature {
        var token = token
        do {
            return try token.withUTF8 { try verifySignature(bytes: UnsafeRawBufferPointer($0)) }
        } catch let failure as AuthFailure { throw failure } catch { fatalError("unreachable: \(error)") }
    }
}

/// A token read without checking anything but its shape: for `--no-verify` inspection only.
public struct DecodedToken: Sendable {
    public let header: JWSHeader?
    public let headerJSON: JSONNode?
    public let claims: JSONNode?
    public let problems: [String]

    /// Decodes what can be decoded and lists what could not; never throws.
    public init(_ token: String, maximumSize: Int = CompactJWS.defaultMaximumSize) {
        var headerJSON: JSONNode? = nil, header: JWSHeader? = nil, claims: JSONNode? = nil
        var problems: [String] = []
        var token = token
        token.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            do {
                let parts = try CompactJWS(bytes, maximumSize: maximumSize)
                do {
                    let document = try JSONDocument.read(try bytes.decodeBase64URL(parts.header, part: "header"))
                    headerJSON = document.value
                    header = try JWSHeader(json: document.value)
                } catch let error as AuthFailure { problems.append(error.description) } catch {
                    problems.append("malformed: header is not valid JSON: \(error)")
                }
                do {
                    claims = try JSONDocument.read(try bytes.decodeBase64URL(parts.payload, part: "payload")).value
                } catch let error as AuthFailure { problems.append(error.description) } catch {
                    problems.append("malformed: claims are not valid JSON: \(error)")
                }
            } catch let error as AuthFailure { problems.append(error.description) } catch { problems.append("\(error)") }
        }
        self.header = header
        self.headerJSON = headerJSON
        self.claims = claims
        self.problems = problems
    }
}
