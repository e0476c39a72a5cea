// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// `GATEWAY_FUZZ` set: the libFuzzer targets (Fuzz/, end of this file) and the embedded harness
/// they drive the server with (Gateway's EmbeddedGateway.swift) are part of the package.
let fuzzing = Context.environment["GATEWAY_FUZZ"] != nil
let fuzzingDependencies: [Target.Dependency] = fuzzing ? [.product(name: "NIOEmbedded", package: "swift-nio")] : []
let fuzzingSettings: [SwiftSetting] = fuzzing ? [.define("GATEWAY_FUZZ")] : []
/// `GATEWAY_FUZZ` set: the project's own Swift targets (JOSE, Runtime, Gateway, Fuzz/) get
/// libFuzzer's coverage instrumentation and AddressSanitizer; the dependencies and the C and
/// system-library targets are built as usual (a sanitized build of the whole graph, with
/// `-Xswiftc`, took over 23 minutes here). What links them needs the runtimes: `fuzzingLink`.
/// `GATEWAY_FUZZ_SANITIZE` replaces the flags (e.g. "-sanitize=address" for a plain ASan build).
let sanitize: [String] = (Context.environment["GATEWAY_FUZZ_SANITIZE"] ?? "-sanitize=fuzzer,address")
    .split(separator: " ").map(String.init)
let instrumented: [SwiftSetting] = fuzzing ? [.unsafeFlags(sanitize)] : []
let fuzzingLink: [LinkerSetting] = fuzzing ? [.unsafeFlags(sanitize)] : []

/// The request path: dynamic exclusivity checks off (the compiler's static checks stay).
let fast: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "gateway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gateway", targets: ["gateway"]),
        .library(name: "JOSE", targets: ["JOSE"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.13.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // System libraries, found by pkg-config. Shims only.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CJansson",
            pkgConfig: "jansson",
            providers: [.apt(["libjansson-dev"])]
        ),

        // Tokens: base64url, compact JWS, keys, claims, verify and sign. No networking.
        .target(
            name: "JOSE",
            dependencies: ["COpenSSL", "CJansson"],
            swiftSettings: strict + fast + instrumented
        ),

        // Sessions, intents and their validation, the state surface (SQLite, PostgreSQL),
        // identities (users, password hashes, refresh tokens), session events.
        .target(
            name: "Runtime",
            dependencies: [
                "JOSE",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict + instrumented
        ),

        // The server: gateway.conf, routing, auth policy, proxying, /auth/v1, metrics.
        .target(
            name: "Gateway",
            dependencies: [
                "JOSE",
                "Runtime",
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ] + fuzzingDependencies,
            exclude: fuzzing ? [] : ["Server/EmbeddedGateway.swift"],
            swiftSettings: strict + fast + fuzzingSettings + instrumented
        ),

        // The command line: serve, token inspect|verify|mint, keys, config check.
        .executableTarget(
            name: "gateway",
            dependencies: [
                "JOSE",
                "Gateway",
                "Runtime",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // Benchmarks: `swift run -c release jose-bench`.
        .executableTarget(
            name: "jose-bench",
            dependencies: ["JOSE", "COpenSSL"],
            path: "Benchmarks/JOSEBenchmark",
            swiftSettings: strict
        ),

        // The cost of relaying bytes through SwiftNIO alone (no HTTP), beside the gateway.
        .executableTarget(
            name: "relay-ceiling",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            path: "Benchmarks/RelayCeiling",
            swiftSettings: strict
        ),

        .executableTarget(
            name: "runtime-bench",
            dependencies: ["Runtime", "JOSE", .product(name: "NIOPosix", package: "swift-nio")],
            path: "Benchmarks/RuntimeBenchmark",
            swiftSettings: strict
        ),

        .testTarget(
            name: "JOSETests",
            dependencies: ["JOSE"],
            exclude: ["Fixtures"],  // read from the source tree (#filePath), not bundled
            swiftSettings: strict
        ),
        .testTarget(
            name: "RuntimeTests",
            dependencies: ["Runtime", "JOSE"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: ["Gateway", "Runtime", "JOSE", .product(name: "NIOEmbedded", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["gateway", "JOSE"],
            swiftSettings: strict
        ),
    ]
)

// libFuzzer targets, one per input surface: declared only when GATEWAY_FUZZ is set, so normal
// builds and tests never see them. scripts/fuzz.sh builds and runs them (see Fuzz/README.md).
if fuzzing {
    let fuzzTargets: [(name: String, path: String, dependencies: [Target.Dependency])] = [
        ("fuzz-jws", "Fuzz/JWS", ["JOSE"]),
        ("fuzz-claims", "Fuzz/Claims", ["JOSE"]),
        ("fuzz-keys", "Fuzz/Keys", ["JOSE"]),
        ("fuzz-request", "Fuzz/Request", ["Gateway", "FuzzGateway"]),
        ("fuzz-http1", "Fuzz/HTTP1", ["Gateway", "FuzzGateway"]),
        ("fuzz-response", "Fuzz/Response", ["Gateway", "FuzzGateway"]),
        ("fuzz-config", "Fuzz/Config", ["Gateway"]),
        ("fuzz-api", "Fuzz/API", ["Gateway", "JOSE", "FuzzGateway"]),
    ]
    package.targets.append(.target(name: "CFuzzDriver", path: "Fuzz/CFuzzDriver"))
    package.targets.append(.target(name: "FuzzSupport", dependencies: ["CFuzzDriver"], path: "Fuzz/Support",
                                   swiftSettings: strict + instrumented))
    package.targets.append(.target(name: "FuzzGateway", dependencies: ["FuzzSupport", "Gateway", "JOSE"], path: "Fuzz/GatewaySupport",
                                   swiftSettings: strict + instrumented))
    for target in fuzzTargets {
        package.targets.append(.executableTarget(name: target.name, dependencies: target.dependencies + ["FuzzSupport"],
                                                 path: target.path, swiftSettings: strict + instrumented,
                                                 linkerSettings: fuzzingLink))
        package.products.append(.executable(name: target.name, targets: [target.name]))
    }
    // Everything else that links the instrumented targets needs the sanitizer runtimes too
    // (`swift build` of the whole package under GATEWAY_FUZZ; scripts/fuzz.sh builds only the
    // fuzz products).
    for target in package.targets where target.type == .executable || target.type == .test {
        if !target.name.hasPrefix("fuzz-") { target.linkerSettings = (target.linkerSettings ?? []) + fuzzingLink }
    }
}
