import NIOCore

/// The upstream end of a direct (byte-level) exchange: hands the response bytes over as they
/// come, holds reads while the client cannot take more.
final class RawUpstreamHandler: ChannelInboundHandler, ChannelOutboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Set for the length of one exchange and cleared when it ends (a strong reference: forming
    /// a weak one per request costs more than the rest of the bookkeeping).
    var delegate: (any RawUpstreamDelegate)?
    private var pendingRead = false
    private var context: ChannelHandlerContext?

    /// Writes from this handler's place in the pipeline (one hop less than the channel's tail).
    func send(_ bytes: ByteBuffer) {
        context?.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }

    func write(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged()
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let delegate {
            delegate.upstream(bytes: unwrapInboundIn(data))
        } else {
            // Nobody is waiting for bytes on an idle pooled connection: it cannot be reused.
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if let delegate, !delegate.upstreamMayRead {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        delegate?.upstreamClosed(error: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        delegate?.upstreamClosed(error: error)
        context.close(promise: nil)
    }
}

protocol RawUpstreamDelegate: AnyObject {
    func upstream(bytes: ByteBuffer)
    func upstreamClosed(error: (any Error)?)
    func upstreamReadComplete()
    func upstreamWritabilityChanged()
    var upstreamMayRead: Bool { get }
}
