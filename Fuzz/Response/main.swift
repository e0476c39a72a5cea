// Fuzz target: an upstream's bytes: the direct path's response-head scanner and chunked
// scanner (ClientConnectionHandler.readResponseHead, ChunkedScanner), and on the full path
// NIOHTTP1's response decoder and the gateway's response handling.
//
// The first byte picks the request (GET, HEAD, a POST with a body, a token route, keep-alive
// with a second request behind it) and the path; the rest is everything the upstream answers
// (status line, fields, framing, bodies, chunks, trailers, informational answers, excess
// bytes). The client must receive nothing but HTTP/1.1 responses.
import FuzzGateway
import FuzzSupport
import Gateway

enum Harness {
    nonisolated(unsafe) static let gateway = FuzzGateway.make(FuzzGateway.proxyConfig)
    static let token = FuzzGateway.userToken()
    static let requests: [[UInt8]] = [
        "GET /public/a HTTP/1.1\r\nHost: gw.example\r\n\r\n",
        "HEAD /public/a HTTP/1.1\r\nHost: gw.example\r\n\r\n",
        "POST /public/form HTTP/1.1\r\nHost: gw.example\r\nContent-Length: 5\r\n\r\nhello",
        "GET /api/items HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer \(token)\r\n\r\n",
        "GET /public/a HTTP/1.1\r\nHost: gw.example\r\n\r\nGET /public/b HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n\r\n",
        "GET /opt HTTP/1.1\r\nHost: gw.example\r\nOrigin: http://app.example\r\n\r\n",
        "DELETE /api/items/1 HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer \(token)\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
        "GET /public/a HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n\r\n",
    ].map { Array($0.utf8) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let selector = input.byte()
    let request = Harness.requests[Int(selector) % Harness.requests.count]
    let received = Harness.gateway.serve(request, answer: Array(input.rest), answers: 2, fullPath: selector & 0x80 != 0)
    checkResponses(received)
    return 0
}

_ = Harness.gateway
runFuzzer(test)
