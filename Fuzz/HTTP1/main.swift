// Fuzz target: a client's bytes after a first request on the same connection (its exchange
// done, the connection kept alive): the admission, the byte scanner and NIOHTTP1's parser for
// the heads the scanner does not read (HTTP1/HeadParser), read mid-connection.
//
// The input (after one selector byte) is what the client sends next, in pieces of 1 to 15
// bytes or all at once; "@TOKEN@" becomes a valid token. Each request that reaches an upstream
// is answered 200. The client must receive nothing but HTTP/1.x responses.
import FuzzGateway
import FuzzSupport
import Gateway

enum Harness {
    nonisolated(unsafe) static let gateway = FuzzGateway.make(FuzzGateway.proxyConfig)
    static let token = Array(FuzzGateway.userToken().utf8)
    static let answer = Array("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".utf8)
    static let first = Array("GET /public/a HTTP/1.1\r\nHost: gw.example\r\n\r\n".utf8)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let selector = input.byte()
    let request = Harness.first + replacingPlaceholder(Array(input.rest), with: Harness.token)
    let received = Harness.gateway.serve(request, answer: Harness.answer, piece: Int(selector % 16))
    checkResponses(received)
    return 0
}

_ = Harness.gateway
runFuzzer(test)
