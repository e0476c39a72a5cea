import Foundation
import CoreMetrics
import JOSE
import NIOCore
import NIOHTTP1

extension ClientConnectionHandler {
    /// Makes sure the connection's timer fires no later than `due`.
    func armTimer(due: UInt64) {
        if timer != nil, timerDue <= due { return }
        timer?.cancel()
        timerDue = due
        let now = DispatchTime.now().uptimeNanoseconds
        timer = context?.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(due > now ? due - now : 0))) {
            self.timer = nil
            self.timerFired()
        }
    }

    /// Carries out what the state machine finds due.
    func timerFired() {
        guard !closing else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        switch machine.check(now: now, partialHead: exchange == nil && local == nil && (inbound?.readableBytes ?? 0) > 0) {
        case .none:
            return
        case .wake(let due):
            return armTimer(due: due)
        case .expired(.idle):
            return closeAfterWrites()
        case .expired(.partialHead):
            // Part of a head came, not its end: 408 with the reason (HAProxy's http-request
            // timeout does the same); an idle connection just closes.
            let partial = inbound?.readableBytes ?? 0
            inbound = nil
            return answerAndClose(ErrorResponse(status: .requestTimeout, error: "request_timeout",
                                                reason: "the request head was not complete within \(Duration.describe(Double(machine.clientIdle) / 1e9)) (idle_timeout)"),
                                  started: now &- machine.clientIdle, bytesIn: partial)
        case .expired(.localBodyStalled):
            local = nil
            return closeAfterWrites()
        case .expired(let expiry):
            guard let exchange else { return }
            let route = exchange.route.config
            switch expiry {
            case .sessionCheck: fail(exchange, .runtimeUnavailable("the runtime did not answer the session check"))
            case .connect: fail(exchange, .gatewayTimeout("connecting to the upstream of route \(route.name) timed out"))
            case .requestBody:
                fail(exchange, ErrorResponse(status: .requestTimeout, error: "request_timeout",
                                             reason: "the request body stalled for \(Duration.describe(route.idleTimeout))"
                                                 + (exchange.requestChunks == nil ? " with \(exchange.bodyRemaining) bytes to go" : "")))
            case .firstByte: fail(exchange, .gatewayTimeout("no response from upstream within \(Duration.describe(route.firstByteTimeout))"))
            default: abort(exchange, note: "upstream idle for \(Duration.describe(route.idleTimeout))")
            }
        }
    }
}
