import Foundation

/// Human renderings of NumericDates for messages and the CLI.
public enum Timestamp {
    /// `2026-11-25T14:38:16Z`.
    public static func utc(_ seconds: Double) -> String {
        guard seconds.isFinite, abs(seconds) < 253_402_300_800 else { return String(seconds) }
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: seconds))
    }

    /// Now, in seconds since 1970.
    public static func now() -> Double { Date().timeIntervalSince1970 }
}

extension Duration {
    /// A compact length of time: "45s", "59m", "3h 2m", "12d 4h".
    public static func describe(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "forever" }
        let s = Int(abs(seconds).rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return s % 60 == 0 ? "\(s / 60)m" : "\(s / 60)m \(s % 60)s" }
        if s < 86400 { return s % 3600 / 60 == 0 ? "\(s / 3600)h" : "\(s / 3600)h \(s % 3600 / 60)m" }
        return s % 86400 / 3600 == 0 ? "\(s / 86400)d" : "\(s / 86400)d \(s % 86400 / 3600)h"
    }
}
