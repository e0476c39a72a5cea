import Foundation
import JOSE
import Synchronization

/// A child process whose output is collected as it comes, for servers the tests talk to.
final class Child: @unchecked Sendable {  // output is guarded by `lock`; the rest is set up before use
    let process = Process()
    private let lock = NSLock()
    private var out = Data(), err = Data()

    init(_ executable: String, _ arguments: [String], directory: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let o = Pipe(), e = Pipe()
        process.standardOutput = o
        process.standardError = e
        process.standardInput = FileHandle.nullDevice
        o.fileHandleForReading.readabilityHandler = { [weak self] h in let d = h.availableData; self?.lock.withLock { self?.out.append(d) } }
        e.fileHandleForReading.readabilityHandler = { [weak self] h in let d = h.availableData; self?.lock.withLock { self?.err.append(d) } }
        try process.run()
    }

    var stdout: String { lock.withLock { String(decoding: out, as: UTF8.self) } }
    var stderr: String { lock.withLock { String(decoding: err, as: UTF8.self) } }

    /// Waits until stdout has a line starting with `prefix`; returns the rest of that line.
    func waitForLine(_ prefix: String, timeout: Double = 20) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = stdout.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                return String(line.dropFirst(prefix.count))
            }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw ChildError("no line \"\(prefix)\" from \(process.executableURL!.lastPathComponent) (running: \(process.isRunning)); stdout: \(stdout.suffix(2000)) stderr: \(stderr.suffix(2000))")
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Resident memory in KiB, from /proc.
    var rssKiB: Int {
        let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        return process.isRunning ? nil : process.terminationStatus
    }

    func stop() {
        if process.isRunning { process.terminate() }
        _ = waitForExit(timeout: 5)
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    deinit { stop() }
}

struct ChildError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The Python upstream (Tests/Integration/upstream.py) on an ephemeral port.
final class TestUpstream: @unchecked Sendable {
    let child: Child
    let port: Int

    init(name: String = "upstream") throws {
        let script = CLI.packageRoot.appendingPathComponent("Tests/Integration/upstream.py").path
        child = try Child("/usr/bin/env", ["python3", script, "0", name])
        port = Int(try child.waitForLine("upstream listening on ")) ?? 0
    }

    var url: String { "http://127.0.0.1:\(port)" }
}

/// A `gateway serve` process with its own config and keys.
final class TestGateway: @unchecked Sendable {
    let child: Child
    let port: Int
    let directory: String
    let configPath: String

    /// `config` follows an [auth] table naming the shared keys, issuer and audience.
    convenience init(config: String, keys: String, directory: String = CLI.temporaryDirectory(), extra: [String] = [], startTimeout: Double = 20) throws {
        try self.init(rawConfig: Self.text(config: config, keys: keys), directory: directory, extra: extra, startTimeout: startTimeout)
    }

    init(rawConfig: String, directory: String, extra: [String] = [], startTimeout: Double = 20) throws {
        self.directory = directory
        configPath = directory + "/gateway.conf"
        try rawConfig.write(toFile: configPath, atomically: true, encoding: .utf8)
        child = try Child(CLI.binary, ["serve", "--config", configPath, "--listen", "127.0.0.1:0"] + extra, directory: directory)
        let address = try child.waitForLine("gateway listening on ", timeout: startTimeout)
        port = Int(address.split(separator: ":").last ?? "") ?? 0
    }

    static func text(config: String, keys: String) -> String {
        "[auth]\nissuer = \"\(CLITests.issuer)\"\naudience = \"authenticated\"\nkeys = \"\(keys)\"\n" + config
    }

    var url: String { "http://127.0.0.1:\(port)" }
}

/// curl, as a real HTTP client.
enum Curl {
    struct Response {
        let status: Int
        let headers: [String: String]
        let body: String
        var json: JSONNode? { try? JSONDocument.parse(body).value }
    }

    static func request(_ url: String, _ arguments: [String] = [], stdin: [UInt8]? = nil, timeout: Int = 30) throws -> Response {
        let dir = CLI.temporaryDirectory()
        let result = try CLI.run(["-s", "-S", "--max-time", "\(timeout)", "-o", dir + "/body", "-D", dir + "/headers", "-w", "%{http_code}"] + arguments + [url],
                                 stdin: stdin, executable: "/usr/bin/curl")
        let body = (try? String(contentsOfFile: dir + "/body", encoding: .utf8)) ?? ""
        let rawHeaders = (try? String(contentsOfFile: dir + "/headers", encoding: .utf8)) ?? ""
        var headers: [String: String] = [:]
        // The last header block (after any 100 Continue; trailers, which curl writes there too, are not one).
        let blocks = rawHeaders.components(separatedBy: "\r\n\r\n").filter { $0.hasPrefix("HTTP/") }
        for line in (blocks.last ?? "").split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        try? FileManager.default.removeItem(atPath: dir)
        return Response(status: Int(result.stdout) ?? 0, headers: headers, body: body)
    }

    static func bearer(_ token: String) -> [String] { ["-H", "Authorization: Bearer \(token)"] }

    /// `count` requests at once, each from its own thread; the answers in order (status 0 for
    /// one that could not be made).
    static func concurrently(_ count: Int, _ request: @escaping @Sendable (Int) throws -> Response) -> [Response] {
        final class Answers: Sendable { let table = Mutex<[Int: Response]>([:]) }
        let answers = Answers(), group = DispatchGroup()
        for i in 0..<count {
            group.enter()
            Thread.detachNewThread {
                let answer = (try? request(i)) ?? Response(status: 0, headers: [:], body: "")
                answers.table.withLock { $0[i] = answer }
                group.leave()
            }
        }
        group.wait()
        return (0..<count).map { i in answers.table.withLock { $0[i] } ?? Response(status: 0, headers: [:], body: "") }
    }
}
