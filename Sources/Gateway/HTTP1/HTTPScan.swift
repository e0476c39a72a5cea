import Foundation

/// Byte-level HTTP/1.1 reading for the direct proxy path: finds where a head ends, splits it
/// into lines and header fields as offsets into the bytes it was given, and follows chunked
/// framing without copying. Strict: anything it does not fully understand is reported as
/// such, and the caller hands the connection to the full HTTP stack instead of guessing.
enum HTTPScan {
    static let cr: UInt8 = 0x0D, lf: UInt8 = 0x0A, sp: UInt8 = 0x20, tab: UInt8 = 0x09, colon: UInt8 = 0x3A

    /// The offset just past the empty line that ends a head in `p`, or nil when it has not
    /// all arrived. A bare LF counts as a line end here so such heads are found (and then
    /// refused by the field scan, not waited on forever).
    static func headEnd(_ p: UnsafeRawBufferPointer) -> Int? {
        guard let base = p.baseAddress else { return nil }
        var i = 0
        while i < p.count, let found = memchr(base + i, Int32(lf), p.count - i) {
            let j = base.distance(to: UnsafeRawPointer(found))
            if j >= 1, p[j - 1] == lf { return j + 1 }
            if j >= 2, p[j - 1] == cr, p[j - 2] == lf { return j + 1 }
            i = j + 1
        }
        return nil
    }

    /// A control character a field value, reason phrase, chunk extension or trailer may not
    /// hold (CTL other than HTAB; CR and LF end lines and are looked for first).
    @inline(__always)
    static func isControl(_ b: UInt8) -> Bool { (b < 0x20 && b != tab) || b == 0x7F }

    /// A host name's bytes as the gateway accepts them: letters, digits, '.', '-' and '_'.
    @inline(__always)
    static func isRegNameByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x2D || b == 0x5F
    }

    /// The value of a hexadecimal digit, nil for any other byte.
    @inline(__always)
    static func hexDigit(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }

    /// RFC 9110 tchar.
    @inline(__always)
    static func isTokenChar(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
        default: return false
        }
    }

    /// Whether the bytes at `at` are exactly `literal` (the caller knows they are in bounds).
    @inline(__always)
    static func equals(_ p: UnsafeRawBufferPointer, _ at: Int, _ literal: StaticString) -> Bool {
        memcmp(p.baseAddress! + at, literal.utf8Start, literal.utf8CodeUnitCount) == 0
    }

    /// Whether `p[range]` is exactly `literal`.
    @inline(__always)
    static func equals(_ p: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString) -> Bool {
        range.count == literal.utf8CodeUnitCount && equals(p, range.lowerBound, literal)
    }

    /// The offset of the CR that ends a field value starting at `start`, or nil if a control
    /// character other than tab (or DEL) comes first or no CR comes before `end`. Eight bytes
    /// at a time: a word with no byte below 0x20 and none equal to 0x7F is skipped whole.
    @inline(__always)
    static func valueEnd(_ p: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Int? {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        var i = start
        while i < end {
            if end - i >= 8 {
                let w = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                // High bit set in a byte below 0x20 or equal to 0x7F (bytes above the first such
                // byte may be flagged falsely by the borrow; only the lowest is used).
                let below = (w &- ones &* 0x20) & ~w & highs
                let x = w ^ (ones &* 0x7F)
                let del = (x &- ones) & ~x & highs
                let special = below | del
                if special == 0 {
                    i += 8
                    continue
                }
                i += special.trailingZeroBitCount / 8
            }
            let b = p[i]
            if b == cr { return i }
            if isControl(b) { return nil }
            i += 1
        }
        return nil
    }

    /// One header field: the whole line (with its CRLF), the name, and the value without
    /// surrounding whitespace, all as offsets.
    struct Field {
        var line: Range<Int>
        var name: Range<Int>
        var value: Range<Int>
    }

    /// Splits the field lines from `start` up to `end` (the offset `headEnd` returned).
    /// Returns false on anything but `token ":" OWS value OWS CRLF` with visible or
    /// whitespace characters in the value: bare LF, obsolete folding, control characters.
    static func fields(_ p: UnsafeRawBufferPointer, from start: Int, to end: Int, into out: inout [Field]) -> Bool {
        var i = start
        while i < end {
            if p[i] == cr { return i + 2 == end && p[i + 1] == lf }
            let nameStart = i
            while i < end, isTokenChar(p[i]) { i += 1 }
            guard i > nameStart, i < end, p[i] == colon else { return false }
            let nameEnd = i
            i += 1
            while i < end, p[i] == sp || p[i] == tab { i += 1 }
            let valueStart = i
            // Visible characters, spaces and tabs only (obs-text allowed), up to the CR.
            guard let lineEnd = valueEnd(p, from: i, to: end) else { return false }
            var trimmed = lineEnd
            while trimmed > valueStart, p[trimmed - 1] == sp || p[trimmed - 1] == tab { trimmed -= 1 }
            i = lineEnd
            guard i + 1 < end, p[i + 1] == lf else { return false }
            i += 2
            out.append(Field(line: nameStart..<i, name: nameStart..<nameEnd, value: valueStart..<trimmed))
        }
        return false
    }

    /// Whether `p[range]` equals the lower-case ASCII `name`, ignoring case.
    @inline(__always)
    static func equalsLowercase(_ p: UnsafeRawBufferPointer, _ range: Range<Int>, _ name: StaticString) -> Bool {
        guard range.count == name.utf8CodeUnitCount else { return false }
        let lit = name.utf8Start
        var i = 0
        for k in range {
            var b = p[k]
            if b >= 0x41 && b <= 0x5A { b |= 0x20 }
            if b != lit[i] { return false }
            i += 1
        }
        return true
    }

    /// Whether `p[range]` is one of the lower-case ASCII `names`, ignoring case.
    /// Whether the bytes in `range` spell one of `names` (lower case) in any case, and with
    /// `underscoreAsDash`, with `_` for `-`.
    static func isAny(_ p: UnsafeRawBufferPointer, _ range: Range<Int>, of names: [[UInt8]], underscoreAsDash: Bool = false) -> Bool {
        names.contains { name in
            name.count == range.count && zip(range, name).allSatisfy { k, c in
                let b = p[k]
                if underscoreAsDash, b == 0x5F { return c == 0x2D }
                return (b >= 0x41 && b <= 0x5A ? b | 0x20 : b) == c
            }
        }
    }

    /// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive,
    /// spaces around it allowed), or nil.
    static func bearerToken(_ p: UnsafeRawBufferPointer, _ value: Range<Int>) -> Range<Int>? {
        var i = value.lowerBound
        while i < value.upperBound, p[i] == sp { i += 1 }
        guard value.upperBound - i > 7, equalsLowercase(p, i..<(i + 7), "bearer ") else { return nil }
        i += 7
        while i < value.upperBound, p[i] == sp { i += 1 }
        return i < value.upperBound ? i..<value.upperBound : nil
    }

    /// The non-empty value of cookie `name` in a Cookie header value, or nil.
    static func cookie(_ p: UnsafeRawBufferPointer, _ value: Range<Int>, named name: String) -> Range<Int>? {
        let wanted = Array(name.utf8) + [UInt8(ascii: "=")]
        var i = value.lowerBound
        while i < value.upperBound {
            while i < value.upperBound, p[i] == sp { i += 1 }
            var j = i
            while j < value.upperBound, p[j] != UInt8(ascii: ";") { j += 1 }
            if j - i > wanted.count, UnsafeRawBufferPointer(rebasing: p[i..<(i + wanted.count)]).elementsEqual(wanted) {
                var start = i + wanted.count, end = j
                while end > start, p[end - 1] == sp { end -= 1 }
                // A quoted value (RFC 6265 cookie-value) is read without its quotes.
                if end - start >= 2, p[start] == UInt8(ascii: "\""), p[end - 1] == UInt8(ascii: "\"") { start += 1; end -= 1 }
                if end > start { return start..<end }
            }
            i = j + 1
        }
        return nil
    }

    /// Which fields of a head are not passed on (a bit per field; a set past 64 fields).
    struct FieldMask {
        private var bits: UInt64 = 0
        private var more: Set<Int> = []
        mutating func insert(_ index: Int) {
            if index < 64 { bits |= 1 << UInt64(index) } else { more.insert(index) }
        }
        func contains(_ index: Int) -> Bool { index < 64 ? bits & (1 << UInt64(index)) != 0 : more.contains(index) }
    }

    /// The bytes as a String (header values are visible ASCII or obs-text; the latter is decoded leniently).
    @inline(__always)
    static func string(_ p: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: p[range]), as: UTF8.self)
    }

    /// A non-negative decimal of at most 18 digits, or nil.
    static func decimal(_ p: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, range.count <= 18 else { return nil }
        var value = 0
        for k in range {
            let b = p[k]
            guard b >= 0x30 && b <= 0x39 else { return nil }
            value = value * 10 + Int(b - 0x30)
        }
        return value
    }

    /// Calls `body` with the range of each comma-separated element of a list value, without
    /// surrounding whitespace (compare with `equalsLowercase`).
    static func listElements(_ p: UnsafeRawBufferPointer, _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var i = range.lowerBound
        while i < range.upperBound {
            while i < range.upperBound, p[i] == sp || p[i] == tab || p[i] == 0x2C { i += 1 }
            let start = i
            var end = i
            while i < range.upperBound, p[i] != 0x2C {
                if p[i] != sp && p[i] != tab { end = i + 1 }
                i += 1
            }
            if end > start { body(start..<end) }
        }
    }

    /// The name part of a Host value: without the port, IPv6 brackets removed, and without the
    /// trailing dot of a fully qualified name (`secure.example.` is `secure.example`, as DNS and
    /// nginx read it); case kept.
    static func hostNameRange(_ p: UnsafeRawBufferPointer, _ range: Range<Int>) -> Range<Int> {
        var start = range.lowerBound, end = range.upperBound
        if start < end, p[start] == UInt8(ascii: "[") {
            start += 1
            var k = start
            while k < end, p[k] != UInt8(ascii: "]") { k += 1 }
            end = k
        } else {
            var k = start
            while k < end, p[k] != colon { k += 1 }
            end = k
            if end > start, p[end - 1] == UInt8(ascii: ".") { end -= 1 }
        }
        return start..<end
    }

    /// Where the trailing dot of a Host value's name is, if it has one (`a.example.:8080`).
    static func hostTrailingDot(_ p: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard range.lowerBound < range.upperBound, p[range.lowerBound] != UInt8(ascii: "[") else { return nil }
        var k = range.lowerBound
        while k < range.upperBound, p[k] != colon { k += 1 }
        return k > range.lowerBound && p[k - 1] == UInt8(ascii: ".") ? k - 1 : nil
    }

    /// A Host value is empty, or a host name (letters, digits, '.', '-', '_') or a bracketed IPv6
    /// literal, then an optional `:port`. Anything else ('/', '@', ',', spaces) is refused: it
    /// would be routed as one host and read by an upstream as another.
    static func isValidHost(_ p: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var k = range.lowerBound
        let end = range.upperBound
        if k == end { return true }
        if p[k] == UInt8(ascii: "[") {
            k += 1
            let start = k
            while k < end, p[k] != UInt8(ascii: "]") {
                let b = p[k]
                guard b == colon || b == UInt8(ascii: ".") || hexDigit(b) != nil else { return false }
                k += 1
            }
            guard k < end, k > start else { return false }
            k += 1
        } else {
            let start = k
            while k < end, p[k] != colon {
                guard isRegNameByte(p[k]) else { return false }
                k += 1
            }
            guard k > start else { return false }
        }
        if k == end { return true }
        guard p[k] == colon, k + 1 < end, end - k <= 6 else { return false }
        k += 1
        while k < end {
            guard p[k] >= 0x30 && p[k] <= 0x39 else { return false }
            k += 1
        }
        return true
    }

    /// The host of a Host value, lower-cased, without the port (IPv6 literals without brackets).
    static func hostName(_ p: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        let name = hostNameRange(p, range)
        let start = name.lowerBound, end = name.upperBound
        guard (start..<end).contains(where: { p[$0] >= 0x41 && p[$0] <= 0x5A }) else { return string(p, start..<end) }
        return String(unsafeUninitializedCapacity: end - start) { out in
            for k in start..<end { let b = p[k]; out[k - start] = b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
            return end - start
        }
    }

    /// A header name lower-cased with `_` read as `-` (how CGI-style backends see it).
    static func canonicalName(_ p: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(unsafeUninitializedCapacity: range.count) { out in
            var i = 0
            for k in range {
                var b = p[k]
                if b >= 0x41 && b <= 0x5A { b |= 0x20 } else if b == 0x5F { b = 0x2D }
                out[i] = b
                i += 1
            }
            return range.count
        }
    }
}
