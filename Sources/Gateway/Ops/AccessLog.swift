import Foundation
public import Logging
import Synchronization

/// JSON-lines log output for swift-log: one object per line with time, level, message and
/// metadata. Tokens are never among the metadata the gateway logs.
public struct JSONLineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private let sink: LogSink

    public init(label: String, sink: LogSink) {
        self.label = label
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [(String, String)] = [("ts", Self.timestamp()), ("level", event.level.rawValue), ("logger", label), ("msg", event.message.description)]
        for (key, value) in self.metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }).sorted(by: { $0.key < $1.key }) {
            fields.append((key, "\(value)"))
        }
        var line = "{"
        for (i, (key, value)) in fields.enumerated() {
            if i > 0 { line += "," }
            line += Self.quote(key) + ":" + Self.quote(value)
        }
        line += "}\n"
        sink.write(line)
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func timestamp() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        var t = time_t(tv.tv_sec)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, Int(tv.tv_usec / 1000))
    }
}

/// Where log lines go: a file descriptor written whole lines at a time.
public final class LogSink: Sendable {
    private let fd: Mutex<Int32>
    /// The file, when the sink is one (reopened by `reopen()`).
    let path: String?

    public init(fd: Int32, path: String? = nil) {
        self.fd = Mutex(fd)
        self.path = path
    }

    /// Opens the file again (after logrotate moved it away: SIGHUP); the old descriptor is
    /// closed once no line is being written to it. False if it cannot be opened (lines keep
    /// going to the old one).
    @discardableResult
    func reopen() -> Bool {
        guard let path else { return true }
        let next = Foundation.open(path, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        guard next >= 0 else { return false }
        let old = fd.withLock { fd in defer { fd = next }; return fd }
        Foundation.close(old)
        return true
    }

    /// Why `target` (a path) cannot be a log file, or nil.
    public static func problem(_ target: String) -> String? {
        if ["off", "", "stdout", "stderr"].contains(target) { return nil }
        let directory = (target as NSString).deletingLastPathComponent
        let folder = directory.isEmpty ? "." : directory
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: target, isDirectory: &isFolder) {
            if isFolder.boolValue { return "\(target) is a folder, not a file" }
            return access(target, W_OK) == 0 ? nil : "\(target) is not writable"
        }
        return access(folder, W_OK) == 0 ? nil : "cannot create \(target): the folder \(folder) does not exist or is not writable"
    }

    /// "stdout", "stderr", or a path opened for appending; nil for "off".
    public static func open(_ target: String) -> LogSink? {
        switch target {
        case "off", "": return nil
        case "stdout": return LogSink(fd: STDOUT_FILENO)
        case "stderr": return LogSink(fd: STDERR_FILENO)
        default:
            let fd = Foundation.open(target, O_WRONLY | O_CREAT | O_APPEND, 0o640)
            return fd >= 0 ? LogSink(fd: fd, path: target) : LogSink(fd: STDERR_FILENO)
        }
    }

    func write(_ line: String) {
        var line = line
        fd.withLock { fd in
            line.withUTF8 { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
        }
    }
}
