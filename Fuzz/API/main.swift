// Fuzz target: the JSON bodies of the gateway's own endpoints, /auth/v1 (signup, token with
// grant_type password and refresh_token, logout, user) and the runtime session API
// (/api/session/create and the session routes), as LocalAPI reads them after the full path
// read the whole body.
//
// The first byte picks the endpoint, whether a valid user token is sent and which API version
// the client claims; the rest is the request body. The store is a throwaway SQLite database.
import Foundation
import FuzzGateway
import FuzzSupport
import Gateway
import JOSE

enum Harness {
    nonisolated(unsafe) static let gateway = FuzzGateway.make(FuzzGateway.apiConfig)
    static let token = FuzzGateway.userToken()
    static let endpoints: [(String, String)] = [
        ("POST", "/auth/v1/signup"),
        ("POST", "/auth/v1/token?grant_type=password"),
        ("POST", "/auth/v1/token?grant_type=refresh_token"),
        ("POST", "/api/session/create"),
        ("POST", "/auth/v1/logout?scope=local"),
        ("GET", "/auth/v1/user"),
        ("GET", "/api/sessions"),
        ("DELETE", "/api/session/00000000-0000-4000-8000-000000000000"),
    ]
}

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let selector = input.byte()
    let (method, target) = Harness.endpoints[Int(selector) % Harness.endpoints.count]
    var headers = [("content-type", "application/json"), ("host", "gw.example")]
    if selector & 0x10 == 0 { headers.append(("authorization", "Bearer \(Harness.token)")) }
    if selector & 0x20 != 0 { headers.append(("x-supabase-api-version", "2024-01-01")) }
    let (status, body) = Harness.gateway.local(method: method, target: target, headers: headers, body: Array(input.rest))
    require((200...599).contains(status), "status \(status) for \(method) \(target)")
    // Every answer with a body is one JSON value.
    if !body.isEmpty { require((try? JSONDocument.parse(body)) != nil, "\(method) \(target) answered a body that is not JSON") }
    return 0
}

_ = Harness.gateway
runFuzzer(test)
