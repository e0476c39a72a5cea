// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

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
            swiftSettings: strict
        ),

        // The command line: token inspect|verify|mint, keys generate|list.
        .executableTarget(
            name: "gateway",
            dependencies: [
                "JOSE",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "TOMLKit", package: "TOMLKit"),
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

        .testTarget(
            name: "JOSETests",
            dependencies: ["JOSE"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["gateway", "JOSE"],
            swiftSettings: strict
        ),
    ]
)
