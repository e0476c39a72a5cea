import Foundation

/// Paths the tests read: the project's own fixtures only (the Wycheproof vectors among them,
/// with their licence and origin in Fixtures/wycheproof/README.md).
enum TestPaths {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    /// Wycheproof's JWS vectors: the project's copy (Fixtures/wycheproof, with its licence).
    static let wycheproofJWS = fixtures.appendingPathComponent("wycheproof/json_web_signature_test.json")

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "jose-tests-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
