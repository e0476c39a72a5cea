import Foundation
import CoreMetrics
import JOSE
import NIOCore
import NIOHTTP1

extension ClientConnectionHandler {
    // MARK: Local API

    /// Moves the local request's body from `inbound`; dispatches it once whole.
    func pumpLocalBody(_ local: LocalExchange) {
        if local.remaining > 0, var buffered = inbound, buffered.readableBytes > 0 {
            let take = min(local.remaining, buffered.readableBytes)
            buffered.readWithUnsafeReadableBytes { p in
                local.body.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[..<take]))
                return take
            }
            inbound = buffered.readableBytes > 0 ? buffered : nil
            local.remaining -= take
            machine.clientBody(now: DispatchTime.now().uptimeNanoseconds)
        }
        if local.remaining == 0, !local.dispatched { dispatch(local) } else { resumeClientReads() }
    }

    /// Hands a complete local request to the API and writes its answer when it comes.
    func dispatch(_ local: LocalExchange) {
        local.dispatched = true
        machine.localDispatched(now: DispatchTime.now().uptimeNanoseconds)
        let call = local.call
        let api = server.localAPI
        let request = LocalRequest(method: HTTPMethod(rawValue: call.method), path: call.path, query: LocalRequest.parseQuery(call.query),
                                   headers: HTTPHeaders(call.headers), body: local.body, remoteIP: remoteIP, requestID: call.requestID)
        let state = currentState()
        context?.eventLoop.makeFutureWithTask { try await withDeadline(seconds: Admission.localTimeout) { await api.handle(request, state: state) } }
            .assumeIsolated().whenComplete { result in
                guard self.local === local else { return }
                self.local = nil
                var response: LocalResponse
                switch result {
                case .success(let answer): response = answer
                case .failure(let error):
                    // The store hung (a database gone): 503, not a hang.
                    response = api.unavailable(request, error is RuntimeTimeout ? "\(error)" : "the runtime failed")
                    response.note = "\(String(reflecting: error))"
                }
                let keepAlive = call.keepAlive && !self.server.isDraining
                self.server.requestFinished(route: "local", status: Int(response.status.code), method: call.method, uri: call.target,
                                            requestID: call.requestID, started: local.started, upstream: nil, identity: nil,
                                            bytesIn: local.body.count, bytesOut: response.body.count, note: response.note)
                self.becameIdle()
                self.context?.write(self.wrapOutboundOut(response.bytes(requestID: call.requestID, keepAlive: keepAlive, toHEAD: call.isHead,
                                                                        cors: state.config.cors == nil ? nil : call.cors ?? [], http10: call.http10,
                                                                        allocator: self.allocator)), promise: nil)
                self.clientNeedsFlush = true
                if keepAlive {
                    self.flushClient()
                    self.nextRequest()
                } else {
                    self.closeAfterWrites()
                }
            }
    }
}
