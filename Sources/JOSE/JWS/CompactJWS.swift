import Foundation

/// The three parts of a compact JWS (RFC 7515 section 7.1), located in the token's bytes.
///
/// Splitting copies nothing: the ranges index into the caller's buffer. Whitespace, padding and
/// any byte outside base64url are refused later by the strict decoder.
public struct CompactJWS: Sendable {
    public let header: Range<Int>
    public let payload: Range<Int>
    public let signature: Range<Int>

    /// The bytes covered by the signature: `header.payload`.
    public var signingInput: Range<Int> { header.lowerBound..<payload.upperBound }

    /// Default maximum token size: 16 KiB.
    public static let defaultMaximumSize = 16 * 1024

    /// Locates the parts, or says precisely why the bytes are not a compact JWS.
    public init(_ token: UnsafeRawBufferPointer, maximumSize: Int = CompactJWS.defaultMaximumSize) throws(AuthFailure) {
        if token.isEmpty { throw AuthFailure(.malformed, "empty token") }
        if token.count > maximumSize {
            throw AuthFailure(.tokenTooLarge, "token is \(token.count) bytes, the limit is \(maximumSize)")
        }
        var dots = (-1, -1)
        var count = 0
        let base = token.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var from = 0
        while from < token.count, let hit = memchr(base + from, Int32(UInt8(ascii: ".")), token.count - from) {
            let i = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            count += 1
            if count == 1 { dots.0 = i } else if count == 2 { dots.1 = i }
            from = i + 1
        }
        guard count == 2 else {
            if token.first == UInt8(ascii: "{") {
                throw AuthFailure(.malformed, "JSON-serialized JWS is not accepted; expected compact form header.payload.signature")
            }
            throw AuthFailure(.malformed, "expected 3 dot-separated parts, found \(count + 1)")
        }
        header = 0..<dots.0
        payload = (dots.0 + 1)..<dots.1
        signature = (dots.1 + 1)..<token.count
        if header.isEmpty { throw AuthFailure(.malformed, "header part is empty") }
        if signature.isEmpty { throw AuthFailure(.malformed, "signature part is empty") }
    }
}

extension UnsafeRawBufferPointer {
    /// Decodes a base64url part of a token or throws `malformed` naming the part.
    func decodeBase64URL(_ range: Range<Int>, part: String) throws(AuthFailure) -> [UInt8] {
        guard let bytes = Base64URL.decode(UnsafeRawBufferPointer(rebasing: self[range])) else {
            throw AuthFailure(.malformed, "\(part) is not strict base64url (no padding, whitespace or +/)")
        }
        return bytes
    }
}
