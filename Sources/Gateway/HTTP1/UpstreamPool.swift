import NIOCore
import NIOHTTP1
import NIOPosix

/// Kept-alive upstream connections of one event loop, by origin. Used only on its loop, so it
/// needs no lock; the server holds two per loop: HTTP-decoding connections for the full
/// proxy path and raw byte connections for the direct path.
final class UpstreamPool: @unchecked Sendable {  // confined to `loop`: every use checks it
    /// An idle connection and, for raw connections, its handler (found once, not per request).
    struct Pooled {
        let channel: any Channel
        let handler: RawUpstreamHandler?
    }
    /// Idle connections of one origin.
    private final class Slot {
        var idle: [Pooled] = []
    }
    private var slots: [String: Slot] = [:]
    /// The last origin used and its slot: a pool mostly serves one origin after another, and
    /// comparing the origin string is cheaper than hashing it.
    private var lastOrigin = ""
    private var lastSlot: Slot?
    private let maxIdlePerOrigin = 256
    let loop: any EventLoop
    init(loop: any EventLoop) {
        self.loop = loop
    }

    /// An idle connection if one is alive (and `fresh` is false), else a new one. The flag in
    /// the result says whether the connection was reused.
    func acquire(_ upstream: Upstream, connectTimeout: Double, fresh: Bool = false) -> EventLoopFuture<(channel: any Channel, reused: Bool)> {
        loop.preconditionInEventLoop()
        if !fresh, let pooled = takeIdle(upstream) { return loop.makeSucceededFuture((pooled.channel, true)) }
        #if GATEWAY_FUZZ
        // The fuzz targets' embedded loop cannot make sockets: a connect fails there like a
        // refused one (ClientBootstrap(group:) would trap).
        guard let bootstrap = ClientBootstrap(validatingGroup: loop) else {
            return loop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        #else
        let bootstrap = ClientBootstrap(group: loop)
        #endif
        return bootstrap
            .connectTimeout(.milliseconds(Int64(connectTimeout * 1000)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.autoRead, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawUpstreamHandler())
                }
            }
            .connect(host: upstream.host, port: upstream.port)
            .map { (channel: $0, reused: false) }
    }

    /// A kept-alive connection to `upstream` that is still open, if there is one.
    func takeIdle(_ upstream: Upstream) -> Pooled? {
        loop.preconditionInEventLoop()
        let slot = slot(upstream.origin)
        while let pooled = slot.idle.popLast() {
            if pooled.channel.isActive { return pooled }
        }
        return nil
    }

    private func slot(_ origin: String) -> Slot {
        if let last = lastSlot, origin == lastOrigin { return last }
        let found: Slot
        if let existing = slots[origin] {
            found = existing
        } else {
            found = Slot()
            slots[origin] = found
        }
        lastOrigin = origin
        lastSlot = found
        return found
    }

    /// Returns a connection whose exchange ended cleanly.
    func release(_ channel: any Channel, _ upstream: Upstream, handler: RawUpstreamHandler? = nil) {
        loop.preconditionInEventLoop()
        guard channel.isActive else { return channel.close(promise: nil) }
        let slot = slot(upstream.origin)
        guard slot.idle.count < maxIdlePerOrigin else { return channel.close(promise: nil) }
        slot.idle.append(Pooled(channel: channel, handler: handler))
    }
}
