import Foundation

/// Follows a chunked body (RFC 9112 section 7.1) byte by byte so it can be forwarded as it
/// is, and says where it ends.
///
/// `stopAtTrailers`: a request body's scanner says where its last chunk ends (`lastChunk`),
/// so its trailers can be dropped: they could carry what a head may not (identity headers,
/// forwarding headers, a token), and no upstream needs a client's trailers to read its body.
struct ChunkedScanner {
    private enum State { case size, extensions, sizeLF, data, dataCR, dataLF, trailerStart, trailerName, trailerValue, trailerLF, endLF }
    private var state = State.size
    private var remaining: UInt64 = 0
    private var sawDigit = false
    private let stopAtTrailers: Bool
    /// The chunk data seen so far (the body's length without its framing).
    private(set) var payload: UInt64 = 0

    init(stopAtTrailers: Bool = false) {
        self.stopAtTrailers = stopAtTrailers
    }

    enum Outcome: Equatable {
        /// All of it belongs to the body and the body goes on.
        case more
        /// The body ends after this many bytes.
        case ends(Int)
        /// With `stopAtTrailers`: the last chunk's line ends after this many bytes; the trailer
        /// section (and the final CRLF) follows.
        case lastChunk(Int)
        case malformed
    }

    /// `onData`: told each run of chunk data in `p` (to decode the body rather than relay it).
    mutating func scan(_ p: UnsafeRawBufferPointer, onData: ((Range<Int>) -> Void)? = nil) -> Outcome {
        var i = 0
        let n = p.count
        while i < n {
            let b = p[i]
            switch state {
            case .size:
                let digit: UInt64
                switch b {
                case 0x30...0x39: digit = UInt64(b - 0x30)
                case 0x41...0x46: digit = UInt64(b - 0x41 + 10)
                case 0x61...0x66: digit = UInt64(b - 0x61 + 10)
                case 0x3B, HTTPScan.sp, HTTPScan.tab:
                    guard sawDigit else { return .malformed }
                    state = .extensions
                    i += 1
                    continue
                case HTTPScan.cr:
                    guard sawDigit else { return .malformed }
                    state = .sizeLF
                    i += 1
                    continue
                default: return .malformed
                }
                guard remaining < 1 << 40 else { return .malformed }
                remaining = remaining * 16 + digit
                sawDigit = true
                i += 1
            case .extensions:
                if b == HTTPScan.cr {
                    state = .sizeLF
                } else if HTTPScan.isControl(b) {
                    return .malformed
                }
                i += 1
            case .sizeLF:
                guard b == HTTPScan.lf else { return .malformed }
                i += 1
                sawDigit = false
                state = remaining == 0 ? .trailerStart : .data
                if remaining == 0, stopAtTrailers { return .lastChunk(i) }
            case .data:
                let take = min(UInt64(n - i), remaining)
                onData?(i..<(i + Int(take)))
                i += Int(take)
                remaining -= take
                payload += take
                if remaining == 0 { state = .dataCR }
            case .dataCR:
                guard b == HTTPScan.cr else { return .malformed }
                state = .dataLF
                i += 1
            case .dataLF:
                guard b == HTTPScan.lf else { return .malformed }
                state = .size
                i += 1
            case .trailerStart:
                // A trailer field line (`name ":" value CRLF`) or the final CRLF.
                if b == HTTPScan.cr {
                    state = .endLF
                } else if HTTPScan.isTokenChar(b) {
                    state = .trailerName
                } else {
                    return .malformed
                }
                i += 1
            case .trailerName:
                if b == UInt8(ascii: ":") {
                    state = .trailerValue
                } else if !HTTPScan.isTokenChar(b) {
                    return .malformed
                }
                i += 1
            case .trailerValue:
                if b == HTTPScan.cr {
                    state = .trailerLF
                } else if HTTPScan.isControl(b) {
                    return .malformed
                }
                i += 1
            case .trailerLF:
                guard b == HTTPScan.lf else { return .malformed }
                state = .trailerStart
                i += 1
            case .endLF:
                guard b == HTTPScan.lf else { return .malformed }
                return .ends(i + 1)
            }
        }
        return .more
    }
}
