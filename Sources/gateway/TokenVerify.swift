import ArgumentParser
import JOSE

/// `gateway token verify`: silent; exit 0 valid, 1 rejected (reason on stderr), 2 usage or
/// unreadable input.
struct TokenVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a token: exit 0 when valid, 1 when rejected (reason on stderr), 2 on usage errors.",
        discussion: "gateway token verify --keys DIR --issuer ISS --audience AUD [--leeway 60] TOKEN"
    )

    @OptionGroup var source: KeySourceOptions
    @OptionGroup var policyOptions: PolicyOptions

    @Argument(help: "The token, or - (or nothing) to read standard input.")
    var token: String?

    func run() throws {
        let config = try source.loadConfig()
        let store = try source.keyStore(config)
        let bytes = try TokenInput.read(token)
        let verifier = TokenVerifier(keys: store, policy: policyOptions.policy(config),
                                     maximumTokenSize: policyOptions.maximumSize(config), cacheCapacity: 0)
        do {
            _ = try bytes.withUnsafeBytes { raw in
                Result { () throws(AuthFailure) -> VerifiedToken in try verifier.verify(bytes: raw) }
            }.get()
        } catch {
            throw error.cliExit
        }
    }
}
