import Foundation
import JOSE
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Runtime

/// The gateway's connection handlers driven on EmbeddedChannels, with no sockets: what a
/// client sends goes in, what it would receive comes out, and each request that reaches an
/// upstream is answered from an upstream connection put in the pool beforehand. Everything
/// but the sockets is the code that serves (the connection handler, the admission, NIOHTTP1's
/// parser for unreadable heads, routes, tokens, the response-head and chunked scanners).
///
/// For the fuzz targets (Fuzz/): one instance per process, used from the thread that made it.
/// Routes that need the runtime store (session checks) and the local API run work off the
/// loop and are not for this harness: leave them out of its config.
package final class EmbeddedGateway {
    let server: GatewayServer
    let loop = EmbeddedEventLoop()
    private let upstreams: [Upstream]
    private let clientAddress = try? SocketAddress(ipAddress: "192.0.2.7", port: 50_000)

    /// A server for `config` (whose `[auth] keys` folder must exist), with a throwaway SQLite store.
    package init(config: GatewayConfig, storePath: String) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let opened = Handoff<SQLiteStore>()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { opened.set(.success(try await SQLiteStore.open(path: storePath, eventLoop: group.any()))) } catch { opened.set(.failure(error)) }
            done.signal()
        }
        done.wait()
        let store = try opened.value!.get()
        var logger = Logger(label: "embedded-gateway")
        logger.logLevel = .critical
        server = try GatewayServer(config: config, group: group, store: store, logger: logger)
        var seen = Set<String>()
        upstreams = config.routes.flatMap(\.upstreams).filter { seen.insert($0.origin).inserted }
    }

    /// One client connection: `request` arrives in pieces of `piece` bytes (all at once when 0),
    /// each upstream request is answered with `answer` (at most `answers` times in all), then
    /// the clock moves past every timeout and the connection closes. Returns the bytes the
    /// client received.
    package func serve(_ request: [UInt8], answer: [UInt8], piece: Int = 0, answers: Int = 8) -> [UInt8] {
        let raw = UpstreamPool(loop: loop)
        var rawChannels: [EmbeddedChannel] = []
        for upstream in upstreams {
            for _ in 0..<2 {
                let rawChannel = EmbeddedChannel(loop: loop)
                let handler = RawUpstreamHandler()
                try? rawChannel.pipeline.syncOperations.addHandler(handler)
                _ = rawChannel.connect(to: clientAddress!)
                raw.release(rawChannel, upstream, handler: handler)
                rawChannels.append(rawChannel)
            }
        }
        let client = EmbeddedChannel(loop: loop)
        client.remoteAddress = clientAddress
        do {
            try client.pipeline.syncOperations.addHandler(ClientConnectionHandler(server: server, pool: raw))
        } catch {
            return []
        }
        _ = client.connect(to: clientAddress!)
        var received: [UInt8] = []
        var left = answers
        func drain() {
            for _ in 0..<64 {
                var moved = false
                for channel in rawChannels where channel.isActive {
                    var wrote = false
                    while let part = try? channel.readOutbound(as: IOData.self) {
                        if case .byteBuffer(let bytes) = part, bytes.readableBytes > 0 { wrote = true }
                    }
                    if wrote, left > 0, channel.isActive {
                        left -= 1
                        moved = true
                        _ = try? channel.writeInbound(ByteBuffer(bytes: answer))
                        loop.run()
                    }
                }
                while let part = try? client.readOutbound(as: IOData.self) {
                    if case .byteBuffer(let bytes) = part { received += bytes.readableBytesView }
                    moved = true
                }
                if !moved { return }
            }
        }
        if piece > 0 {
            var at = 0
            while at < request.count, client.isActive {
                _ = try? client.writeInbound(ByteBuffer(bytes: request[at..<min(request.count, at + piece)]))
                at += piece
                loop.run()
                drain()
            }
        } else {
            _ = try? client.writeInbound(ByteBuffer(bytes: request))
            loop.run()
            drain()
        }
        // Every timer fires: the idle, first-byte and body timeouts answer or close.
        for _ in 0..<3 {
            loop.advanceTime(by: .seconds(400))
            drain()
        }
        client.close(promise: nil)
        loop.run()
        drain()
        for channel in rawChannels { _ = try? channel.finish(acceptAlreadyClosed: true) }
        _ = try? client.finish(acceptAlreadyClosed: true)
        loop.run()
        return received
    }
}

/// What a task made while the thread that asked for it waits.
extension EmbeddedGateway {
    /// A request the gateway answers itself (`/auth/v1`, `/api/session*`), with its body whole
    /// as the full path hands it to the local API; waits for the answer (status and body).
    package func local(method: String, target: String, headers: [(String, String)], body: [UInt8]) -> (status: Int, body: [UInt8]) {
        let path = String(target.prefix { $0 != "?" })
        let query = target.firstIndex(of: "?").map { target[target.index(after: $0)...] }
        let request = LocalRequest(method: HTTPMethod(rawValue: method), path: path, query: LocalRequest.parseQuery(query),
                                   headers: HTTPHeaders(headers), body: body, remoteIP: "192.0.2.7")
        let api = server.localAPI, state = server.state
        let answered = Handoff<LocalResponse>()
        let done = DispatchSemaphore(value: 0)
        Task {
            answered.set(.success(await api.handle(request, state: state)))
            done.signal()
        }
        done.wait()
        guard case .success(let response)? = answered.value else { return (0, []) }
        return (Int(response.status.code), response.body)
    }
}

private final class Handoff<Value>: @unchecked Sendable {  // written once under the lock, read after the semaphore
    private let lock = NSLock()
    private var stored: Result<Value, any Error>?
    func set(_ value: Result<Value, any Error>) { lock.lock(); stored = value; lock.unlock() }
    var value: Result<Value, any Error>? { lock.lock(); defer { lock.unlock() }; return stored }
}
