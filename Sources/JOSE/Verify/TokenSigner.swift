/// Signs claims into a compact JWS with a key from the ring.
public enum TokenSigner {
    /// `header.payload.signature` with header `{"alg","kid","typ"}`; the claims are serialized
    /// compactly by jansson in the order given.
    public static func sign(claims: JSONValue, key: JWTKey, algorithm: Algorithm, type: String? = "JWT") throws(AuthFailure) -> String {
        try sign(payload: Array(claims.serialized().utf8), key: key, algorithm: algorithm, type: type)
    }

    /// Signs `payload` as it is, JSON or not: for tests and tools that need a token whose
    /// claims hold what no ``JSONValue`` can spell (a 40-digit number, a duplicate member).
    public static func sign(payload: [UInt8], key: JWTKey, algorithm: Algorithm, type: String? = "JWT") throws(AuthFailure) -> String {
        var header: [(String, JSONValue)] = [("alg", .string(algorithm.rawValue))]
        if let kid = key.kid { header.append(("kid", .string(kid))) }
        if let type { header.append(("typ", .string(type))) }
        let signingInput = Base64URL.encode(JSONValue.object(header).serialized().utf8) + "." + Base64URL.encode(payload)
        let message = Array(signingInput.utf8)
        let signature = try message.withUnsafeBytes { bytes in
            Result { () throws(AuthFailure) -> [UInt8] in try key.sign(algorithm, message: bytes) }
        }.get()
        return signingInput + "." + Base64URL.encode(signature)
    }
}
