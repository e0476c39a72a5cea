import ArgumentParser

struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Inspect, verify and mint tokens with the key ring.",
        subcommands: [TokenInspect.self, TokenVerify.self, TokenMint.self]
    )
}
