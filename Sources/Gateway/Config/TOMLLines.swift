import Foundation

/// Finds the line of a key in TOML text, so config errors can point at it.
///
/// TOMLKit parses but does not report where values are; this scan follows table headers
/// (`[auth]`, `[[route]]` and its index) and `key =` lines. Keys inside inline tables report
/// the line of the key that holds the inline table.
struct TOMLLines {
    /// "auth.issuer" -> line; "route[2].path" -> line; "auth" -> header line.
    private var lines: [String: Int] = [:]

    init(_ text: String) {
        var table = ""
        var arrayCounts: [String: Int] = [:]
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = Self.stripComment(String(raw)).trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if line.hasPrefix("[[") , let end = line.range(of: "]]") {
                let name = Self.unquote(String(line[line.index(line.startIndex, offsetBy: 2)..<end.lowerBound]).trimmingCharacters(in: .whitespaces))
                let index = arrayCounts[name, default: 0]
                arrayCounts[name] = index + 1
                table = "\(name)[\(index)]"
                lines[table] = number + 1
                // The array's own name (an unknown one is reported by name) is its first header.
                lines[name] = lines[name] ?? number + 1
                continue
            }
            if line.hasPrefix("["), let end = line.firstIndex(of: "]") {
                table = Self.unquote(String(line[line.index(after: line.startIndex)..<end]).trimmingCharacters(in: .whitespaces))
                lines[table] = lines[table] ?? number + 1
                continue
            }
            if let eq = line.firstIndex(of: "=") {
                let key = Self.unquote(String(line[..<eq]).trimmingCharacters(in: .whitespaces))
                let path = table.isEmpty ? key : "\(table).\(key)"
                lines[path] = lines[path] ?? number + 1
            }
        }
    }

    /// The line of `path`, or of its nearest enclosing key or table.
    func line(of path: String) -> Int? {
        var path = path
        while true {
            if let line = lines[path] { return line }
            guard let dot = path.lastIndex(of: ".") else { return nil }
            path = String(path[..<dot])
        }
    }

    private static func stripComment(_ line: String) -> String {
        var inString: Character? = nil
        for (i, c) in line.enumerated() {
            if let q = inString {
                if c == q { inString = nil }
            } else if c == "\"" || c == "'" {
                inString = c
            } else if c == "#" {
                return String(line.prefix(i))
            }
        }
        return line
    }

    private static func unquote(_ s: String) -> String {
        if s.count >= 2, (s.hasPrefix("\"") && s.hasSuffix("\"")) || (s.hasPrefix("'") && s.hasSuffix("'")) {
            return String(s.dropFirst().dropLast())
        }
        return s
    }
}
