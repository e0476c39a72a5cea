import ArgumentParser
import Foundation
import Gateway
import JOSE

/// `gateway token mint`: signs a Supabase-style token with the newest private key.
struct TokenMint: ParsableCommand {
    /// The longest --ttl taken: 1000 years keeps exp far inside a 64-bit NumericDate.
    static let longestTTL: Double = 1000 * 365.25 * 86400

    static let configuration = CommandConfiguration(
        commandName: "mint",
        abstract: "Sign a Supabase-style token with the key ring (the newest private key unless --kid/--alg).",
        discussion: """
        Examples:
          gateway token mint --sub 6a1c…-uuid --role authenticated --ttl 1h --session-id 9b2e…-uuid
          gateway token mint --role anon --ttl 3650d            # a project anon key
          gateway token mint --sub u1 --claim app_metadata.tenant_id=acme --claim aal=aal2
        """
    )

    @OptionGroup var source: KeySourceOptions

    @Option(help: "Subject (the user id).") var sub: String?
    @Option(help: "Role claim.") var role: String = "authenticated"
    @Option(help: "Lifetime: seconds or 15m, 1h, 30d.") var ttl: String = "1h"
    @Option(name: .customLong("session-id"), help: "session_id claim.") var sessionID: String?
    @Option(help: "email claim.") var email: String?
    @Option(help: "Issuer (default: the config's first issuer).") var issuer: String?
    @Option(help: "Audience (default: the config's first audience, else \"authenticated\").") var audience: String?
    @Option(help: "Sign with this kid.") var kid: String?
    @Option(help: "Sign with this algorithm.") var alg: String?
    @Option(name: .customLong("claim"), help: "Extra claim PATH=VALUE; VALUE is JSON if it parses, else a string. Repeatable.")
    var claims: [String] = []

    func validate() throws {
        guard let seconds = DurationText.parse(ttl), seconds > 0, seconds <= Self.longestTTL else {
            throw ValidationError("--ttl expects a positive duration up to 1000 years like 3600, 15m, 1h; got \"\(ttl)\"")
        }
        _ = seconds
        if let alg, Algorithm(rawValue: alg) == nil {
            throw ValidationError("--alg must be one of \(Algorithm.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for claim in claims where !claim.contains("=") || claim.hasPrefix("=") {
            throw ValidationError("--claim expects PATH=VALUE, got \"\(claim)\"")
        }
    }

    func run() throws {
        let config = try source.loadConfig()
        let store = try source.keyStore(config)
        let now = Int64(Date().timeIntervalSince1970)
        let lifetime = Int64(exactly: (DurationText.parse(ttl) ?? 3600).rounded()) ?? 3600
        var object: [(String, JSONValue)] = []
        if let iss = issuer ?? config?.auth.issuers.first { object.append(("iss", .string(iss))) }
        if let sub { object.append(("sub", .string(sub))) }
        object.append(("aud", .string(audience ?? config?.auth.audiences.first ?? "authenticated")))
        object.append(("exp", .int(now + lifetime)))
        object.append(("iat", .int(now)))
        if let email { object.append(("email", .string(email))) }
        object.append(("role", .string(role)))
        if sub != nil {
            object.append(("aal", .string("aal1")))
            object.append(("is_anonymous", .bool(false)))
        }
        if let sessionID { object.append(("session_id", .string(sessionID))) }
        var value = JSONValue.object(object)
        for claim in claims {
            let eq = claim.firstIndex(of: "=")!
            let path = String(claim[..<eq]), text = String(claim[claim.index(after: eq)...])
            let parsed = (try? JSONValue.parse(text)) ?? .string(text)
            value = value.setting(path: path.split(separator: ".").map(String.init), to: parsed)
        }
        let signer: (key: JWTKey, algorithm: Algorithm)
        do { signer = try store.ring.signingKey(kid: kid, algorithm: alg.flatMap(Algorithm.init(rawValue:))) } catch {
            throw CLIExit.usage(error.message)
        }
        do {
            print(try TokenSigner.sign(claims: value, key: signer.key, algorithm: signer.algorithm))
        } catch {
            throw CLIExit.usage(error.message)
        }
    }
}

extension JSONValue {
    /// A copy with the member at `path` set, creating objects on the way.
    func setting(path: [String], to newValue: JSONValue) -> JSONValue {
        guard let first = path.first else { return newValue }
        var members: [(String, JSONValue)]
        if case .object(let existing) = self { members = existing } else { members = [] }
        if let i = members.firstIndex(where: { $0.0 == first }) {
            members[i].1 = members[i].1.setting(path: Array(path.dropFirst()), to: newValue)
        } else {
            members.append((first, JSONValue.object([]).setting(path: Array(path.dropFirst()), to: newValue)))
        }
        return .object(members)
    }
}
