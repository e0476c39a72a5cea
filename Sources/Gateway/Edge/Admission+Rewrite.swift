import Foundation
import NIOCore

/// A head the scanner reads once it is written again: an absolute-form target (its authority
/// becomes the Host) or a Host with a trailing dot.
extension Admission {
    /// The head written again with `target` and one Host field, `host` (the client's Host fields
    /// go), its other lines as they came: the form the scanner reads.
    mutating func rewrite(_ p: UnsafeRawBufferPointer, end: Int, method: Range<Int>, targetEnd: Int, target: [UInt8], host: String) -> Decision {
        // The rest of the request line is " HTTP/1.1" CRLF, or the full reader reads it.
        guard targetEnd + 11 <= end, p[targetEnd] == HTTPScan.sp, HTTPScan.equals(p, targetEnd + 1, "HTTP/1."), p[targetEnd + 8] == 0x31 || p[targetEnd + 8] == 0x30,
              p[targetEnd + 9] == HTTPScan.cr, p[targetEnd + 10] == HTTPScan.lf else { return .fullReader("version") }
        fields.removeAll(keepingCapacity: true)
        guard HTTPScan.fields(p, from: targetEnd + 11, to: end, into: &fields) else { return .fullReader("field syntax") }
        var out = allocator.buffer(capacity: end + target.count + host.utf8.count + 16)
        out.writeBytes(UnsafeRawBufferPointer(rebasing: p[method]))
        out.writeStaticString(" ")
        out.writeBytes(target)
        out.writeStaticString(" ")
        out.writeBytes(UnsafeRawBufferPointer(rebasing: p[(targetEnd + 1)..<(targetEnd + 11)]))  // the version, as it came
        for field in fields where !HTTPScan.equalsLowercase(p, field.name, "host") {
            out.writeBytes(UnsafeRawBufferPointer(rebasing: p[field.line]))
        }
        out.writeString("host: \(host)\r\n\r\n")
        return .rewritten(out, consumed: end)
    }

    /// An absolute-form target (`http://host:port/path?query`) as its authority and origin-form
    /// target; nil if the target is not absolute-form, a nil authority if it is unusable (empty,
    /// or with user information).
    static func absoluteForm(_ uri: String) -> (authority: String?, target: String)? {
        let lowered = uri.prefix(8).lowercased()
        let schemeLength = lowered.hasPrefix("http://") ? 7 : lowered.hasPrefix("https://") ? 8 : 0
        guard schemeLength > 0 else { return nil }
        let rest = uri.dropFirst(schemeLength)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var target = String(rest[authorityEnd...])
        if !target.hasPrefix("/") { target = "/" + target }
        if authority.isEmpty || authority.contains("@") { return (nil, target) }
        return (String(authority), target)
    }
}
