// Fuzz target: gateway.conf parsing and checking (Sources/Gateway/Config).
//
// The input is the text of a config file. GatewayConfig.parse runs TOML (TOMLKit), then every
// section's reader and check: [server], [auth], [identity], [runtime], [cors], [[route]], with
// their numbers, durations, ports, URLs, origins and paths. Either a config or a ConfigError
// with its issues comes back; the error's text is rendered as `config check` prints it.
import FuzzSupport
import Gateway

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
    do {
        let config = try GatewayConfig.parse(text, file: "fuzz.conf", baseDirectory: "/nonexistent")
        _ = config.routes.map(\.name)
    } catch {
        _ = error.description
    }
    return 0
}

runFuzzer(test)
