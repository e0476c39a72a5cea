/// A JOSE header, checked: `alg` is one we accept, `kid` and `typ` are strings, and `crit`
/// names nothing we would have to understand.
///
/// `jku`, `x5u`, `jwk` and `x5c` are read by nobody: keys come only from the key ring.
public struct JWSHeader: Sendable {
    public let algorithm: Algorithm
    public let keyID: String?
    public let type: String?
    /// The whole header, for inspection.
    public let json: JSONNode

    /// Header names registered by RFC 7515/7518, which must not appear in `crit`.
    static let registered: Set<String> = ["alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc", "zip"]

    /// Parses decoded header bytes.
    public init(decoded bytes: [UInt8]) throws(AuthFailure) {
        let document: JSONDocument
        do { document = try JSONDocument.read(bytes) } catch {
            throw AuthFailure(.malformed, "header is not valid JSON: \(error)")
        }
        try self.init(json: document.value)
    }

    public init(json: JSONNode) throws(AuthFailure) {
        guard json.kind == .object else { throw AuthFailure(.malformed, "header is not a JSON object") }
        self.json = json
        guard let algNode = json["alg"] else { throw AuthFailure(.malformed, "header has no \"alg\"") }
        guard let alg = algNode.string else { throw AuthFailure(.malformed, "header \"alg\" is not a string") }
        algorithm = try Algorithm.parse(alg)
        if let kid = json["kid"] {
            guard let s = kid.string else { throw AuthFailure(.malformed, "header \"kid\" is not a string") }
            keyID = s
        } else {
            keyID = nil
        }
        if let typ = json["typ"] {
            guard let s = typ.string else { throw AuthFailure(.malformed, "header \"typ\" is not a string") }
            type = s
        } else {
            type = nil
        }
        if let crit = json["crit"] {
            guard let names = crit.array, !names.isEmpty else {
                throw AuthFailure(.malformed, "header \"crit\" must be a non-empty array of strings")
            }
            for node in names {
                guard let name = node.string else { throw AuthFailure(.malformed, "header \"crit\" holds a non-string") }
                if Self.registered.contains(name) {
                    throw AuthFailure(.malformed, "header \"crit\" lists the registered parameter \"\(name)\"")
                }
                if json[name] == nil {
                    throw AuthFailure(.malformed, "header \"crit\" lists \"\(name)\", which the header does not contain")
                }
                throw AuthFailure(.unsupportedCritical, "critical header extension \"\(name)\" is not understood")
            }
        }
    }
}
