import Foundation

extension AuthFailure {
    /// Keys that could not be loaded: `key_config`, one line per problem, each naming its file.
    static func keys(_ problems: [String]) -> AuthFailure {
        AuthFailure(.keyConfig, problems.joined(separator: "\n"))
    }
}

extension KeyRing {
    /// Loads every key in a folder: `*.json` (a JWKS or one JWK, public or private), `*.pem`
    /// (SPKI, PKCS#8, traditional EC/RSA, certificates) and `*.secret` (HMAC, the file's bytes
    /// exactly). A PEM or secret's kid is its file name without the extension. Other files are
    /// ignored. Any unreadable key fails the whole load, so nothing is silently missing: the
    /// failure is `key_config`, its message one line per problem, each naming its file.
    public static func load(directory: String) throws(AuthFailure) -> KeyRing {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted() } catch {
            throw .keys(["\(directory): cannot read the key folder (\(error.localizedDescription))"])
        }
        var keys: [JWTKey] = [], problems: [String] = [], warnings: [String] = []
        for name in names where !name.hasPrefix(".") {
            let path = (directory as NSString).appendingPathComponent(name)
            guard name.hasSuffix(".json") || name.hasSuffix(".pem") || name.hasSuffix(".secret") else { continue }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            do {
                let loaded = try load(file: path)
                keys += loaded.keys
                warnings += loaded.warnings
            } catch {
                problems.append(error.message)
            }
        }
        if !problems.isEmpty { throw .keys(problems) }
        return KeyRing(keys: keys, warnings: warnings)
    }

    /// Loads one file by its extension: `.json` JWKS/JWK, `.pem`, `.secret` (anything else is
    /// read as PEM if it looks like PEM, else as a secret).
    public static func load(file path: String) throws(AuthFailure) -> KeyRing {
        let name = (path as NSString).lastPathComponent
        let data: [UInt8]
        let modified: Double
        do {
            // Not Data(contentsOf:), which leaks a 4 KiB buffer on every empty file it reads
            // (swift-foundation; found by fuzz-keys): a key folder holding an empty file lost
            // 4 KiB at every load (start and each SIGHUP).
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            data = Array(try handle.readToEnd() ?? Data())
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        } catch {
            throw .keys(["\(path): cannot read (\(error.localizedDescription))"])
        }
        var warnings: [String] = []
        if name.hasSuffix(".json") {
            // Its problems name the file (and the key in it) already.
            let keys = try jwks(data, source: path, modified: modified)
            if keys.contains(where: \.isPrivate), let warning = permissionWarning(path) { warnings.append(warning) }
            return KeyRing(keys: keys, warnings: warnings)
        }
        do {
            let looksPEM = String(decoding: data.prefix(4096), as: UTF8.self).contains("-----BEGIN ")
            if name.hasSuffix(".pem") || (!name.hasSuffix(".secret") && looksPEM) {
                let kid = stripExtension(name, ".pem")
                let key = try JWTKey.pem(data, kid: kid, source: path, modified: modified)
                if key.isPrivate, let warning = permissionWarning(path) { warnings.append(warning) }
                return KeyRing(keys: [key], warnings: warnings)
            }
            let key = try JWTKey.secret(data, kid: stripExtension(name, ".secret"), source: path, modified: modified)
            if let warning = permissionWarning(path) { warnings.append(warning) }
            return KeyRing(keys: [key], warnings: warnings)
        } catch {
            throw AuthFailure(error.reason, "\(path): \(error.message)")
        }
    }

    /// Reads a JWKS (`{"keys": [...]}`) or a single JWK.
    public static func jwks(_ data: [UInt8], source: String, modified: Double = 0) throws(AuthFailure) -> [JWTKey] {
        let document: JSONDocument
        do { document = try JSONDocument.read(data) } catch {
            throw .keys(["\(source): not valid JSON: \(error)"])
        }
        let root = document.value
        if root["kty"] != nil {
            do { return [try JWTKey.jwk(root, source: source, modified: modified)] } catch {
                throw AuthFailure(error.reason, "\(source): \(error.message)")
            }
        }
        guard let list = root["keys"]?.array else {
            throw .keys(["\(source): expected a JWKS object with a \"keys\" array, or a single JWK"])
        }
        var keys: [JWTKey] = [], problems: [String] = []
        for (index, node) in list.enumerated() {
            let kid = node["kid"]?.string.map { " (kid \"\($0)\")" } ?? ""
            do { keys.append(try JWTKey.jwk(node, source: "\(source)#\(index)", modified: modified)) } catch {
                problems.append("\(source): key #\(index)\(kid): \(error.message)")
            }
        }
        if !problems.isEmpty { throw .keys(problems) }
        return keys
    }

    private static func stripExtension(_ name: String, _ ext: String) -> String {
        name.hasSuffix(ext) ? String(name.dropLast(ext.count)) : name
    }

    private static func permissionWarning(_ path: String) -> String? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0
        else { return nil }
        return "\(path): private key is readable by group or others (mode \(String(mode, radix: 8))); chmod 600 it"
    }

    /// A cheap fingerprint of a folder's key files (names, sizes, modification times), to
    /// notice changes without reading keys.
    public static func fingerprint(directory: String) -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory).sorted()) ?? []
        return names.map { name -> String in
            let attributes = try? FileManager.default.attributesOfItem(atPath: (directory as NSString).appendingPathComponent(name))
            let size = (attributes?[.size] as? Int) ?? -1
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "\(name):\(size):\(modified)"
        }.joined(separator: "|")
    }
}
