import JOSE
import Testing

@testable import Runtime

/// Sign-in hashes against a decoy for an unknown email; the decoy must cost what the
/// configured password_cost makes a known email cost. It was always made at the standard cost
/// (N = 2^15, 32 MiB): with password_cost = 10 an unknown email took 32 times the work of a
/// known one (found by fuzz-api: 96 ms per unknown-email sign-in against 3 ms for the rest).
@Suite struct DecoyHashTests {
    @Test(arguments: [PasswordHash.Cost.fast, PasswordHash.Cost(logN: 12, r: 8, p: 1)])
    func decoyHasTheConfiguredCost(_ cost: PasswordHash.Cost) async throws {
        try await StoreTests.withStore { (store: SQLiteStore) in
            var settings = AuthService.Settings(issuer: "https://issuer.example/auth/v1")
            settings.passwordCost = cost
            let auth = AuthService(store: store, keys: KeyStore(ring: KeyRing(keys: [])), settings: settings, events: SessionEvents())
            let decoy = auth.decoyHash()
            #expect(decoy.hasPrefix("$scrypt$ln=\(cost.logN),r=\(cost.r),p=\(cost.p)$"), "\(decoy)")
            #expect(auth.decoyHash() == decoy, "made once")
            // An unknown email is refused as a wrong password is.
            await #expect {
                _ = try await auth.signIn(email: "nobody@example.com", password: "whatever-it-is", ip: "192.0.2.1")
            } throws: { ($0 as? RuntimeError)?.code == .invalidCredentials }
        }
    }
}
