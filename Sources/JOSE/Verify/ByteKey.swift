import Foundation

/// Bytes as a dictionary key (a whole token, a header segment). Stored keys own their bytes;
/// a lookup borrows the caller's bytes for the length of the locked lookup only, so a hit
/// allocates nothing.
///
/// The hash covers the length and the last 32 bytes (for a token, the signature's tail, which
/// differs between any two tokens a key signed); equality compares every byte. The caches
/// store only verified tokens, or a bounded number of headers, so colliding entries cannot
/// pile up.
enum ByteKey: Hashable, @unchecked Sendable {  // .borrowed never outlives the lock it is used under
    case owned([UInt8])
    case borrowed(UnsafeRawBufferPointer)

    func withBytes<T>(_ body: (UnsafeRawBufferPointer) -> T) -> T {
        switch self {
        case .owned(let bytes): bytes.withUnsafeBytes(body)
        case .borrowed(let buffer): body(buffer)
        }
    }

    func hash(into hasher: inout Hasher) {
        withBytes { bytes in
            hasher.combine(bytes.count)
            hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: bytes.suffix(32)))
        }
    }

    static func == (a: ByteKey, b: ByteKey) -> Bool {
        a.withBytes { x in b.withBytes { y in x.count == y.count && (x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0) } }
    }
}
