import Foundation

/// Human renderings of NumericDates for messages and the CLI.
///
/// Total over every `Double`: a value no calendar can show is printed as the number it is.
/// No formatter is made per call (refusal messages are built on the request path).
public enum Timestamp {
    /// The largest magnitude, in seconds, rendered as a date: a signed 64-bit count of
    /// seconds (about 292 billion years each way). Claims beyond it are refused at parse time.
    static let limit = 9_223_372_036_854_775_807.0

    /// `2026-11-25T14:38:16Z`; years past 9999 or before 0 are written with their sign and
    /// all their digits.
    public static func utc(_ seconds: Double, milliseconds: Bool = false) -> String {
        guard seconds.isFinite, abs(seconds) < limit else { return String(seconds) }
        let whole = Int64(seconds.rounded(.down))
        // Whole milliseconds of the second, 0...999 (a double near 2^63 has none to give).
        let millis = milliseconds ? min(999, max(0, Int64(((seconds - seconds.rounded(.down)) * 1000).rounded(.down)))) : 0
        let (days, secondOfDay) = whole.quotientAndRemainderFloored(dividingBy: 86_400)
        let (year, month, day) = civil(fromDays: days)
        let h = secondOfDay / 3600, m = secondOfDay % 3600 / 60, s = secondOfDay % 60
        var out = year >= 0 && year <= 9999 ? pad(year, 4) : (year < 0 ? "-" + pad(-year, 4) : "+" + String(year))
        out += "-" + pad(month, 2) + "-" + pad(day, 2) + "T" + pad(h, 2) + ":" + pad(m, 2) + ":" + pad(s, 2)
        if milliseconds { out += "." + pad(millis, 3) }
        out += "Z"
        return out
    }

    /// Now, in seconds since 1970.
    public static func now() -> Double { Date().timeIntervalSince1970 }

    /// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`),
    /// exact for every day a signed 64-bit count of seconds can name.
    static func civil(fromDays z: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = z + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}

extension Int64 {
    /// Floored division: the remainder has the divisor's sign (-1 s is day -1, 86399 s).
    fileprivate func quotientAndRemainderFloored(dividingBy d: Int64) -> (Int64, Int64) {
        let (q, r) = quotientAndRemainder(dividingBy: d)
        return r < 0 ? (q - 1, r + d) : (q, r)
    }
}

extension Duration {
    /// A compact length of time: "45s", "59m", "3h 2m", "12d 4h". Total: any length past a
    /// 64-bit count of seconds is "forever".
    public static func describe(_ seconds: Double) -> String {
        let magnitude = abs(seconds).rounded()
        guard magnitude.isFinite, magnitude < Timestamp.limit else { return "forever" }
        let s = Int64(magnitude)
        if s < 60 { return "\(s)s" }
        if s < 3600 { return s % 60 == 0 ? "\(s / 60)m" : "\(s / 60)m \(s % 60)s" }
        if s < 86400 { return s % 3600 / 60 == 0 ? "\(s / 3600)h" : "\(s / 3600)h \(s % 3600 / 60)m" }
        return s % 86400 / 3600 == 0 ? "\(s / 86400)d" : "\(s / 86400)d \(s % 86400 / 3600)h"
    }
}
