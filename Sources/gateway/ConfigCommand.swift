import ArgumentParser
import Gateway

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check gateway.conf.",
        subcommands: [ConfigCheck.self]
    )
}

/// `gateway config check [FILE]`: every mistake with its line; exit 1 on any.
struct ConfigCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Print every mistake in a config file with its line; exit 1 if there is any."
    )

    @Argument(help: "The config file.") var file: String = "gateway.conf"

    func run() throws {
        do {
            let config = try GatewayConfig.load(path: file)
            print("\(file): OK (listen \(config.server.host):\(config.server.port), keys \(config.auth.keys))")
        } catch {
            print(error.description)
            throw CLIExit.quiet(1)
        }
    }
}
