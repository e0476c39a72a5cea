import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Gateway

/// An upstream status line whose code is not three digits from 100 (`HTTP/1.1 000 OK`) is a
/// 502, to an HTTP/1.1 client and an HTTP/1.0 one. (NIOHTTP1 passes such a head; the full path
/// that read responses with it took it for an interim answer and sent the body after it to
/// the client with no head before it: found by fuzz-response.)
@Suite struct UpstreamStatusLineTests {
    static let answers = [
        "HTTP/1.1 000 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n",
        "HTTP/1.1 042 Odd\r\nContent-Length: 4\r\n\r\nnope",
        "HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
    ]

    /// What the client receives for `GET /public/a` answered by `answer`.
    static func exchange(_ server: GatewayServer, answer: String, http10: Bool) throws -> String {
        let loop = EmbeddedEventLoop()
        let upstream = try #require(server.state.config.routes.first?.upstreams.first)
        let address = try SocketAddress(ipAddress: "192.0.2.1", port: 4000)
        let pool = UpstreamPool(loop: loop)
        let upstreamChannel = EmbeddedChannel(loop: loop)
        let handler = RawUpstreamHandler()
        try upstreamChannel.pipeline.syncOperations.addHandler(handler)
        try upstreamChannel.connect(to: address).wait()
        pool.release(upstreamChannel, upstream, handler: handler)
        let client = EmbeddedChannel(loop: loop)
        try client.pipeline.syncOperations.addHandler(ClientConnectionHandler(server: server, pool: pool))
        try client.connect(to: address).wait()
        try client.writeInbound(ByteBuffer(string: "GET /public/a HTTP/1.\(http10 ? 0 : 1)\r\nHost: gw.example\r\n\r\n"))
        loop.run()
        var sent = false
        while let part = try upstreamChannel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let bytes) = part, bytes.readableBytes > 0 { sent = true }
        }
        #expect(sent, "the request reached the upstream")
        _ = try? upstreamChannel.writeInbound(ByteBuffer(string: answer))
        loop.run()
        var received = ""
        while let part = try client.readOutbound(as: IOData.self) {
            if case .byteBuffer(let bytes) = part { received += String(buffer: bytes) }
        }
        _ = try? upstreamChannel.finish(acceptAlreadyClosed: true)
        _ = try? client.finish(acceptAlreadyClosed: true)
        loop.run()
        return received
    }

    @Test(arguments: answers, [true, false])
    func refusedAsBadGateway(_ answer: String, http10: Bool) async throws {
        try await HandlerLifetimeTests.withServer(auth: "public") { server in
            let received = try Self.exchange(server, answer: answer, http10: http10)
            #expect(received.hasPrefix("HTTP/1.\(http10 ? 0 : 1) 502 "), "\(received.debugDescription)")
            #expect(!received.contains("zz") && !received.contains("nope"), "\(received.debugDescription)")
        }
    }

    @Test(arguments: [true, false])
    func anOrdinaryAnswerGoesThrough(http10: Bool) async throws {
        try await HandlerLifetimeTests.withServer(auth: "public") { server in
            let received = try Self.exchange(server, answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", http10: http10)
            #expect(received.hasPrefix("HTTP/1.\(http10 ? 0 : 1) 200 OK\r\n") && received.hasSuffix("\r\n\r\nok"), "\(received.debugDescription)")
        }
    }
}
