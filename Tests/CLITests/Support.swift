import Foundation

/// Runs the built `gateway` binary and captures what it prints.
enum CLI {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The binary under test: GATEWAY_BIN, else next to the test bundle, else .build/debug.
    static let binary: String = {
        if let path = ProcessInfo.processInfo.environment["GATEWAY_BIN"] { return path }
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gateway").path,
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("gateway").path,
            packageRoot.appendingPathComponent(".build/debug/gateway").path,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates.last!
    }()

    struct Output {
        let status: Int32
        let stdout: String
        let stderr: String
        /// Ended by a signal (a trap, a crash), whatever its status number.
        var crashed = false
        var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
    }

    @discardableResult
    static func run(_ arguments: [String], stdin: [UInt8]? = nil, directory: String? = nil, executable: String = binary,
                    prefixPython: Bool = false) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = prefixPython ? ["python3"] + arguments : arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        // Read both pipes concurrently so a large output cannot block the child.
        nonisolated(unsafe) var outData = Data(), errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        if let stdin { try? input.fileHandleForWriting.write(contentsOf: Data(stdin)) }
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        group.wait()
        return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self),
                      crashed: process.terminationReason == .uncaughtSignal)
    }

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "gateway-cli-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A key folder with one key per algorithm family, made by `gateway keys generate`.
    static func keyFolder() throws -> String {
        let dir = temporaryDirectory() + "/Keys"
        for (alg, kid) in [("HS256", "hs256"), ("HS384", "hs384"), ("HS512", "hs512"), ("RS256", "rsa"),
                           ("ES256", "es256"), ("ES384", "es384"), ("ES512", "es512"), ("EdDSA", "ed25519")] {
            let result = try run(["keys", "generate", "--alg", alg, "--kid", kid, "--dir", dir])
            precondition(result.status == 0, "keys generate failed: \(result.stderr)")
        }
        return dir
    }
}
