import Foundation
import JOSE
import Synchronization

/// Request ids: a random per-process prefix and a counter; unique, cheap, not guessable
/// across restarts.
enum RequestIDs {
    private static let prefix = secureRandomBytes(6).map { String(format: "%02x", $0) }.joined()
    private static let counter = AtomicCounter()

    private static let prefixBytes = Array((prefix + "-").utf8)

    static func next() -> String { string(nextNumber()) }

    /// A new id as its number; `string` and `put` spell it (the direct path writes ids
    /// as bytes and makes a string only when one is logged or answered).
    static func nextNumber() -> UInt64 { counter.next() }

    static func string(_ number: UInt64) -> String {
        var id = prefix
        id.append("-")
        id.append(String(number))
        return id
    }

    /// The most bytes `put` writes.
    static let maximumLength = 13 + 20

    @inline(__always)
    static func put(_ number: UInt64, into out: inout ByteWriter) {
        out.put(prefixBytes)
        out.putDecimal(number)
    }

    /// A client's X-Request-Id is kept when it is 1-128 of [A-Za-z0-9._:-].
    static func isValid(_ bytes: some Collection<UInt8>) -> Bool {
        (1...128).contains(bytes.count) && bytes.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D || b == 0x3A
        }
    }
}

final class AtomicCounter: Sendable {
    private let value = Atomic<UInt64>(0)
    func next() -> UInt64 { value.add(1, ordering: .relaxed).newValue }
}
