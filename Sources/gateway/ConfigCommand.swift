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
        let config: GatewayConfig
        do {
            config = try GatewayConfig.load(path: file)
        } catch {
            print(error.description)
            throw CLIExit.quiet(1)
        }
        let problems = config.problemsOnThisMachine()
        if !problems.isEmpty {
            print("\(file): cannot be served here:\n" + problems.map { "  \($0)" }.joined(separator: "\n"))
            throw CLIExit.quiet(1)
        }
        print("\(file): OK (listen \(config.server.host):\(config.server.port), keys \(config.auth.keys), \(config.routes.count) routes\(config.cors == nil ? "" : ", cors on"))")
    }
}
