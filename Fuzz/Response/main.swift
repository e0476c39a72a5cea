// Fuzz target: an upstream's bytes: the response-head reader and the chunked scanner
// (ResponseHeadReader, ChunkedScanner, ClientConnectionHandler's response handling), relayed
// to an HTTP/1.1 client or decoded for an HTTP/1.0 one.
//
// The first byte picks the request (GET, HEAD, a POST with a body, a token route, keep-alive
// with a second request behind it), and its high bit HTTP/1.0; the rest is everything the
// upstream answers (status line, fields, framing, bodies, chunks, trailers, informational
// answers, excess bytes). The client must receive nothing but HTTP/1.x responses.
import Foundation
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

    /// The request lines in HTTP/1.0, kept alive.
    static func http10(_ request: [UInt8]) -> [UInt8] {
        Array(String(decoding: request, as: UTF8.self).replacingOccurrences(of: " HTTP/1.1\r\n", with: " HTTP/1.0\r\nConnection: keep-alive\r\n").utf8)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let selector = input.byte()
    var request = Harness.requests[Int(selector & 0x7F) % Harness.requests.count]
    // The high bit: the client speaks HTTP/1.0 (its answer in 1.0, a chunked body decoded).
    if selector & 0x80 != 0 { request = Harness.http10(request) }
    let received = Harness.gateway.serve(request, answer: Array(input.rest), answers: 2)
    checkResponses(received)
    return 0
}

_ = Harness.gateway
runFuzzer(test)
