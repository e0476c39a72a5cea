import NIOCore
import NIOHTTP1
import NIOPosix

/// Kept-alive upstream connections of one event loop, by origin. Used only on its loop, so it
/// needs no lock; the server holds one per loop.
final class UpstreamPool: @unchecked Sendable {  // confined to `loop`: every use checks it
    private var idle: [String: [any Channel]] = [:]
    private let maxIdlePerOrigin = 256
    let loop: any EventLoop

    init(loop: any EventLoop) { self.loop = loop }

    /// An idle connection if one is alive (and `fresh` is false), else a new one. The flag in
    /// the result says whether the connection was reused.
    func acquire(_ upstream: Upstream, connectTimeout: Double, fresh: Bool = false) -> EventLoopFuture<(channel: any Channel, reused: Bool)> {
        loop.preconditionInEventLoop()
        let key = "\(upstream.host):\(upstream.port)"
        while !fresh, let channel = idle[key]?.popLast() {
            if channel.isActive { return loop.makeSucceededFuture((channel, true)) }
        }
        return ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(Int64(connectTimeout * 1000)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.autoRead, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(), name: UpstreamHandler.name)
                }
            }
            .connect(host: upstream.host, port: upstream.port)
            .map { (channel: $0, reused: false) }
    }

    /// Returns a connection whose exchange ended cleanly.
    func release(_ channel: any Channel, _ upstream: Upstream) {
        loop.preconditionInEventLoop()
        let key = "\(upstream.host):\(upstream.port)"
        guard channel.isActive, idle[key, default: []].count < maxIdlePerOrigin else {
            channel.close(promise: nil)
            return
        }
        idle[key, default: []].append(channel)
    }
}
