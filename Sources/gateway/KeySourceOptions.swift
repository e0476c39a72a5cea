import ArgumentParser
import Foundation
import Gateway
import JOSE

/// Where keys and policy come from: gateway.conf, or a key folder, or single files; flags
/// override the config.
struct KeySourceOptions: ParsableArguments {
    @Option(name: .long, help: "Config file (default: gateway.conf when it exists).")
    var config: String?

    @Option(name: .long, help: "Key folder: jwks.json, *.pem, *.secret.")
    var keys: String?

    @Option(name: .long, help: "A JWKS (or single JWK) file. Repeatable.")
    var jwks: [String] = []

    @Option(name: .long, help: "A PEM key file (kid = file name without .pem). Repeatable.")
    var pem: [String] = []

    @Option(name: .customLong("secret-file"), help: "An HMAC secret file, bytes used exactly. Repeatable.")
    var secretFile: [String] = []

    /// The config, if one was named or gateway.conf exists here.
    func loadConfig() throws(CLIExit) -> GatewayConfig? {
        let path: String
        if let config { path = config } else if FileManager.default.fileExists(atPath: "gateway.conf") { path = "gateway.conf" } else { return nil }
        do { return try GatewayConfig.load(path: path) } catch { throw .usage("config is invalid:\n\(error)") }
    }

    /// The key folder to use for writing (keys generate) or reading.
    func keyDirectory(_ config: GatewayConfig?) -> String {
        keys ?? config?.auth.keys ?? "Keys"
    }

    /// Builds the store: the named files if any, else the folder.
    func keyStore(_ config: GatewayConfig?) throws(CLIExit) -> KeyStore {
        let files = jwks + pem + secretFile
        do {
            if !files.isEmpty {
                var keys: [JWTKey] = [], warnings: [String] = []
                for path in jwks + pem + secretFile {
                    let ring = try KeyRing.load(file: path)
                    keys += ring.keys
                    warnings += ring.warnings
                }
                return KeyStore(ring: KeyRing(keys: keys, warnings: warnings))
            }
            return try KeyStore(directory: keyDirectory(config))
        } catch {
            throw .usage("cannot load keys:\n\(error.message)")
        }
    }
}

/// Claim policy flags; each overrides the config's value.
struct PolicyOptions: ParsableArguments {
    @Option(name: .long, help: "Accepted issuer (repeatable); overrides [auth] issuer.")
    var issuer: [String] = []

    @Option(name: .long, help: "Accepted audience (repeatable); overrides [auth] audience.")
    var audience: [String] = []

    @Option(name: .long, help: "Clock skew tolerated on exp/nbf/iat: seconds or 30s, 2m (default 60).")
    var leeway: String?

    @Option(name: .customLong("max-size"), help: "Maximum token size in bytes (default 16384).")
    var maxSize: Int?

    func validate() throws {
        if let leeway, DurationText.parse(leeway) == nil {
            throw ValidationError("--leeway expects seconds or a duration like 30s, 2m; got \"\(leeway)\"")
        }
        if let maxSize, maxSize < 1 { throw ValidationError("--max-size must be positive") }
    }

    func policy(_ config: GatewayConfig?) -> ClaimPolicy {
        var policy = config?.auth.policy ?? ClaimPolicy()
        if !issuer.isEmpty { policy.issuers = issuer }
        if !audience.isEmpty { policy.audiences = audience }
        if let leeway, let seconds = DurationText.parse(leeway) { policy.leeway = seconds }
        return policy
    }

    func maximumSize(_ config: GatewayConfig?) -> Int {
        maxSize ?? config?.auth.maxTokenSize ?? CompactJWS.defaultMaximumSize
    }
}

/// Reads the token argument, or standard input for `-` or no argument. Bytes are kept as
/// they are (invalid UTF-8 and NUL included) except for surrounding whitespace.
enum TokenInput {
    static let stdinLimit = 8 * 1024 * 1024

    static func read(_ argument: String?) throws(CLIExit) -> [UInt8] {
        if let argument, argument != "-" { return trim(Array(argument.utf8)) }
        if isatty(STDIN_FILENO) == 1 {
            throw .usage("no token given: pass it as an argument, or pipe it to standard input (use - to read stdin)")
        }
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Foundation.read(STDIN_FILENO, &buffer, buffer.count)
            if n < 0 { throw .usage("cannot read standard input: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            data += buffer.prefix(n)
            if data.count > stdinLimit { throw .usage("standard input is larger than \(stdinLimit) bytes; that is not a token") }
        }
        return trim(data)
    }

    private static func trim(_ bytes: [UInt8]) -> [UInt8] {
        let space: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
        var slice = bytes[...]
        while let first = slice.first, space.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, space.contains(last) { slice = slice.dropLast() }
        return Array(slice)
    }
}
