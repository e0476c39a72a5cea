import NIOCore
import Testing

@testable import Gateway

/// The response head an upstream sends, read as bytes: the head the client gets and the
/// body's framing.
@Suite struct ResponseHeadReaderTests {
    enum Want: Equatable {
        case incomplete, informational, malformed(String)
        case none, length(Int), chunked, untilClose
    }

    static func read(_ head: String, isHead: Bool = false, cors: Bool = false) -> (Want, String, Bool) {
        var reader = ResponseHeadReader()
        var out = ByteBuffer()
        let outcome = ByteBuffer(string: head).withUnsafeReadableBytes { reader.read($0, requestIsHead: isHead, corsOn: cors, into: &out) }
        switch outcome {
        case .incomplete: return (.incomplete, "", false)
        case .informational: return (.informational, "", false)
        case .malformed(let why): return (.malformed(why), "", false)
        case .ready(let head):
            let want: Want = switch head.framing {
            case .none: .none
            case .length(let n): .length(n)
            case .chunked: .chunked
            case .untilClose: .untilClose
            }
            return (want, String(buffer: out), head.upstreamClose)
        }
    }

    static let vectors: [(String, Bool, Want, String?)] = [
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-Id: up\r\n\r\n", false, .length(5), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false, .chunked, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, .malformed("transfer coding \"gzip\" is not supported (only chunked)"), nil),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", false, .malformed("chunked is applied more than once"), nil),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", false, .malformed("invalid or conflicting Content-Length"), nil),
        ("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false, .none, "HTTP/1.1 204 No Content\r\n"),
        ("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false, .none, "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, .none, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"),
        ("HTTP/1.1 200 OK\r\n\r\n", false, .untilClose, "HTTP/1.1 200 OK\r\n"),
        ("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, .none, "HTTP/1.1 200 \r\nContent-Length: 0\r\n"),
        ("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nContent-Length: 1\r\n\r\n", false, .length(1),
         "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"),
        ("HTTP/1.1 100 Continue\r\n\r\n", false, .informational, nil),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", false, .malformed("upstream switched protocols unasked"), nil),
        ("HTTP/1.1 42 Odd\r\n\r\n", false, .malformed("malformed status line"), nil),
        ("HTTP/1.1 200 O\u{7}K\r\n\r\n", false, .malformed("control character in the status line"), nil),
        ("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", false, .malformed("malformed response header"), nil),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", false, .incomplete, nil),
    ]

    @Test func framingAndTheClientsHead() {
        for (head, isHead, want, client) in Self.vectors {
            let (got, out, _) = Self.read(head, isHead: isHead)
            #expect(got == want, "\(head.debugDescription)")
            if let client { #expect(out == client, "\(head.debugDescription) -> \(out.debugDescription)") }
        }
    }

    @Test func closeIsNotedFromConnectionAndFromHTTP10() {
        #expect(Self.read("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").2)
        #expect(Self.read("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").2)
        #expect(!Self.read("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").2)
        #expect(Self.read("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").1.hasPrefix("HTTP/1.1 200 OK\r\n"))
    }

    @Test func underCORSTheUpstreamsOwnCORSHeadersGo() {
        let head = "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: 0\r\n\r\n"
        #expect(Self.read(head, cors: true).1 == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n")
        #expect(Self.read(head, cors: false).1 == "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: 0\r\n")
    }

    @Test func aHeadOver64KiBIsRefusedWhetherWholeOrNot() {
        let big = "HTTP/1.1 200 OK\r\nX-Pad: \(String(repeating: "a", count: 70_000))\r\n"
        #expect(Self.read(big).0 == .malformed("response head over 64 KiB"))
        #expect(Self.read(big + "\r\n").0 == .malformed("response head over 64 KiB"))
    }
}
