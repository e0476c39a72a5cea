import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Runtime
import Testing

@testable import Gateway

/// A closed client connection frees its handler. The connection handlers (then two: the direct and the full path) kept
/// their ChannelHandlerContext after leaving the pipeline; the context holds the handler, so
/// every connection leaked both and all they reached (found by fuzz-request's LeakSanitizer).
@Suite struct HandlerLifetimeTests {
    static func withServer(auth: String = "required", _ body: (GatewayServer) throws -> Void) async throws {
        let folder = NSTemporaryDirectory() + "gateway-lifetime-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder + "/keys", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(FileManager.default.createFile(atPath: folder + "/keys/test.secret", contents: Data("lifetime-secret-0123456789abcdef0123456789".utf8),
                                               attributes: [.posixPermissions: 0o600]))
        let config = try GatewayConfig.parse("""
            [server]
            access_log = "off"

            [auth]
            keys = "\(folder)/keys"

            [runtime]
            store = "sqlite:\(folder)/state.db"
            auth_path = ""
            session_api = false

            [[route]]
            name = "public"
            path = "/public/"
            auth = "\(auth)"
            upstream = "http://127.0.0.1:9"
            """, file: folder + "/gateway.conf", baseDirectory: folder)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let store = try await SQLiteStore.open(path: folder + "/state.db", eventLoop: group.any())
        var logger = Logger(label: "lifetime")
        logger.logLevel = .critical
        let server = try GatewayServer(config: config, group: group, store: store, logger: logger)
        try body(server)
        try await store.close()
        try await group.shutdownGracefully()
    }

    /// Requests the gateway answers itself (an EmbeddedEventLoop cannot connect upstream).
    static let requests = [
        "GET /nowhere HTTP/1.1\r\nHost: gw.example\r\n\r\n",  // answered here (no route), kept alive
        "GET /public/a HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer x.y.z\r\nConnection: close\r\n\r\n",  // refused, closed
        "GET /nowhere HTTP/1.1\r\nHost: gw.example\r\nContent-Length: 10\r\n\r\nhal",  // cut in its body
        "not http\r\n\r\n",  // read by NIOHTTP1's parser for its reason
        "GET /nowhere HTTP/1.0\r\n\r\n",
    ]

    @Test(arguments: requests)
    func theConnectionHandlerIsFreed(_ request: String) async throws {
        try await Self.withServer { server in
            weak var freed: ClientConnectionHandler?
            do {
                let loop = EmbeddedEventLoop()
                let channel = EmbeddedChannel(loop: loop)
                let handler = ClientConnectionHandler(server: server, pool: UpstreamPool(loop: loop))
                freed = handler
                try channel.pipeline.syncOperations.addHandler(handler)
                try channel.connect(to: SocketAddress(ipAddress: "192.0.2.1", port: 4000)).wait()
                try channel.writeInbound(ByteBuffer(string: request))
                loop.run()
                while (try? channel.readOutbound(as: IOData.self)) != nil {}
                _ = try? channel.finish(acceptAlreadyClosed: true)
                loop.run()
            }
            #expect(freed == nil, "the connection's handler outlived its closed connection")
        }
    }
}
