import Foundation
import JOSE
import TOMLKit

/// Reads typed values out of TOMLKit tables and records every mistake with its line: wrong
/// types, bad values, unknown keys. Used once per load; the result is plain structs.
struct ConfigReader {
    let lines: TOMLLines
    private(set) var issues: [ConfigIssue] = []

    init(text: String) { lines = TOMLLines(text) }

    mutating func fail(_ path: String, _ message: String) {
        issues.append(ConfigIssue(line: lines.line(of: path), path: path, message: message))
    }

    /// Flags keys of `table` that are not in `known`.
    mutating func checkKeys(_ table: TOMLTable, at path: String, known: [String]) {
        for key in table.keys.sorted() where !known.contains(key) {
            let full = path.isEmpty ? key : "\(path).\(key)"
            let hint = Self.closest(key, in: known).map { " (did you mean \"\($0)\"?)" } ?? ""
            fail(full, "unknown key\(hint); expected one of: \(known.joined(separator: ", "))")
        }
    }

    mutating func table(_ parent: TOMLTable, _ key: String, at path: String) -> TOMLTable? {
        guard let value = parent[key] else { return nil }
        guard let table = value.table else {
            fail(join(path, key), "expected a table, found \(value.type)")
            return nil
        }
        return table
    }

    mutating func string(_ table: TOMLTable, _ key: String, at path: String) -> String? {
        guard let value = table[key] else { return nil }
        guard let s = value.string else { fail(join(path, key), "expected a string, found \(value.type)"); return nil }
        return s
    }

    mutating func bool(_ table: TOMLTable, _ key: String, at path: String) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let b = value.bool else { fail(join(path, key), "expected true or false, found \(value.type)"); return nil }
        return b
    }

    /// `meaning` explains a special value in the message, as "0 for no limit".
    mutating func int(_ table: TOMLTable, _ key: String, at path: String, range: ClosedRange<Int>, meaning: String? = nil) -> Int? {
        guard let value = table[key] else { return nil }
        let expected = "\(range.lowerBound)...\(range.upperBound)" + (meaning.map { " (\($0))" } ?? "")
        guard let i = value.int else { fail(join(path, key), "expected an integer \(expected), found \(value.type)"); return nil }
        guard range.contains(i) else { fail(join(path, key), "expected \(expected), found \(i)"); return nil }
        return i
    }

    /// A string, or an array of strings.
    mutating func strings(_ table: TOMLTable, _ key: String, at path: String) -> [String]? {
        guard let value = table[key] else { return nil }
        if let s = value.string { return [s] }
        if let array = value.array {
            var out: [String] = []
            for (i, item) in array.enumerated() {
                guard let s = item.string else { fail(join(path, key), "element \(i + 1) is \(item.type); expected strings"); return nil }
                out.append(s)
            }
            return out
        }
        fail(join(path, key), "expected a string or an array of strings, found \(value.type)")
        return nil
    }

    /// A duration: "250ms", "30s", "5m", "2h", "7d", or a number of seconds, within `range`
    /// (never more than a year: timers take nanoseconds in 64 bits).
    mutating func duration(_ table: TOMLTable, _ key: String, at path: String, range: ClosedRange<Double> = 0...Self.longestDuration) -> Double? {
        guard let value = table[key] else { return nil }
        var seconds: Double?
        if let i = value.int, i >= 0 { seconds = Double(i) }
        else if let d = value.double, d >= 0, d.isFinite { seconds = d }
        else if let s = value.string { seconds = DurationText.parse(s) }
        guard let seconds else {
            fail(join(path, key), "expected a duration such as \"30s\", \"5m\", \"250ms\" or a number of seconds, found \(value.debugDescription)")
            return nil
        }
        let upper = min(range.upperBound, Self.longestDuration)
        guard seconds >= range.lowerBound, seconds <= upper else {
            fail(join(path, key), "expected a duration from \(Self.spell(range.lowerBound)) to \(Self.spell(upper)), found \(value.debugDescription)")
            return nil
        }
        return seconds
    }

    static let longestDuration: Double = 365 * 86400

    private static func spell(_ seconds: Double) -> String {
        seconds > 0 && seconds < 1 ? "\(Int((seconds * 1000).rounded()))ms" : Duration.describe(seconds)
    }

    func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private static func closest(_ word: String, in candidates: [String]) -> String? {
        candidates.map { ($0, distance(word, $0)) }.filter { $0.1 <= 2 }.min { $0.1 < $1.1 }?.0
    }

    private static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
}

/// Durations written as text in config and on the command line.
public enum DurationText {
    /// "250ms", "30s", "5m", "2h", "7d", "1.5h", or a bare number of seconds.
    public static func parse(_ text: String) -> Double? {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            let number = s.dropLast(suffix.count)
            if suffix == "s", number.hasSuffix("m") { continue }
            guard let value = Double(number), value >= 0, (value * scale).isFinite else { return nil }
            return value * scale
        }
        guard let value = Double(s), value >= 0, value.isFinite else { return nil }
        return value
    }
}
