private import COpenSSL

/// A libcrypto call that failed, with OpenSSL's own error queue as the explanation.
/// Internal: callers outside the crypto files see its description inside an ``AuthFailure``.
struct OpenSSLError: Error, Sendable, CustomStringConvertible {
    let operation: String
    let details: [String]

    var description: String {
        details.isEmpty ? "\(operation) failed" : "\(operation) failed: \(details.joined(separator: "; "))"
    }

    /// Drains the thread's OpenSSL error queue into an error for `operation`.
    static func drain(_ operation: String) -> OpenSSLError {
        var details: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            details.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return OpenSSLError(operation: operation, details: details)
    }

    /// Forgets queued errors after a check whose failure is an answer, not a fault
    /// (a signature that does not verify).
    static func clearQueue() { ERR_clear_error() }
}

/// Checks a libcrypto return code (1 is success) and throws with the drained error queue.
@inline(__always)
func ossl(_ rc: Int32, _ operation: @autoclosure () -> String) throws(OpenSSLError) {
    if rc != 1 { throw OpenSSLError.drain(operation()) }
}

/// Checks a libcrypto pointer result and throws with the drained error queue.
@inline(__always)
func ossl<T>(_ value: T?, _ operation: @autoclosure () -> String) throws(OpenSSLError) -> T {
    guard let value else { throw OpenSSLError.drain(operation()) }
    return value
}
