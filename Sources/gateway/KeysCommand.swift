import ArgumentParser
import Foundation
import JOSE

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Generate and list keys in the key folder.",
        subcommands: [KeysGenerate.self, KeysList.self]
    )
}

/// `gateway keys generate`: a new private key (0600) and its public JWK in jwks.json.
struct KeysGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Create a signing key: the private key file (0600) and its public JWK in jwks.json."
    )

    @OptionGroup var source: KeySourceOptions
    @Option(help: "ES256, ES384, ES512, RS256, PS256, EdDSA, HS256 ...") var alg: String = "ES256"
    @Option(help: "Key folder (default: the config's, else Keys).") var dir: String?
    @Option(help: "Key id (default: <alg>-<date>-<random>).") var kid: String?

    func validate() throws {
        guard Algorithm(rawValue: alg) != nil else {
            throw ValidationError("--alg must be one of \(Algorithm.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let kid, kid.isEmpty || kid.contains("/") || kid.hasPrefix(".") {
            throw ValidationError("--kid must be a plain file name (no /, not starting with .)")
        }
    }

    func run() throws {
        let config = try source.loadConfig()
        let directory = dir ?? source.keyDirectory(config)
        let result = Result { () throws(AuthFailure) -> KeyFolder.Written in
            try KeyFolder.generate(Algorithm(rawValue: alg)!, kid: kid, in: directory)
        }
        guard case .success(let written) = result else {
            if case .failure(let failure) = result { throw CLIExit.usage(failure.message) }
            return
        }
        print("generated \(alg) key \"\(written.kid)\"")
        print("  private: \(written.privatePath) (mode 0600)")
        if let jwks = written.jwksPath { print("  public:  \(jwks)") }
    }
}

/// `gateway keys list`: every key in the ring with its algorithms and abilities.
struct KeysList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the key ring.")

    @OptionGroup var source: KeySourceOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let config = try source.loadConfig()
        let ring = try source.keyStore(config).ring
        if json {
            let rows: [JSONValue] = ring.keys.map { key in
                .object([("kid", key.kid.map(JSONValue.string) ?? .null), ("type", .string(key.typeDescription)),
                         ("algorithms", .array(key.algorithms.map { .string($0.rawValue) })),
                         ("verify", .bool(key.canVerify)), ("sign", .bool(key.canSign)), ("source", .string(key.source))])
            }
            print(JSONValue.object([("keys", .array(rows)), ("warnings", .array(ring.warnings.map(JSONValue.string)))]).serialized(pretty: true))
            return
        }
        let table = [["KID", "TYPE", "ALGORITHMS", "USE", "SOURCE"]] + ring.keys.map { key in
            [key.kid ?? "-", key.typeDescription, key.algorithms.map(\.rawValue).joined(separator: ","),
             [key.canVerify ? "verify" : nil, key.canSign ? "sign" : nil].compactMap { $0 }.joined(separator: "+").ifEmpty("none"),
             key.source]
        }
        let widths = (0..<5).map { column in table.map { $0[column].count }.max() ?? 0 }
        for row in table {
            print(row.enumerated().map { $0.offset == 4 ? $0.element : $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
        if ring.keys.isEmpty { print("(no keys; run `gateway keys generate`)") }
        for warning in ring.warnings { warn("warning: \(warning)") }
    }
}

extension String {
    func ifEmpty(_ replacement: String) -> String { isEmpty ? replacement : self }
}
