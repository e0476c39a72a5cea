/// One mistake in gateway.conf: where it is, and what was expected there.
public struct ConfigIssue: Sendable, CustomStringConvertible, Equatable {
    public let line: Int?
    public let path: String
    public let message: String

    public init(line: Int?, path: String, message: String) {
        self.line = line
        self.path = path
        self.message = message
    }

    public var description: String {
        let place = line.map { "line \($0)" } ?? "config"
        return path.isEmpty ? "\(place): \(message)" : "\(place): \(path): \(message)"
    }
}

/// Every mistake found in a config file; loading never stops at the first one.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public let file: String
    public let issues: [ConfigIssue]

    public var description: String {
        issues.map { "\(file): \($0)" }.joined(separator: "\n")
    }
}
