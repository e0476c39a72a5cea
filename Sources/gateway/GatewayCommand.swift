import ArgumentParser
import Foundation

/// `gateway`: the edge gateway and its operator tools.
///
/// Exit statuses are a promise scripts rely on: 0 valid/success, 1 rejected, 2 usage errors
/// and unreadable input. The parser's own usage errors (64) are mapped to 2 here, once.
@main
struct GatewayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "A JWT edge gateway: verifies Supabase-style tokens locally and guards routes.",
        subcommands: [ServeCommand.self, TokenCommand.self, KeysCommand.self, UsersCommand.self, ConfigCommand.self]
    )

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let exit as CLIExit {
            exit.finish()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                // --help, --version: print and succeed.
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            let message = fullMessage(for: error)
            if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
            Foundation.exit(code == .failure ? 1 : 2)
        }
    }
}

/// How a command ends other than success: a rejection (1) or a usage/input problem (2),
/// with a one-line reason on standard error.
enum CLIExit: Error {
    case rejected(String)
    case usage(String)
    case quiet(Int32)

    func finish() -> Never {
        switch self {
        case .rejected(let message):
            FileHandle.standardError.write(Data((message + "\n").utf8))
            Foundation.exit(1)
        case .usage(let message):
            FileHandle.standardError.write(Data(("gateway: " + message + "\n").utf8))
            Foundation.exit(2)
        case .quiet(let code):
            Foundation.exit(code)
        }
    }
}

/// Writes a line to standard error.
func warn(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
