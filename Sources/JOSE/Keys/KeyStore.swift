import Synchronization

/// The current key ring of a folder, replaceable while the process runs.
///
/// `reload()` reads the folder again and swaps the ring in one step; a folder that fails to
/// load leaves the old ring serving and throws its problems (`key_config`). Readers always see a whole ring.
public final class KeyStore: Sendable {
    public let directory: String

    struct State {
        var local: KeyRing
        /// Keys fetched from JWKS URLs, by URL.
        var remote: [String: [JWTKey]] = [:]
        var ring: KeyRing
        var fingerprint: String

        mutating func rebuild() {
            ring = remote.isEmpty ? local : KeyRing(keys: local.keys + remote.keys.sorted().flatMap { remote[$0]! }, warnings: local.warnings)
        }
    }

    private let state: Mutex<State>

    public init(directory: String) throws(AuthFailure) {
        self.directory = directory
        let fingerprint = KeyRing.fingerprint(directory: directory)
        let ring = try KeyRing.load(directory: directory)
        state = Mutex(State(local: ring, ring: ring, fingerprint: fingerprint))
    }

    /// A store over a fixed ring (a single file, or keys made in code).
    public init(ring: KeyRing) {
        directory = ""
        state = Mutex(State(local: ring, ring: ring, fingerprint: ""))
    }

    public var ring: KeyRing { state.withLock { $0.ring } }

    /// Replaces the keys fetched from one JWKS URL (a new ring generation: cached verdicts die).
    public func setRemoteKeys(_ keys: [JWTKey], from url: String) {
        state.withLock { state in
            state.remote[url] = keys
            state.rebuild()
        }
    }

    /// The current ring's generation, without copying the ring.
    public var generation: UInt64 { state.withLock { $0.ring.generation } }

    /// Reads the folder again; on success the new ring replaces the old one.
    @discardableResult
    public func reload() throws(AuthFailure) -> KeyRing {
        guard !directory.isEmpty else { return ring }
        let fingerprint = KeyRing.fingerprint(directory: directory)
        let ring = try KeyRing.load(directory: directory)
        // A folder emptied while keys are in service (a rotation half done) would refuse every
        // token: refused like a bad key file, and the keys in service stay.
        if ring.keys.isEmpty, state.withLock({ !$0.local.keys.isEmpty }) {
            throw .keys(["\(directory): no verification keys left; the keys in service stay (put the new keys in before removing the old)"])
        }
        return state.withLock { state in
            state.local = ring
            state.fingerprint = fingerprint
            state.rebuild()
            return state.ring
        }
    }

    /// Reloads only when a key file was added, removed or changed. Returns true if it did.
    @discardableResult
    public func reloadIfChanged() throws(AuthFailure) -> Bool {
        guard !directory.isEmpty else { return false }
        let current = state.withLock { $0.fingerprint }
        guard KeyRing.fingerprint(directory: directory) != current else { return false }
        try reload()
        return true
    }
}
