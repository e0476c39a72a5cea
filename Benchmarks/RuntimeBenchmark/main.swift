// Runtime benchmark: session lookups per store (cache on and off), logins/s at the chosen
// password-hash cost, refreshes/s.
//
//   swift run -c release runtime-bench [--sessions N] [--lookups N] [--logins N] [--cost LOG2N]
//   (PostgreSQL rows run when GATEWAY_POSTGRES_URL is set: scripts/postgres.sh start prints one)
import Foundation
import JOSE
import NIOPosix
import Runtime

struct Options: Sendable {
    var sessions = 1000, lookups = 20_000, logins = 40, logN = PasswordHash.Cost.standard.logN

    static func parse() -> Options {
        var o = Options()
        var args = CommandLine.arguments.dropFirst().makeIterator()
        while let arg = args.next() {
            switch arg {
            case "--sessions": o.sessions = Int(args.next() ?? "") ?? o.sessions
            case "--lookups": o.lookups = Int(args.next() ?? "") ?? o.lookups
            case "--logins": o.logins = Int(args.next() ?? "") ?? o.logins
            case "--cost": o.logN = Int(args.next() ?? "") ?? o.logN
            default: fatalError("unknown argument \(arg)")
            }
        }
        return o
    }
}

let options = Options.parse()
let sessions = options.sessions, lookups = options.lookups, logins = options.logins, logN = options.logN

func percentile(_ sorted: [Double], _ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
func now() -> Double { Date().timeIntervalSince1970 }
func us(_ seconds: Double) -> String { String(format: "%.1f", seconds * 1e6) }

func lookupRow(_ name: String, _ store: any StateStore) async throws {
    var ids: [String] = []
    let t = now()
    for i in 0..<sessions {
        let user = User(id: UUID().uuidString.lowercased(), email: "bench-\(i)-\(UUID().uuidString.prefix(8))@example.com", createdAt: t, updatedAt: t)
        _ = try await store.insertUser(user, passwordHash: "x")
        let session = Session(id: UUID().uuidString.lowercased(), tenantID: "default", userID: user.id, contract: "default", createdAt: t, lastSeenAt: t, expiresAt: t + 3600)
        try await store.createSession(session, refreshHash: nil, limit: .refuse(beyond: 10), at: t)
        ids.append(session.id)
    }
    for (label, ttl) in [("cache off", 0.0), ("cache on ", 60.0)] {
        let cache = SessionCache(ttl: ttl)
        var samples: [Double] = []
        samples.reserveCapacity(lookups)
        for i in 0..<lookups {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try await cache.session(id: ids[i % ids.count], store: store, now: now())
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        samples.sort()
        print("\(name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(label)  p50 \(us(percentile(samples, 0.5))) us  p99 \(us(percentile(samples, 0.99))) us  (\(lookups) lookups over \(sessions) sessions)")
    }
}

func authRow(_ name: String, _ store: any StateStore) async throws {
    let dir = NSTemporaryDirectory() + "runtime-bench-keys-\(UUID().uuidString)"
    _ = try KeyFolder.generate(.ES256, kid: "bench", in: dir)
    var settings = AuthService.Settings(issuer: "http://127.0.0.1:8080/auth/v1")
    settings.passwordCost = PasswordHash.Cost(logN: logN, r: 8, p: 1)
    settings.loginLimitPerIP = .max
    settings.loginLimitPerEmail = .max
    settings.validator = IntentValidator(sessionLimit: .unlimited)
    let auth = AuthService(store: store, keys: try KeyStore(directory: dir), settings: settings, events: SessionEvents())
    let email = "bench-login-\(UUID().uuidString.prefix(8))@example.com"
    var refresh = try await auth.signUp(email: email, password: "benchmark-password", ip: "b").refreshToken
    let concurrency = ProcessInfo.processInfo.activeProcessorCount
    let start = now()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for worker in 0..<concurrency {
            group.addTask {
                for _ in stride(from: worker, to: logins, by: concurrency) { _ = try await auth.signIn(email: email, password: "benchmark-password", ip: "b") }
            }
        }
        try await group.waitForAll()
    }
    let loginRate = Double(logins) / (now() - start)
    let refreshes = 500
    let r0 = now()
    for _ in 0..<refreshes { refresh = try await auth.refresh(refresh).refreshToken }
    let refreshRate = Double(refreshes) / (now() - r0)
    print("\(name.padding(toLength: 10, withPad: " ", startingAt: 0)) logins/s \(String(format: "%.1f", loginRate)) (scrypt N=2^\(logN) r=8 p=1, \(concurrency) concurrent)  refreshes/s \(String(format: "%.0f", refreshRate)) (sequential)")
}

let sqlite = try await SQLiteStore.open(path: NSTemporaryDirectory() + "runtime-bench-\(UUID().uuidString)/state.db", eventLoop: MultiThreadedEventLoopGroup.singleton.any())
print("runtime-bench on \(ProcessInfo.processInfo.activeProcessorCount) cores")
try await lookupRow("sqlite", sqlite)
try await authRow("sqlite", sqlite)
try await sqlite.close()
if let url = ProcessInfo.processInfo.environment["GATEWAY_POSTGRES_URL"] {
    let postgres = try await PostgresStore.connect(url: url)
    try await lookupRow("postgres", postgres)
    try await authRow("postgres", postgres)
    postgres.close()
} else {
    print("postgres   (skipped: GATEWAY_POSTGRES_URL is not set; scripts/postgres.sh start prints one)")
}
