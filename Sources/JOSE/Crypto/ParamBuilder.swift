import COpenSSL  // internal: withParams hands OSSL_PARAM to PKey+Import
import Foundation

/// OSSL_PARAM_BLD keeps the pointers it is given (names, strings, octets, BIGNUMs) until
/// `OSSL_PARAM_BLD_to_param`; Swift's temporary pointers would dangle by then. This owner
/// copies each into memory it frees only after the params are built and used.
final class ParamBuilder {
    private let builder: OpaquePointer
    private var allocations: [UnsafeMutableRawPointer] = []
    private var numbers: [OpaquePointer] = []
    private var failed = false

    init() { builder = OSSL_PARAM_BLD_new()! }

    deinit {
        numbers.forEach { BN_clear_free($0) }
        allocations.forEach { free($0) }
        OSSL_PARAM_BLD_free(builder)
    }

    private func cString(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    /// A big-endian unsigned integer.
    func bignum(_ name: String, _ bytes: [UInt8]) {
        guard let bn = BN_bin2bn(bytes, Int32(bytes.count), nil) else { failed = true; return }
        numbers.append(bn)
        if OSSL_PARAM_BLD_push_BN(builder, cString(name), bn) != 1 { failed = true }
    }

    func utf8(_ name: String, _ value: String) {
        if OSSL_PARAM_BLD_push_utf8_string(builder, cString(name), cString(value), 0) != 1 { failed = true }
    }

    func octets(_ name: String, _ bytes: [UInt8]) {
        let p = malloc(max(1, bytes.count))!
        allocations.append(p)
        bytes.withUnsafeBytes { if let base = $0.baseAddress { p.copyMemory(from: base, byteCount: bytes.count) } }
        if OSSL_PARAM_BLD_push_octet_string(builder, cString(name), p, bytes.count) != 1 { failed = true }
    }

    /// Builds the params and hands them to `body`, freeing them afterwards.
    func withParams<T>(_ body: (UnsafeMutablePointer<OSSL_PARAM>) throws(AuthFailure) -> T) throws(AuthFailure) -> T {
        guard !failed, let params = OSSL_PARAM_BLD_to_param(builder) else {
            throw AuthFailure(.keyConfig, "key parameters unusable: \(OpenSSLError.drain("OSSL_PARAM_BLD"))")
        }
        defer { OSSL_PARAM_free(params) }
        return try body(params)
    }
}
