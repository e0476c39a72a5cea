// Fuzz target: a client's bytes on a connection (ClientConnectionHandler, Admission, HTTPScan).
//
// The input (after one selector byte) is everything a client sends on one connection, in
// pieces of 1 to 15 bytes or all at once: request heads read as bytes (request line, fields,
// Host, Content-Length, Connection, Expect, token sources, the path checks, routes), bodies,
// pipelined requests, and the heads the scanner does not read (NIOHTTP1's parser, HeadParser,
// says why they are refused). Each request that reaches an upstream is answered 200. "@TOKEN@" in the
// input becomes a valid token, so the fuzzer also reaches the routes that need one. The client
// must receive nothing but HTTP/1.1 responses.
import FuzzGateway
import FuzzSupport
import Gateway

enum Harness {
    nonisolated(unsafe) static let gateway = FuzzGateway.make(FuzzGateway.proxyConfig)
    static let token = Array(FuzzGateway.userToken().utf8)
    static let answer = Array("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".utf8)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let selector = input.byte()
    let request = replacingPlaceholder(Array(input.rest), with: Harness.token)
    let received = Harness.gateway.serve(request, answer: Harness.answer, piece: Int(selector % 16))
    checkResponses(received)
    return 0
}

_ = Harness.gateway
runFuzzer(test)
