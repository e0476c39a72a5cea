/// Strict base64url (RFC 7515 section 2): the URL-safe alphabet, no padding, no whitespace,
/// and zero unused bits in the last character.
///
/// Decoding works on raw bytes so that a token is never turned into a `String` to be read.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// 0xFF marks a byte outside the alphabet.
    private static let table: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// Encodes bytes without padding.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let input = Array(bytes)
        var out = [UInt8]()
        out.reserveCapacity((input.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= input.count {
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(alphabet[Int(n & 63)])
            i += 3
        }
        switch input.count - i {
        case 1:
            let n = UInt32(input[i]) << 16
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
        case 2:
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
        default: break
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes strict base64url, or returns nil for any character outside the alphabet, a
    /// length that cannot occur (4n+1), or non-zero unused trailing bits.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var s = String(text)
        return s.withUTF8 { decode(UnsafeRawBufferPointer($0)) }
    }

    /// Decodes strict base64url from bytes; see ``decode(_:)-(StringProtocol)``.
    public static func decode(_ input: UnsafeRawBufferPointer) -> [UInt8]? {
        let count = input.count
        if count % 4 == 1 { return nil }
        let capacity = count / 4 * 3 + max(0, count % 4 - 1)
        var ok = true
        let out = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            initialized = 0
            ok = table.withUnsafeBufferPointer { t -> Bool in
                guard let src = input.baseAddress?.assumingMemoryBound(to: UInt8.self), var dst = buffer.baseAddress else { return true }
                var i = 0
                while i + 4 <= count {
                    let a = t[Int(src[i])], b = t[Int(src[i + 1])], c = t[Int(src[i + 2])], d = t[Int(src[i + 3])]
                    if (a | b | c | d) & 0xC0 != 0 { return false }
                    let n = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    dst[0] = UInt8(truncatingIfNeeded: n >> 16)
                    dst[1] = UInt8(truncatingIfNeeded: n >> 8)
                    dst[2] = UInt8(truncatingIfNeeded: n)
                    dst += 3
                    i += 4
                }
                switch count - i {
                case 2:
                    let a = t[Int(src[i])], b = t[Int(src[i + 1])]
                    if (a | b) & 0xC0 != 0 || b & 0x0F != 0 { return false }
                    dst[0] = a << 2 | b >> 4
                case 3:
                    let a = t[Int(src[i])], b = t[Int(src[i + 1])], c = t[Int(src[i + 2])]
                    if (a | b | c) & 0xC0 != 0 || c & 0x03 != 0 { return false }
                    dst[0] = a << 2 | b >> 4
                    dst[1] = b << 4 | c >> 2
                default: break
                }
                return true
            }
            initialized = ok ? capacity : 0
        }
        return ok ? out : nil
    }
}
