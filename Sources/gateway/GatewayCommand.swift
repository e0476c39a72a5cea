import ArgumentParser

@main
struct GatewayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gateway", abstract: "JWT edge gateway")
}
