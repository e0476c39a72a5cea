import Foundation

/// Writes keys into a key folder the way the ring reads them: the private key as
/// `<kid>.pem` (PKCS#8) or `<kid>.secret`, created with mode 0600 and never overwritten, and
/// the public JWK appended to `jwks.json` (replaced atomically). What cannot be written is
/// `key_config`, its message naming the file.
public enum KeyFolder {
    public struct Written: Sendable {
        public let kid: String
        public let privatePath: String
        public let jwksPath: String?
    }

    /// Generates a key for `alg` in `directory` (created if missing).
    public static func generate(_ alg: Algorithm, kid: String? = nil, in directory: String) throws(AuthFailure) -> Written {
        let kid = kid ?? defaultKid(for: alg)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch { throw AuthFailure(.keyConfig, "cannot create \(directory): \(error.localizedDescription)") }
        let now = Date().timeIntervalSince1970
        if alg.family == .hmac {
            let path = (directory as NSString).appendingPathComponent("\(kid).secret")
            // Printable so it can be pasted elsewhere; these bytes are the secret exactly.
            try writeExclusive(path, Array(Base64URL.encode(secureRandomBytes(48)).utf8))
            return Written(kid: kid, privatePath: path, jwksPath: nil)
        }
        let key = try JWTKey.generate(for: alg, kid: kid, source: "generated", modified: now)
        guard let pem = key.pem(includingPrivate: true), var jwk = key.publicJWK else {
            throw AuthFailure(.keyConfig, "could not export the generated key")
        }
        if case .object(var members) = jwk {
            members.removeAll { $0.0 == "alg" }
            members.insert(("alg", .string(alg.rawValue)), at: members.firstIndex { $0.0 == "use" } ?? members.count)
            jwk = .object(members)
        }
        let privatePath = (directory as NSString).appendingPathComponent("\(kid).pem")
        let jwksPath = (directory as NSString).appendingPathComponent("jwks.json")
        try writeExclusive(privatePath, Array(pem.utf8))
        try appendToJWKS(jwksPath, jwk, kid: kid)
        return Written(kid: kid, privatePath: privatePath, jwksPath: jwksPath)
    }

    /// On first run: when the folder holds no key that can sign, make an ES256 one.
    /// Returns what was written, or nil when a signing key already exists.
    public static func ensureSigningKey(in directory: String) throws(AuthFailure) -> Written? {
        if FileManager.default.fileExists(atPath: directory) {
            let ring: KeyRing
            do { ring = try KeyRing.load(directory: directory) } catch {
                throw AuthFailure(.keyConfig, "the key folder has unreadable keys:\n\(error.message)")
            }
            if ring.keys.contains(where: \.canSign) { return nil }
        }
        return try generate(.ES256, in: directory)
    }

    static func defaultKid(for alg: Algorithm) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd"
        formatter.timeZone = TimeZone(identifier: "UTC")
        let suffix = secureRandomBytes(3).map { String(format: "%02x", $0) }.joined()
        return "\(alg.rawValue.lowercased())-\(formatter.string(from: Date()))-\(suffix)"
    }

    private static func writeExclusive(_ path: String, _ bytes: [UInt8]) throws(AuthFailure) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            let reason = errno == EEXIST ? "it already exists (choose another --kid)" : String(cString: strerror(errno))
            throw AuthFailure(.keyConfig, "cannot create \(path): \(reason)")
        }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else { throw AuthFailure(.keyConfig, "cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    private static func appendToJWKS(_ path: String, _ jwk: JSONValue, kid: String) throws(AuthFailure) {
        var keys: [JSONValue] = []
        if FileManager.default.fileExists(atPath: path) {
            guard let data = FileManager.default.contents(atPath: path),
                  let document = try? JSONDocument.parse(Array(data)),
                  let existing = document.value["keys"]?.array
            else { throw AuthFailure(.keyConfig, "\(path) exists but is not a JWKS ({\"keys\": [...]}); not touching it") }
            keys = existing.map(\.jsonValue)
            if existing.contains(where: { $0["kid"]?.string == kid }) {
                throw AuthFailure(.keyConfig, "\(path) already has a key with kid \"\(kid)\"")
            }
        }
        keys.append(jwk)
        let text = JSONValue.object([("keys", .array(keys))]).serialized(pretty: true) + "\n"
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o644]) else {
            throw AuthFailure(.keyConfig, "cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw AuthFailure(.keyConfig, "cannot replace \(path): \(String(cString: strerror(errno)))")
        }
    }
}
