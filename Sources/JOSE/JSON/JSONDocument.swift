private import CJansson
import Foundation

/// An immutable JSON document parsed by jansson, and read-only views into it.
///
/// Parsing rejects duplicate object keys, invalid UTF-8 and NUL bytes (jansson's defaults plus
/// `JSON_REJECT_DUPLICATES`), and nesting deeper than jansson's limit. The document is never
/// mutated after parsing, so views can be read from any thread.
public final class JSONDocument: @unchecked Sendable {  // immutable after init; jansson reads do not write
    fileprivate let root: UnsafeMutablePointer<json_t>

    private init(root: UnsafeMutablePointer<json_t>) { self.root = root }
    deinit { cj_decref(root) }

    /// Parses an object or array from UTF-8 bytes.
    ///
    /// An integer beyond 64 bits is valid JSON (RFC 8259 sets no limit) that jansson cannot
    /// hold as an integer: such a document is read again with every number as a double, so
    /// `{"exp":18446744073709551616}` reaches the claim checks (and their reason) instead of
    /// failing as unparseable. A number beyond a double's range is refused with that reason.
    /// Refused input is `malformed`, with jansson's explanation and the byte where it stopped.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(AuthFailure) -> JSONDocument {
        do { return try read(bytes) } catch { throw error.failure }
    }

    /// Parses an object or array from bytes.
    public static func parse(_ bytes: [UInt8]) throws(AuthFailure) -> JSONDocument {
        do { return try read(bytes) } catch { throw error.failure }
    }

    /// Parses an object or array from a string.
    public static func parse(_ text: String) throws(AuthFailure) -> JSONDocument {
        try parse(Array(text.utf8))
    }

    /// `parse(_:)` with jansson's failure as it is, for JOSE's own
    /// callers, which put it in their own words ("claims are not valid JSON: ...").
    static func read(_ bytes: UnsafeRawBufferPointer) throws(JSONError) -> JSONDocument {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self), !bytes.isEmpty else {
            throw JSONError(message: "empty input", position: 0)
        }
        var error = json_error_t()
        if let root = json_loadb(base, bytes.count, Int(JSON_REJECT_DUPLICATES), &error) { return JSONDocument(root: root) }
        guard json_error_code(&error) == json_error_numeric_overflow else {
            throw JSONError(message: Self.text(of: error), position: Int(error.position))
        }
        if let root = json_loadb(base, bytes.count, Int(JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL), &error) { return JSONDocument(root: root) }
        if json_error_code(&error) == json_error_numeric_overflow {
            throw JSONError(message: "a number is beyond what a 64-bit integer or float can hold (at byte \(error.position))", position: Int(error.position))
        }
        throw JSONError(message: Self.text(of: error), position: Int(error.position))
    }

    static func read(_ bytes: [UInt8]) throws(JSONError) -> JSONDocument {
        do {
            return try bytes.withUnsafeBytes { buffer in try read(buffer) }
        } catch let error as JSONError { throw error } catch { fatalError("unreachable: \(error)") }
    }

    /// The top-level value.
    public var value: JSONNode { JSONNode(document: self, raw: OpaquePointer(root)) }

    private static func text(of error: json_error_t) -> String {
        withUnsafeBytes(of: error.text) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}

/// A JSON parse failure with jansson's explanation and the byte offset where it stopped.
/// Internal: JOSE's callers see it as ``AuthFailure`` (`malformed`), or in their own message.
struct JSONError: Error, Sendable, CustomStringConvertible {
    let message: String
    let position: Int
    var description: String { "\(message) (at byte \(position))" }
    var failure: AuthFailure { AuthFailure(.malformed, description) }
}

/// A read-only view of one value inside a ``JSONDocument``; it keeps the document alive.
public struct JSONNode: @unchecked Sendable {  // points into an immutable JSONDocument it retains
    public enum Kind: Sendable { case object, array, string, integer, real, bool, null }

    let document: JSONDocument
    let raw: OpaquePointer
    private var json: UnsafeMutablePointer<json_t> { UnsafeMutablePointer(raw) }

    public var kind: Kind {
        switch json_typeof_shim(json) {
        case JSON_OBJECT: .object
        case JSON_ARRAY: .array
        case JSON_STRING: .string
        case JSON_INTEGER: .integer
        case JSON_REAL: .real
        case JSON_TRUE, JSON_FALSE: .bool
        default: .null
        }
    }

    /// The member named `key` when this is an object.
    public subscript(key: String) -> JSONNode? {
        guard cj_is_object(json) != 0, let member = json_object_get(json, key) else { return nil }
        return JSONNode(document: document, raw: OpaquePointer(member))
    }

    /// Follows a dotted path of object members, e.g. `app_metadata.tenant_id`.
    public func at(path: String) -> JSONNode? {
        var node: JSONNode? = self
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            node = node?[String(part)]
        }
        return node
    }

    public var string: String? {
        guard cj_is_string(json) != 0, let chars = json_string_value(json) else { return nil }
        let length = json_string_length(json)
        return chars.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }

    /// Compares a string value with `other` without making a `String`.
    public func stringEquals(_ other: String) -> Bool {
        guard cj_is_string(json) != 0, let chars = json_string_value(json) else { return false }
        let length = json_string_length(json)
        var other = other
        return other.withUTF8 { o in
            o.count == length && (length == 0 || memcmp(chars, o.baseAddress!, length) == 0)
        }
    }

    public var integer: Int64? { cj_is_integer(json) != 0 ? Int64(json_integer_value(json)) : nil }

    /// Integers and reals as a Double.
    public var number: Double? { cj_is_number(json) != 0 ? json_number_value(json) : nil }

    public var bool: Bool? {
        if cj_is_true(json) != 0 { return true }
        if cj_is_false(json) != 0 { return false }
        return nil
    }

    public var isNull: Bool { cj_is_null(json) != 0 }

    /// The elements when this is an array.
    public var array: [JSONNode]? {
        guard cj_is_array(json) != 0 else { return nil }
        return (0..<json_array_size(json)).map { JSONNode(document: document, raw: OpaquePointer(json_array_get(json, $0)!)) }
    }

    /// The members in document order when this is an object.
    public var members: [(key: String, value: JSONNode)]? {
        guard cj_is_object(json) != 0 else { return nil }
        var result: [(key: String, value: JSONNode)] = []
        var iter = json_object_iter(json)
        while let it = iter {
            let key = String(cString: json_object_iter_key(it))
            let value = json_object_iter_value(it)!
            result.append((key, JSONNode(document: document, raw: OpaquePointer(value))))
            iter = json_object_iter_next(json, it)
        }
        return result
    }

    /// Serializes this value: compact, or indented by two spaces.
    public func serialized(pretty: Bool = false) -> String {
        JSONValue.dump(json, pretty: pretty)
    }

    /// Copies this value into a Swift ``JSONValue``.
    public var jsonValue: JSONValue {
        switch kind {
        case .object: .object((members ?? []).map { ($0.key, $0.value.jsonValue) })
        case .array: .array((array ?? []).map(\.jsonValue))
        case .string: .string(string ?? "")
        case .integer: .int(integer ?? 0)
        case .real: .double(number ?? 0)
        case .bool: .bool(bool ?? false)
        case .null: .null
        }
    }
}

private func json_typeof_shim(_ json: UnsafeMutablePointer<json_t>) -> json_type {
    json_type(rawValue: UInt32(cj_typeof(json)))
}

/// A JSON value built in Swift, for claims to sign and keys to publish. Object members keep
/// their order.
public indirect enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    /// Serializes compactly (or indented), through jansson.
    public func serialized(pretty: Bool = false) -> String {
        let json = makeJansson()
        defer { cj_decref(json) }
        return Self.dump(json, pretty: pretty)
    }

    /// Parses any JSON value (including scalars) from text; refused text is `malformed`.
    public static func parse(_ text: String) throws(AuthFailure) -> JSONValue {
        var error = json_error_t()
        let bytes = Array(text.utf8)
        let parsed: UnsafeMutablePointer<json_t>? = bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) {
                json_loadb($0.baseAddress, $0.count, Int(JSON_DECODE_ANY | JSON_REJECT_DUPLICATES), &error)
            }
        }
        guard let parsed else {
            let message = withUnsafeBytes(of: error.text) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            throw JSONError(message: message, position: Int(error.position)).failure
        }
        defer { cj_decref(parsed) }
        return JSONNode(document: JSONDocument.retaining(parsed), raw: OpaquePointer(parsed)).jsonValue
    }

    /// The member named `key` when this is an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.0 == key }?.1
    }

    fileprivate func makeJansson() -> UnsafeMutablePointer<json_t> {
        switch self {
        case .null: return json_null()
        case .bool(let b): return b ? json_true() : json_false()
        case .int(let i): return json_integer(json_int_t(i))
        case .double(let d): return json_real(d)
        case .string(let s):
            var s = s
            return s.withUTF8 { u in
                u.withMemoryRebound(to: CChar.self) { json_stringn_nocheck($0.baseAddress ?? Self.emptyCString, $0.count) }
            }
        case .array(let items):
            let array = json_array()!
            for item in items { json_array_append_new(array, item.makeJansson()) }
            return array
        case .object(let members):
            let object = json_object()!
            for (key, value) in members {
                var key = key
                key.withUTF8 { k in
                    k.withMemoryRebound(to: CChar.self) {
                        _ = cj_object_set_new(object, $0.baseAddress ?? Self.emptyCString, $0.count, value.makeJansson())
                    }
                }
            }
            return object
        }
    }

    nonisolated(unsafe) private static let emptyCString: UnsafePointer<CChar> = UnsafePointer(strdup("")!)

    fileprivate static func dump(_ json: UnsafeMutablePointer<json_t>, pretty: Bool) -> String {
        let flags = Int(JSON_ENCODE_ANY) | (pretty ? 2 : Int(JSON_COMPACT))
        guard let text = json_dumps(json, flags) else { return "null" }
        defer { free(text) }
        return String(cString: text)
    }
}

extension JSONDocument {
    fileprivate static func retaining(_ json: UnsafeMutablePointer<json_t>) -> JSONDocument {
        JSONDocument(root: cj_incref(json)!)
    }
}
