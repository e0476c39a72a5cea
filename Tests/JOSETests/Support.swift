import Foundation

/// Paths the tests read: the project's own fixtures, and `../shared/` where a file there is the
/// reference (Wycheproof vectors). Override with GATEWAY_SHARED_DIR.
enum TestPaths {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static var shared: URL {
        if let dir = ProcessInfo.processInfo.environment["GATEWAY_SHARED_DIR"] { return URL(fileURLWithPath: dir) }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }
    static var wycheproofJWS: URL { shared.appendingPathComponent("vectors/wycheproof/json_web_signature_test.json") }

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "jose-tests-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
