import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// The client connection's handler on an EmbeddedChannel: what a client sends goes in, what
/// it would receive comes out, in order, with no sockets.
@Suite struct ConnectionPipelineTests {
    /// Sends `bytes` on a new connection and returns what the client received.
    static func serve(_ fixture: EdgeFixture, _ bytes: String, pieces: Int = 1) throws -> String {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let handler = ClientConnectionHandler(server: fixture.server, pool: UpstreamPool(loop: loop))
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "192.0.2.7", port: 4000)).wait()
        var received = ByteBuffer()
        func drain() {
            while let out = try? channel.readOutbound(as: ByteBuffer.self) { var out = out; received.writeBuffer(&out) }
        }
        let all = Array(bytes.utf8)
        let size = max(1, all.count / pieces)
        var start = 0
        while start < all.count {
            let end = min(all.count, start + size)
            try channel.writeInbound(ByteBuffer(bytes: all[start..<end]))
            loop.run()
            drain()
            start = end
        }
        loop.run()
        drain()
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return String(buffer: received)
    }

    static func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    @Test func tensOfThousandsOfPipelinedRefusalsAreAllAnsweredInOrder() async throws {
        let fixture = try await EdgeFixture()
        let n = 20_000
        var requests = ""
        for k in 0..<n { requests += "GET /nowhere HTTP/1.1\r\nHost: gw\r\nX-Request-Id: r\(k)\r\n\r\n" }
        let received = try Self.serve(fixture, requests, pieces: 40)
        #expect(Self.count("HTTP/1.1 404 Not Found\r\n", in: received) == n)
        // In order: every id appears after the one before it.
        var from = received.startIndex
        for k in [0, 1, 2, n / 2, n - 2, n - 1] {
            guard let found = received.range(of: "\"request_id\":\"r\(k)\"", range: from..<received.endIndex) else {
                Issue.record("answer \(k) missing or out of order"); break
            }
            from = found.upperBound
        }
        try await fixture.close()
    }

    @Test func answersKeepTheirOrderAcrossAnUnreadableHead() async throws {
        let fixture = try await EdgeFixture()
        // The second request's absolute-form target has user information: the scanner does
        // not read it, NIOHTTP1's parser does, and it is refused with the reason; the requests
        // around it are the scanner's, on the same handler.
        let requests = "GET /nowhere HTTP/1.1\r\nHost: gw\r\nX-Request-Id: r1\r\n\r\n"
            + "GET http://user@gw/nowhere HTTP/1.1\r\nHost: gw\r\nX-Request-Id: r2\r\n\r\n"
            + "GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Request-Id: r3\r\n\r\n"
            + "GET /nowhere HTTP/1.1\r\nHost: gw\r\nX-Request-Id: r4\r\n\r\n"
        for pieces in [1, 3, 17] {
            let received = try Self.serve(fixture, requests, pieces: pieces)
            let order = ["\"request_id\":\"r1\"", "\"request_id\":\"r2\"", "x-request-id: r3", "\"request_id\":\"r4\""].map { received.range(of: $0)?.lowerBound }
            #expect(order.allSatisfy { $0 != nil }, "\(received)")
            let found = order.compactMap { $0 }
            #expect(found == found.sorted(), "answers out of order (\(pieces) pieces): \(received)")
        }
        try await fixture.close()
    }

    @Test func aBuiltInIsAnsweredOnTheConnectionItCameOn() async throws {
        let fixture = try await EdgeFixture()
        let received = try Self.serve(fixture, "GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Request-Id: h1\r\n\r\nHEAD /healthz HTTP/1.1\r\nHost: gw\r\nX-Request-Id: h2\r\n\r\n")
        #expect(received == "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\nx-request-id: h1\r\ncache-control: no-store\r\n\r\n{\"status\":\"ok\"}\n"
            + "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\nx-request-id: h2\r\ncache-control: no-store\r\n\r\n", "\(received)")
        try await fixture.close()
    }

    /// HTTP/1.0 is answered in HTTP/1.0, on the connection it came on: kept alive only when it
    /// asked, closed otherwise.
    @Test func http10IsAnsweredInHTTP10() async throws {
        let fixture = try await EdgeFixture()
        let received = try Self.serve(fixture, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\nX-Request-Id: a\r\n\r\n"
            + "GET /nowhere HTTP/1.0\r\nX-Request-Id: b\r\n\r\nGET /healthz HTTP/1.0\r\nX-Request-Id: c\r\n\r\n")
        #expect(received.hasPrefix("HTTP/1.0 200 OK\r\n"), "\(received)")
        #expect(received.contains("HTTP/1.0 404 Not Found\r\n") && received.contains("\"request_id\":\"b\""), "\(received)")
        #expect(!received.contains("x-request-id: c"), "the second request did not ask to keep the connection: \(received)")
        try await fixture.close()
    }
}
