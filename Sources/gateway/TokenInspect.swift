import ArgumentParser
import Foundation
import JOSE

/// `gateway token inspect`: header and claims, times in UTC and relative, the key that
/// verified it, and the verdict with its reason. `--no-verify` only decodes, and says so.
struct TokenInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a token's header, claims, times, verifying key and verdict (exit 0 valid, 1 rejected)."
    )

    @OptionGroup var source: KeySourceOptions
    @OptionGroup var policyOptions: PolicyOptions

    @Flag(help: "Print one JSON object for machines.") var json = false
    @Flag(name: .customLong("no-verify"), help: "Decode only: check neither signature nor claims.") var noVerify = false

    @Argument(help: "The token, or - (or nothing) to read standard input.")
    var token: String?

    func run() throws {
        let config = try source.loadConfig()
        let bytes = try TokenInput.read(token)
        let maximumSize = policyOptions.maximumSize(config)
        let now = Timestamp.now()
        var verdict: Result<VerifiedToken, AuthFailure>? = nil
        var warnings: [String] = []
        if !noVerify {
            let store = try source.keyStore(config)
            warnings = store.ring.warnings
            let verifier = TokenVerifier(keys: store, policy: policyOptions.policy(config), maximumTokenSize: maximumSize, cacheCapacity: 0)
            verdict = bytes.withUnsafeBytes { raw in
                Result { () throws(AuthFailure) -> VerifiedToken in try verifier.verify(bytes: raw, now: now) }
            }
        }
        // Decode for display whatever the verdict: a refused token is shown for what it claims.
        let text = String(decoding: bytes, as: UTF8.self)
        let decoded = bytes.count <= maximumSize ? DecodedToken(text, maximumSize: maximumSize) : nil
        let report = Report(size: bytes.count, decoded: decoded, verdict: verdict, now: now)
        if json {
            print(report.json.serialized(pretty: true))
        } else {
            for warning in warnings { warn("warning: \(warning)") }
            print(report.text)
            if noVerify { warn("WARNING: --no-verify: nothing was verified; do not trust these claims") }
        }
        if case .failure(let failure) = verdict { throw CLIExit.quiet(1).orRejected(failure, json: json) }
        if noVerify, decoded?.header == nil || decoded?.claims == nil { throw CLIExit.quiet(1) }
    }
}

extension CLIExit {
    /// Text mode already printed the verdict; keep stderr for the one-line reason anyway.
    func orRejected(_ failure: AuthFailure, json: Bool) -> CLIExit {
        json ? .quiet(1) : failure.cliExit
    }
}

/// What inspect shows, built once and rendered as text or JSON.
struct Report {
    let size: Int
    let decoded: DecodedToken?
    let verdict: Result<VerifiedToken, AuthFailure>?
    let now: Double

    private var claims: JSONNode? { decoded?.claims }

    private func times() -> [(String, Double)] {
        ["iat", "nbf", "exp"].compactMap { name in claims?[name]?.number.map { (name, $0) } }
    }

    private func relative(_ name: String, _ value: Double) -> String {
        let delta = value - now
        switch name {
        case "exp": return delta > 0 ? "expires in \(Duration.describe(delta))" : "expired \(Duration.describe(delta)) ago"
        case "nbf": return delta > 0 ? "valid in \(Duration.describe(delta))" : "valid since \(Duration.describe(delta))"
        default: return delta > 0 ? "\(Duration.describe(delta)) in the future" : "\(Duration.describe(delta)) ago"
        }
    }

    var text: String {
        var out: [String] = []
        if verdict == nil {
            out.append("!! NOT VERIFIED (--no-verify): signature and claims were not checked !!")
            out.append("")
        }
        let header = decoded?.headerJSON
        let alg = header?["alg"]?.string ?? "?"
        let kid = header?["kid"]?.string.map { ", kid \"\($0)\"" } ?? ""
        out.append("Token    \(alg)\(kid), \(size) bytes")
        if let header { out += ["", "Header", header.serialized(pretty: true)] }
        if let claims { out += ["", "Claims", claims.serialized(pretty: true)] }
        let times = times()
        if !times.isEmpty {
            out += ["", "Times"]
            for (name, value) in times { out.append("  \(name)  \(Timestamp.utc(value))  (\(relative(name, value)))") }
        }
        if let claims, claims.kind == .object {
            let fields: [(String, String?)] = [
                ("sub", claims["sub"]?.string), ("role", claims["role"]?.string),
                ("session_id", claims["session_id"]?.string), ("aal", claims["aal"]?.string),
                ("is_anonymous", claims["is_anonymous"]?.bool.map { $0 ? "true" : "false" }),
                ("email", claims["email"]?.string), ("tenant", claims.at(path: "app_metadata.tenant_id")?.string),
            ]
            let present = fields.filter { $0.1 != nil && !$0.1!.isEmpty }
            if !present.isEmpty {
                out += ["", "Supabase"]
                for (name, value) in present { out.append("  " + name.padding(toLength: 13, withPad: " ", startingAt: 0) + value!) }
            }
        }
        for problem in decoded?.problems ?? [] { out.append("Decode   \(problem)") }
        out.append("")
        switch verdict {
        case .success(let token):
            out.append("Key      \(token.key.label)")
            out.append("Verdict  VALID (\(token.algorithm.rawValue) signature verified, claims accepted)")
        case .failure(let failure):
            out.append("Verdict  REJECTED  \(failure.reason.rawValue): \(failure.message)")
        case nil:
            out.append("Verdict  NOT VERIFIED (--no-verify)")
        }
        return out.joined(separator: "\n")
    }

    var json: JSONValue {
        var members: [(String, JSONValue)] = []
        switch verdict {
        case .success(let token):
            members += [("verified", .bool(true)), ("valid", .bool(true))]
            var key: [(String, JSONValue)] = [("type", .string(token.key.typeDescription)), ("source", .string(token.key.source))]
            if let kid = token.key.kid { key.insert(("kid", .string(kid)), at: 0) }
            members.append(("key", .object(key)))
        case .failure(let failure):
            members += [("verified", .bool(true)), ("valid", .bool(false)),
                        ("reason", .string(failure.reason.rawValue)), ("message", .string(failure.message))]
        case nil:
            members += [("verified", .bool(false)), ("valid", .null), ("warning", .string("--no-verify: nothing was verified"))]
        }
        members.append(("size", .int(Int64(size))))
        members.append(("header", decoded?.headerJSON?.jsonValue ?? .null))
        members.append(("claims", claims?.jsonValue ?? .null))
        members.append(("times", .object(times().map { name, value in
            (name, .object([("value", .double(value)), ("utc", .string(Timestamp.utc(value))), ("relative", .string(relative(name, value)))]))
        })))
        if let problems = decoded?.problems, !problems.isEmpty { members.append(("decode_problems", .array(problems.map { .string($0) }))) }
        return .object(members)
    }
}
