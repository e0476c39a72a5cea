import Foundation

/// Paths the tests read: the project's own fixtures (the Wycheproof vectors among them, copied
/// from the workplace's reference copy), or another copy under GATEWAY_SHARED_DIR.
enum TestPaths {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    /// Wycheproof's JWS vectors: the project's copy (Fixtures/wycheproof, with its licence), or
    /// `vectors/wycheproof/json_web_signature_test.json` under GATEWAY_SHARED_DIR when set.
    static var wycheproofJWS: URL {
        if let dir = ProcessInfo.processInfo.environment["GATEWAY_SHARED_DIR"] {
            return URL(fileURLWithPath: dir).appendingPathComponent("vectors/wycheproof/json_web_signature_test.json")
        }
        return fixtures.appendingPathComponent("wycheproof/json_web_signature_test.json")
    }

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "jose-tests-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
