// The floor under any SwiftNIO proxy on this machine: each client connection gets its own
// upstream connection and bytes are relayed both ways with no HTTP parsing at all. The
// gateway benchmark loads it like the others, so the gateway's plain-proxy figure can be
// read against what NIO itself costs.
//
//   relay-ceiling LISTEN_PORT UPSTREAM_PORT     (one event loop, 127.0.0.1)
import Foundation
import NIOCore
import NIOPosix

final class Relay: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    var peer: (any Channel)?
    var pending: [ByteBuffer] = []
    var needsFlush = false
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let b = unwrapInboundIn(data)
        if let peer { peer.write(b, promise: nil); needsFlush = true } else { pending.append(b) }
    }
    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush { needsFlush = false; peer?.flush() }
    }
    func channelInactive(context: ChannelHandlerContext) { peer?.close(promise: nil) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

let arguments = CommandLine.arguments
let listenPort = arguments.count > 1 ? Int(arguments[1]) ?? 18490 : 18490
let upstreamPort = arguments.count > 2 ? Int(arguments[2]) ?? 18090 : 18090
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        let down = Relay()
        return channel.pipeline.addHandler(down).flatMap {
            ClientBootstrap(group: channel.eventLoop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { up in
                    let upH = Relay()
                    upH.peer = channel
                    return up.pipeline.addHandler(upH)
                }
                .connect(host: "127.0.0.1", port: upstreamPort)
                .map { up in
                    down.peer = up
                    for b in down.pending { up.write(b, promise: nil) }
                    down.pending = []
                    up.flush()
                }
        }
    }
do {
    let server = try bootstrap.bind(host: "127.0.0.1", port: listenPort).wait()
    print("relay-ceiling listening on 127.0.0.1:\(listenPort)")
    try server.closeFuture.wait()
} catch {
    FileHandle.standardError.write(Data("relay-ceiling: cannot listen on 127.0.0.1:\(listenPort): \(error)\n".utf8))
    exit(1)
}
