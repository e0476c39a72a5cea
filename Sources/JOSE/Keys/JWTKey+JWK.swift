extension JWTKey {
    /// Reads a JWK (RFC 7517): `oct`, `RSA`, `EC` (P-256/384/521) and `OKP` (Ed25519), public
    /// or private. Its `kid` and `alg` win; `use` and `key_ops` restrict what it may do.
    public static func jwk(_ node: JSONNode, source: String, modified: Double = 0) throws(AuthFailure) -> JWTKey {
        guard node.kind == .object else { throw AuthFailure(.keyConfig, "a JWK must be a JSON object") }
        func string(_ name: String) throws(AuthFailure) -> String? {
            guard let member = node[name] else { return nil }
            guard let s = member.string else { throw AuthFailure(.keyConfig, "JWK \"\(name)\" must be a string") }
            return s
        }
        func bytes(_ name: String, required: Bool = true) throws(AuthFailure) -> [UInt8]? {
            guard let text = try string(name) else {
                if required { throw AuthFailure(.keyConfig, "JWK is missing \"\(name)\"") }
                return nil
            }
            guard let decoded = Base64URL.decode(text) else { throw AuthFailure(.keyConfig, "JWK \"\(name)\" is not strict base64url") }
            return decoded
        }
        guard let kty = try string("kty") else { throw AuthFailure(.keyConfig, "JWK is missing \"kty\"") }
        let kid = try string("kid")
        let use = try string("use")
        var keyOps: [String]? = nil
        if let ops = node["key_ops"] {
            guard let items = ops.array?.compactMap(\.string), items.count == ops.array?.count else {
                throw AuthFailure(.keyConfig, "JWK \"key_ops\" must be an array of strings")
            }
            keyOps = items
        }
        var boundAlgorithm: Algorithm? = nil
        if let name = try string("alg") {
            do { boundAlgorithm = try Algorithm.parse(name) } catch {
                throw AuthFailure(.keyConfig, "JWK alg \"\(name)\" is not a signature algorithm this gateway supports")
            }
        }

        let material: Material
        switch kty {
        case "oct":
            let k = try bytes("k")!
            let key = try secret(k, kid: kid, algorithm: boundAlgorithm, source: source, modified: modified)
            return JWTKey(kid: kid, algorithms: key.algorithms, use: use, keyOps: keyOps, source: source, modified: modified, material: key.material)
        case "RSA":
            var c = PKey.RSAComponents(n: stripLeadingZeros(try bytes("n")!), e: try bytes("e")!)
            if let d = try bytes("d", required: false) {
                c.d = d
                c.p = try bytes("p", required: false); c.q = try bytes("q", required: false)
                c.dp = try bytes("dp", required: false); c.dq = try bytes("dq", required: false)
                c.qi = try bytes("qi", required: false)
            }
            material = .pkey(try PKey.rsa(c))
        case "EC":
            guard let crv = try string("crv") else { throw AuthFailure(.keyConfig, "EC JWK is missing \"crv\"") }
            guard let curve = PKey.Curve(rawValue: crv) else { throw AuthFailure(.keyConfig, "EC curve \"\(crv)\" is not supported (P-256, P-384, P-521)") }
            material = .pkey(try PKey.ec(curve: curve, x: try bytes("x")!, y: try bytes("y")!, d: try bytes("d", required: false)))
        case "OKP":
            guard let crv = try string("crv") else { throw AuthFailure(.keyConfig, "OKP JWK is missing \"crv\"") }
            guard crv == "Ed25519" else { throw AuthFailure(.keyConfig, "OKP curve \"\(crv)\" is not supported (Ed25519)") }
            material = .pkey(try PKey.ed25519(x: try bytes("x")!, d: try bytes("d", required: false)))
        default:
            throw AuthFailure(.keyConfig, "JWK kty \"\(kty)\" is not supported (oct, RSA, EC, OKP)")
        }
        var algorithms = try defaultAlgorithms(for: material)
        if let boundAlgorithm {
            guard algorithms.contains(boundAlgorithm) else {
                throw AuthFailure(.keyConfig, "JWK alg \(boundAlgorithm.rawValue) does not fit a \(kty) key (it could serve \(algorithms.map(\.rawValue).joined(separator: ", ")))")
            }
            algorithms = [boundAlgorithm]
        }
        return JWTKey(kid: kid, algorithms: algorithms, use: use, keyOps: keyOps, source: source, modified: modified, material: material)
    }

    private static func stripLeadingZeros(_ bytes: [UInt8]) -> [UInt8] {
        let trimmed = bytes.drop { $0 == 0 }
        return trimmed.isEmpty ? [0] : Array(trimmed)
    }
}
