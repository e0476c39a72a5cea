import Synchronization

/// Parsed JOSE headers by their encoded bytes. Tokens from one issuer share a handful of
/// headers (`{"alg","kid","typ"}`), so a distinct token still skips the header's base64url and
/// JSON. Only headers that parsed are kept; when full, the cache starts over (it is small and
/// refills from traffic), so hostile variety cannot grow it.
final class HeaderCache: Sendable {
    private let capacity: Int
    private let entries = Mutex<[ByteKey: JWSHeader]>([:])

    init(capacity: Int = 256) { self.capacity = capacity }

    func header(_ bytes: UnsafeRawBufferPointer) -> JWSHeader? {
        entries.withLock { $0[.borrowed(bytes)] }
    }

    func insert(_ bytes: UnsafeRawBufferPointer, _ header: JWSHeader) {
        let key = ByteKey.owned(Array(bytes))
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = header
        }
    }
}
