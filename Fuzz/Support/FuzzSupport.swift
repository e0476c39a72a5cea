import CFuzzDriver
import Foundation

/// Hands the process to libFuzzer with `test` as the target (LLVMFuzzerTestOneInput), passing
/// the command line through, and exits with its status.
///
/// Each input is timed. libFuzzer's own slow-unit report counts whole seconds; here an input
/// over a quarter of `FUZZ_SLOW_MS` milliseconds (100 by default) is run twice more and its
/// fastest run counts; over the limit every time (not the machine being busy for a moment),
/// the process stops with "SLOW UNIT" and abort(), so libFuzzer saves the input as a crash
/// artifact. At exit the slowest input's time is printed as "SLOWEST_UNIT_MS: n".
public func runFuzzer(_ test: @convention(c) (UnsafeRawPointer, Int) -> CInt) -> Never {
    Timing.target = test
    Timing.limit = ProcessInfo.processInfo.environment["FUZZ_SLOW_MS"].flatMap(Double.init) ?? 100
    atexit { FileHandle.standardError.write(Data("SLOWEST_UNIT_MS: \(Int(Timing.slowest.rounded(.up)))\n".utf8)) }
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, timedTest))
}

private enum Timing {
    nonisolated(unsafe) static var target: (@convention(c) (UnsafeRawPointer, Int) -> CInt)?
    nonisolated(unsafe) static var limit = 100.0
    nonisolated(unsafe) static var slowest = 0.0

    static func milliseconds(_ body: () -> Void) -> Double {
        var start = timespec(), end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        body()
        clock_gettime(CLOCK_MONOTONIC, &end)
        return Double(end.tv_sec - start.tv_sec) * 1000 + Double(end.tv_nsec - start.tv_nsec) / 1e6
    }
}

private func timedTest(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    guard let target = Timing.target else { return 0 }
    var rc: CInt = 0
    var took = Timing.milliseconds { rc = target(data, size) }
    // Over a quarter of the limit: timed again (twice at most), the fastest run counts. On a
    // busy machine one run can be stopped by the scheduler for tens of milliseconds.
    if took > Timing.limit / 4 {
        for _ in 0..<2 where took > Timing.limit / 4 { took = min(took, Timing.milliseconds { _ = target(data, size) }) }
        if took > Timing.limit {
            FileHandle.standardError.write(Data("SLOW UNIT: \(size) bytes took \(Int(took)) ms in each of 3 runs (limit \(Int(Timing.limit)) ms)\n".utf8))
            Timing.slowest = max(Timing.slowest, took)
            abort()
        }
    }
    Timing.slowest = max(Timing.slowest, took)
    return rc
}

/// Reads a fuzzer's input from the front: a few selector bytes, then the rest.
public struct FuzzInput {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset = 0

    public init(_ start: UnsafeRawPointer, _ count: Int) {
        bytes = UnsafeRawBufferPointer(start: start, count: count)
    }

    /// The next byte, or 0 once the input is used up.
    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// What is left.
    public var rest: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[offset...]) }
}

/// `bytes` with each "@TOKEN@" replaced by `token`.
public func replacingPlaceholder(_ bytes: [UInt8], with token: [UInt8]) -> [UInt8] {
    let mark = Array("@TOKEN@".utf8)
    guard bytes.count >= mark.count else { return bytes }
    var out: [UInt8] = []
    var i = 0
    while i < bytes.count {
        if i + mark.count <= bytes.count, bytes[i] == mark[0], Array(bytes[i..<(i + mark.count)]) == mark {
            out += token
            i += mark.count
        } else {
            out.append(bytes[i])
            i += 1
        }
    }
    return out
}

/// Stops the process with `message` on stderr unless `condition` holds. (A release build drops
/// precondition's message; this one is printed, then abort() makes libFuzzer save the input.)
public func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    guard !condition else { return }
    FileHandle.standardError.write(Data("HARNESS CHECK FAILED: \(message())\n".utf8))
    abort()
}

/// What a client receives is HTTP/1.x responses (1.0 answers an HTTP/1.0 request on the full
/// path) and nothing else.
public func checkResponses(_ received: [UInt8]) {
    require(received.isEmpty || received.starts(with: Array("HTTP/1.1 ".utf8)) || received.starts(with: Array("HTTP/1.0 ".utf8)),
            "the client received bytes that are not an HTTP/1.x response: \(String(decoding: received.prefix(200), as: UTF8.self).debugDescription)")
}
