import ArgumentParser
import Foundation
import Gateway
import JOSE
import NIOPosix
import Runtime

/// `gateway users add|list|disable|enable`: operator access to the identity store named by
/// `[runtime] store` (safe while the gateway runs: SQLite in WAL mode takes both).
struct UsersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "Add, list, disable and enable users in the runtime store.",
        subcommands: [UsersAdd.self, UsersList.self, UsersDisable.self, UsersEnable.self]
    )
}

struct StoreOptions: ParsableArguments {
    @Option(help: "Config file naming [runtime] store.") var config: String = "gateway.conf"

    func runtime() throws(CLIExit) -> RuntimeConfig {
        do { return try GatewayConfig.load(path: config).runtime } catch { throw .usage("config is invalid:\n\(error)") }
    }

    /// Runs `body` with the store open, synchronously (the CLI has no event loop of its own).
    func withStore<T: Sendable>(_ body: @escaping @Sendable (any StateStore, RuntimeConfig) async throws -> T) throws -> T {
        let runtime = try runtime()
        guard runtime.store.hasPrefix("sqlite:") else { throw CLIExit.usage("only sqlite stores can be managed from the CLI in this build") }
        let path = String(runtime.store.dropFirst(7))
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task { @Sendable in
            do {
                let store = try await SQLiteStore.open(path: path, eventLoop: MultiThreadedEventLoopGroup.singleton.any())
                do { box.result = .success(try await body(store, runtime)) } catch { box.result = .failure(error) }
                try? await store.close()
            } catch {
                box.result = .failure(error)
            }
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }
}

final class ResultBox<T: Sendable>: @unchecked Sendable {  // written before the semaphore signals, read after it
    var result: Result<T, any Error>?
}

struct UsersAdd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a user (the password is read from standard input unless --password is given).")
    @OptionGroup var store: StoreOptions
    @Argument(help: "Email address.") var email: String
    @Option(help: "Password (prefer standard input: it stays out of shell history).") var password: String?
    @Option(help: "Role claim for the user's tokens.") var role: String = "authenticated"
    @Option(help: "Tenant, written to app_metadata.tenant_id.") var tenant: String?

    func run() throws {
        let secret: String
        if let password { secret = password } else {
            secret = (readLine(strippingNewline: true) ?? "")
        }
        do { try AuthService.checkNewPassword(secret, minimumLength: 8) } catch { throw CLIExit.usage(error.message) }
        let email = self.email.lowercased(), role = self.role, tenant = self.tenant
        let added = try store.withStore { store, runtime in
            let now = Date().timeIntervalSince1970
            var app: [(String, JSONValue)] = [("provider", .string("email")), ("providers", .array([.string("email")]))]
            if let tenant { app.append(("tenant_id", .string(tenant))) }
            let user = User(id: UUID().uuidString.lowercased(), email: email, tenantID: tenant ?? "default", role: role,
                            appMetadata: JSONValue.object(app).serialized(), createdAt: now, updatedAt: now)
            let hash = try PasswordHash.hash(secret, cost: PasswordHash.Cost(logN: runtime.passwordCost, r: 8, p: 1))
            return try await store.insertUser(user, passwordHash: hash) ? user.id : nil
        }
        guard let added else { throw CLIExit.rejected("a user with email \(email) already exists") }
        print("added \(email) (id \(added), role \(role))")
    }
}

struct UsersList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List users.")
    @OptionGroup var store: StoreOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let users = try store.withStore { store, _ in try await store.users() }
        if json {
            print(JSONValue.array(users.map { .object([("id", .string($0.id)), ("email", .string($0.email)), ("role", .string($0.role)),
                                                       ("tenant_id", .string($0.tenantID)), ("disabled", .bool($0.disabled))]) }).serialized(pretty: true))
            return
        }
        for user in users {
            print("\(user.email)  \(user.id)  \(user.role)  tenant=\(user.tenantID)\(user.disabled ? "  DISABLED" : "")")
        }
        if users.isEmpty { print("(no users)") }
    }
}

/// Disables (revoking the user's sessions) or enables a user.
private func setDisabled(_ disabled: Bool, email: String, store: StoreOptions) throws {
    let found = try store.withStore { store, _ in try await store.setDisabled(email: email, disabled, at: Date().timeIntervalSince1970) }
    guard found else { throw CLIExit.rejected("no user with email \(email)") }
    print(disabled ? "disabled \(email); their sessions are revoked" : "enabled \(email)")
}

struct UsersDisable: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "disable", abstract: "Disable a user and revoke their sessions.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "Email address.") var email: String

    func run() throws { try setDisabled(true, email: email, store: store) }
}

struct UsersEnable: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enable", abstract: "Enable a disabled user.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "Email address.") var email: String

    func run() throws { try setDisabled(false, email: email, store: store) }
}
