import Foundation

/// Appends bytes at a raw pointer into room the caller reserved (one
/// `ByteBuffer.writeWithUnsafeMutableBytes` for a whole block, rather than a capacity and
/// uniqueness check per piece).
struct ByteWriter {
    let start: UnsafeMutableRawPointer
    private(set) var at: UnsafeMutableRawPointer

    init(_ room: UnsafeMutableRawBufferPointer) {
        start = room.baseAddress!
        at = start
    }

    var count: Int { start.distance(to: at) }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        at.copyMemory(from: base, byteCount: bytes.count)
        at += bytes.count
    }

    @inline(__always)
    mutating func put(_ p: UnsafeRawBufferPointer, _ range: Range<Int>) {
        guard !range.isEmpty else { return }
        at.copyMemory(from: p.baseAddress! + range.lowerBound, byteCount: range.count)
        at += range.count
    }

    @inline(__always)
    mutating func put(_ literal: StaticString) {
        at.copyMemory(from: literal.utf8Start, byteCount: literal.utf8CodeUnitCount)
        at += literal.utf8CodeUnitCount
    }

    @inline(__always)
    mutating func put(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { put($0) }
    }

    /// The lines of `fields` not in `dropped`, copied in runs of adjacent lines; `first`
    /// (the bytes before the fields that are kept, such as the request line) starts the first run.
    mutating func putRuns(_ p: UnsafeRawBufferPointer, fields: [HTTPScan.Field], dropped: HTTPScan.FieldMask, first: Range<Int>?) {
        var run = first
        for index in fields.indices {
            let line = fields[index].line
            if dropped.contains(index) {
                if let copy = run { put(p, copy) }
                run = nil
            } else {
                run = run.map { $0.lowerBound..<line.upperBound } ?? line
            }
        }
        if let copy = run { put(p, copy) }
    }

    /// `n` in decimal.
    @inline(__always)
    mutating func putDecimal(_ n: UInt64) {
        var digits = 1, rest = n / 10
        while rest > 0 { digits += 1; rest /= 10 }
        var value = n
        var k = digits
        while k > 0 {
            k -= 1
            at.storeBytes(of: UInt8(ascii: "0") + UInt8(value % 10), toByteOffset: k, as: UInt8.self)
            value /= 10
        }
        at += digits
    }
}
