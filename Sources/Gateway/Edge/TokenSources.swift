import Foundation

/// Where a request's token is: the configured sources, looked at in order.
enum TokenSources {
    enum Found {
        case none
        /// The token as it is in the request's bytes.
        case found(Range<Int>)
        /// The token percent-decoded from a query parameter.
        case decoded(String)
        /// A source gives a credential twice (which one would the upstream read?): RFC 6750
        /// section 3.1 calls it invalid_request.
        case duplicate(String)
    }

    /// The first token in the configured sources; every source is looked at for duplicates.
    static func find(_ p: UnsafeRawBufferPointer, sources: [TokenSource], facts: Admission.HeadFacts, query: Range<Int>?) -> Found {
        var found: Found = .none
        func take(_ token: Found) { if case .none = found { found = token } }
        for source in sources {
            switch source {
            case .authorization:
                if facts.authorizationTwice { return .duplicate("more than one Authorization header") }
                if let value = facts.authorization, let token = HTTPScan.bearerToken(p, value) { take(.found(token)) }
            case .apikey:
                if facts.apikeyTwice { return .duplicate("more than one apikey header") }
                if let value = facts.apikey, !value.isEmpty { take(.found(value)) }
            case .cookie(let name):
                var first: Range<Int>? = nil, count = 0
                for value in facts.cookies {
                    var from = value.lowerBound
                    while let token = HTTPScan.cookie(p, from..<value.upperBound, named: name) {
                        if first == nil { first = token }
                        count += 1
                        from = token.upperBound
                    }
                }
                if count > 1 { return .duplicate("the \(name) cookie is given more than once") }
                if let first { take(.found(first)) }
            case .query(let name):
                guard let query else { continue }
                var value: Substring? = nil, count = 0
                for pair in HTTPScan.string(p, query).split(separator: "&") where Authenticator.parameterName(pair) == name {
                    let given = Authenticator.parameterValue(pair)
                    guard !given.isEmpty else { continue }
                    if value == nil { value = given }
                    count += 1
                }
                if count > 1 { return .duplicate("the \(name) query parameter is given more than once") }
                if let value { take(.decoded(String(value.removingPercentEncodingIfNeeded()))) }
            }
        }
        return found
    }
}

/// What is cut from a request whose route does not forward its token: the token cookies (the
/// rest of the Cookie fields kept, in one field) and the token query parameters.
struct Cut {
    /// The Cookie field to write instead of the client's (nil: none, or the client's as it came).
    var cookieLine: [UInt8]? = nil
    /// Token cookies were cut and none is left: the client's Cookie fields go.
    var removedCookies = false
    /// The query to forward instead of the client's (`.some(nil)`: none is left).
    var query: Substring?? = nil

    init() {}

    init(_ p: UnsafeRawBufferPointer, sources: [TokenSource], cookies: [Range<Int>], query: Range<Int>?) {
        var cookieNames: [String] = [], queryNames: [String] = []
        for source in sources {
            switch source {
            case .cookie(let name): cookieNames.append(name)
            case .query(let name): queryNames.append(name)
            case .authorization, .apikey: break
            }
        }
        if !cookieNames.isEmpty, !cookies.isEmpty {
            // As bytes (per request): each `name=value` pair without the spaces and tabs around
            // it; the token cookies go, the rest are kept in order.
            let names = cookieNames.map { Array($0.utf8) }
            var kept: [Range<Int>] = [], removed = false
            for value in cookies {
                var i = value.lowerBound
                while i < value.upperBound {
                    var j = i
                    while j < value.upperBound, p[j] != UInt8(ascii: ";") { j += 1 }
                    var start = i, end = j
                    while start < end, p[start] == HTTPScan.sp || p[start] == HTTPScan.tab { start += 1 }
                    while end > start, p[end - 1] == HTTPScan.sp || p[end - 1] == HTTPScan.tab { end -= 1 }
                    if start < end {
                        let isToken = names.contains { name in
                            end - start > name.count && p[start + name.count] == UInt8(ascii: "=") && name.withUnsafeBytes { memcmp(p.baseAddress! + start, $0.baseAddress!, name.count) == 0 }
                        }
                        if isToken { removed = true } else { kept.append(start..<end) }
                    }
                    i = j + 1
                }
            }
            if removed {
                if kept.isEmpty {
                    removedCookies = true
                } else {
                    var line: [UInt8] = []
                    line.reserveCapacity(kept.reduce(0) { $0 + $1.count + 2 })
                    for (k, range) in kept.enumerated() {
                        if k > 0 { line.append(contentsOf: "; ".utf8) }
                        line.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[range]))
                    }
                    cookieLine = line
                }
            }
        }
        if !queryNames.isEmpty, let query {
            let pairs = HTTPScan.string(p, query).split(separator: "&")
            let kept = pairs.filter { !queryNames.contains(String(Authenticator.parameterName($0))) }
            if kept.count != pairs.count { self.query = .some(kept.isEmpty ? nil : Substring(kept.joined(separator: "&"))) }
        }
    }
}
