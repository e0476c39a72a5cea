import Foundation
import NIOCore
import Testing

@testable import Gateway

/// The direct proxy path reads requests as bytes; the full path reads them as strings. These
/// check that both read the same request the same way: every byte-level shortcut against the
/// string code it stands in for, over many generated inputs.
@Suite struct ByteScanTests {
    static let routesConfig = """
        [auth]
        keys = "/nonexistent"

        [[route]]
        name = "exact-x"
        exact = "/x"
        upstream = "http://127.0.0.1:1"

        [[route]]
        name = "api-get"
        path = "/api/"
        methods = ["GET", "HEAD"]
        upstream = "http://127.0.0.1:1"

        [[route]]
        name = "api-v1-host"
        path = "/api/v1"
        host = "Example.COM"
        upstream = "http://127.0.0.1:1"

        [[route]]
        name = "ws"
        path = "/ws"
        methods = ["POST"]
        upstream = "http://127.0.0.1:1"

        [[route]]
        name = "deep"
        path = "/a/b/c/"
        upstream = "http://127.0.0.1:1"

        [[route]]
        name = "root-other-host"
        path = "/"
        host = "other.test"
        upstream = "http://127.0.0.1:1"
        """

    /// The first route the byte matcher picks is the one `Router.matchIndex` picks, for
    /// every combination of path, Host header and method below.
    @Test func byteRouteMatchAgreesWithTheRouter() throws {
        let config = try GatewayConfig.parse(Self.routesConfig)
        let router = Router(routes: config.routes)
        let entries = config.routes.map(RouteEntry.init)
        let segments = ["", "/", "/x", "/X", "/xy", "/x/", "/api", "/api/", "/apix", "/api/v1", "/api/v1/", "/api/v10", "/api/v1/z", "/ws", "/ws/",
                        "/wss", "/a", "/a/b", "/a/b/c", "/a/b/c/", "/a/b/cd", "/a/b/c/d", "/other"]
        var paths = Set<String>()
        for a in segments { for b in segments { paths.insert(a + b) } }
        paths = paths.filter { $0.hasPrefix("/") }
        let hosts = ["example.com", "EXAMPLE.com:8080", "example.com.", "other.test", "[::1]:80", "Other.Test:1", "x", "example.co"]
        let methods = ["GET", "HEAD", "POST", "get", "DELETE"]
        var checked = 0
        for path in paths {
            for host in hosts {
                for method in methods {
                    let request = Array("\(method) \(host) \(path)".utf8)
                    let methodRange = 0..<method.utf8.count
                    let hostRange = (methodRange.upperBound + 1)..<(methodRange.upperBound + 1 + host.utf8.count)
                    let pathRange = (hostRange.upperBound + 1)..<request.count
                    request.withUnsafeBytes { p in
                        let byName = HTTPScan.hostName(p, hostRange)
                        let expected = router.matchIndex(method: method, host: byName, path: path)
                        let got = entries.firstIndex { $0.matches(p, method: methodRange, host: HTTPScan.hostNameRange(p, hostRange), path: pathRange) }
                        #expect(got == expected, "\(method) \(host) \(path)")
                    }
                    checked += 1
                }
            }
        }
        #expect(checked > 10_000)
    }

    /// The field-value scan, eight bytes at a time, finds the same end (or the same refusal)
    /// as a byte-by-byte reading of the rule, on random values with control characters,
    /// tabs, DEL and obs-text at every position.
    @Test func wordAtATimeValueScanAgreesWithTheByteRule() {
        func reference(_ p: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Int? {
            var i = start
            while i < end {
                let b = p[i]
                if b == 0x0D { return i }
                if (b < 0x20 && b != 0x09) || b == 0x7F { return nil }
                i += 1
            }
            return nil
        }
        var rng = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [0x0D, 0x0A, 0x09, 0x00, 0x1F, 0x20, 0x7F, 0x7E, 0x80, 0x9F, 0xA0, 0xFF, 0x41, 0x61, 0x3A]
        var refusals = 0, ends = 0
        for _ in 0..<20_000 {
            let count = Int.random(in: 0...40, using: &rng)
            // Mostly ordinary letters, so long clean runs (the word path) are common.
            let bytes: [UInt8] = (0..<count).map { _ in
                Int.random(in: 0..<6, using: &rng) == 0 ? alphabet.randomElement(using: &rng)! : UInt8.random(in: 0x21...0x7E, using: &rng)
            }
            bytes.withUnsafeBytes { p in
                let start = count == 0 ? 0 : Int.random(in: 0...count, using: &rng)
                let expected = reference(p, start, count)
                #expect(HTTPScan.valueEnd(p, from: start, to: count) == expected, "\(bytes) from \(start)")
                if expected == nil { refusals += 1 } else { ends += 1 }
            }
        }
        #expect(refusals > 1000 && ends > 1000)
    }

    /// Request ids written as bytes spell what `RequestIDs.string` says.
    @Test func requestIDBytesSpellTheString() {
        for number: UInt64 in [0, 1, 9, 10, 99, 100, 123_456_789, UInt64(UInt32.max), UInt64.max - 1, UInt64.max] {
            var buffer = ByteBuffer()
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: RequestIDs.maximumLength) { room in
                var out = ByteWriter(room)
                RequestIDs.put(number, into: &out)
                return out.count
            }
            #expect(buffer.readString(length: buffer.readableBytes) == RequestIDs.string(number))
        }
        let fresh = RequestIDs.next()
        #expect(RequestIDs.isValid(Array(fresh.utf8)))
    }

    /// Literal comparisons used on the hot path.
    @Test func literalComparisons() {
        let bytes = Array("GET /healthz HTTP/1.1".utf8)
        bytes.withUnsafeBytes { p in
            #expect(HTTPScan.equals(p, 0..<3, "GET"))
            #expect(!HTTPScan.equals(p, 0..<3, "GETX"))
            #expect(!HTTPScan.equals(p, 0..<2, "GET"))
            #expect(HTTPScan.equals(p, 4..<12, "/healthz"))
            #expect(!HTTPScan.equals(p, 4..<12, "/healthy"))
            #expect(HTTPScan.equals(p, 13, "HTTP/1.1"))
        }
    }

    /// The kept lines of a head, copied in runs, are the head minus the dropped lines, in order,
    /// for every subset of dropped lines.
    @Test func keptLinesAreCopiedInRuns() {
        let lines = ["GET / HTTP/1.1\r\n", "Host: a\r\n", "Connection: keep-alive\r\n", "X-A: 1\r\n", "X-B: 2\r\n", "Te: x\r\n"]
        let head = Array((lines.joined() + "\r\n").utf8)
        head.withUnsafeBytes { p in
            var fields: [HTTPScan.Field] = []
            #expect(HTTPScan.fields(p, from: lines[0].utf8.count, to: head.count, into: &fields))
            #expect(fields.count == lines.count - 1)
            for subset in 0..<(1 << fields.count) {
                for withFirst in [false, true] {
                    var dropped = HTTPScan.FieldMask()
                    for index in fields.indices where subset & (1 << index) != 0 { dropped.insert(index) }
                    var copied = [UInt8](repeating: 0, count: head.count)
                    let count = copied.withUnsafeMutableBytes { room in
                        var out = ByteWriter(room)
                        out.putRuns(p, fields: fields, dropped: dropped, first: withFirst ? 0..<lines[0].utf8.count : nil)
                        return out.count
                    }
                    let kept = (withFirst ? [lines[0]] : []) + lines.dropFirst().enumerated().filter { subset & (1 << $0.offset) == 0 }.map(\.element)
                    #expect(String(decoding: copied[..<count], as: UTF8.self) == kept.joined(), "subset \(subset)")
                }
            }
        }
    }
}
