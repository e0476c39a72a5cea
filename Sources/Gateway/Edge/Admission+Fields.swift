import Foundation

/// Reading the head's fields: what each one is to the edge.
extension Admission {
    /// `/healthz`, `/readyz` or `/metrics`, if the path is one.
    static func builtInPath(_ p: UnsafeRawBufferPointer, _ path: Range<Int>) -> StaticString? {
        if HTTPScan.equals(p, path, "/healthz") { return "/healthz" }
        if HTTPScan.equals(p, path, "/readyz") { return "/readyz" }
        if HTTPScan.equals(p, path, "/metrics") { return "/metrics" }
        return nil
    }

    /// Notes each field the edge reads or drops. Returns why the full reader must read the head
    /// instead (a field given twice that may be given once, a framing or hop-by-hop field it
    /// rewrites), nil when the byte reading stands.
    static func readFields(_ p: UnsafeRawBufferPointer, _ fields: [HTTPScan.Field], state: GatewayState, into facts: inout HeadFacts) -> StaticString? {
        var sawExpect = false
        for (index, field) in fields.enumerated() {
            let name = field.name
            switch name.count {
            case 4 where HTTPScan.equalsLowercase(p, name, "host"):
                if facts.host == nil { facts.host = field.value } else { facts.hostTwice = true }
            case 13 where HTTPScan.equalsLowercase(p, name, "authorization"):
                if facts.authorization == nil { facts.authorization = field.value } else { facts.authorizationTwice = true }
            case 6 where HTTPScan.equalsLowercase(p, name, "apikey"):
                if facts.apikey == nil { facts.apikey = field.value } else { facts.apikeyTwice = true }
            case 6 where HTTPScan.equalsLowercase(p, name, "cookie"):
                facts.cookies.append(field.value)
                facts.cookieFields.append(index)
            case 6 where HTTPScan.equalsLowercase(p, name, "origin"):
                facts.origins.append(field.value)
            case 29 where HTTPScan.equalsLowercase(p, name, "access-control-request-method"):
                if facts.requestMethod == nil { facts.requestMethod = field.value }
            case 30 where HTTPScan.equalsLowercase(p, name, "access-control-request-headers"):
                facts.requestHeaders.append(field.value)
            case 6 where HTTPScan.equalsLowercase(p, name, "expect"):
                // The first Expect decides: 100-continue is answered once the request is
                // admitted; no other expectation is met, and none goes upstream.
                if !sawExpect { facts.expectContinue = HTTPScan.equalsLowercase(p, field.value, "100-continue") }
                sawExpect = true
                facts.dropped.insert(index)
            case 14 where HTTPScan.equalsLowercase(p, name, "content-length"):
                guard facts.contentLength == nil, let length = HTTPScan.decimal(p, field.value) else { return "Content-Length" }
                facts.contentLength = length
            case 17 where HTTPScan.equalsLowercase(p, name, "transfer-encoding"):
                // Several fields make one list; only chunked, once and last, is relayed.
                var codings = 0
                HTTPScan.listElements(p, field.value) { coding in
                    codings += 1
                    if !HTTPScan.equalsLowercase(p, coding, "chunked") {
                        facts.codingProblem = facts.codingProblem ?? "transfer coding \"\(HTTPScan.string(p, coding))\" is not supported (only chunked)"
                    } else if facts.chunked {
                        facts.codingProblem = facts.codingProblem ?? "chunked is applied more than once"
                    } else {
                        facts.chunked = true
                    }
                }
                if codings == 0 { facts.codingProblem = facts.codingProblem ?? "empty Transfer-Encoding" }
            case 10 where HTTPScan.equalsLowercase(p, name, "connection"):
                HTTPScan.listElements(p, field.value) { token in
                    if HTTPScan.equalsLowercase(p, token, "close") {
                        facts.keepAlive = false
                    } else if HTTPScan.equalsLowercase(p, token, "keep-alive") {
                        facts.keepAliveAsked = true
                    } else {
                        // A field named here is hop-by-hop (Host and the framing are not the
                        // sender's to drop, as HAProxy keeps them too).
                        let listed = String(decoding: UnsafeRawBufferPointer(rebasing: p[token]).map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
                        if !HopByHop.notNominable.contains(listed) { facts.connectionListed.append(listed) }
                    }
                }
                facts.dropped.insert(index)
            case 12 where HTTPScan.equalsLowercase(p, name, "x-request-id"):
                // The first one, as the full reader reads it.
                if facts.requestID == nil { facts.requestID = field.value }
                facts.dropped.insert(index)
            case 15 where HTTPScan.equalsLowercase(p, name, "x-forwarded-for"):
                if facts.forwardedFor == nil { facts.forwardedFor = field.value } else { facts.moreForwardedFor.append(field.value) }
                facts.dropped.insert(index)
            default:
                // The forwarding headers the gateway writes, also spelled with underscores
                // (CGI-style backends read X_Forwarded_For as X-Forwarded-For).
                if HTTPScan.isAny(p, name, of: HopByHop.nameBytes) || HTTPScan.isAny(p, name, of: HopByHop.writtenByGatewayBytes, underscoreAsDash: true) {
                    facts.dropped.insert(index)
                } else if name.count >= 13, name.count <= 22, HTTPScan.isAny(p, name, of: HopByHop.methodOverrideBytes, underscoreAsDash: true) {
                    facts.overrides.append(index)
                }
            }
            // The identity namespace, in any case and with `_` for `-`.
            if state.mayBeOwnedHeader(length: name.count), state.ownedHeaders.contains(HTTPScan.canonicalName(p, name)) { facts.dropped.insert(index) }
        }
        if !facts.connectionListed.isEmpty {
            for (index, field) in fields.enumerated() where facts.connectionListed.contains(String(decoding: UnsafeRawBufferPointer(rebasing: p[field.name]).map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)) {
                facts.dropped.insert(index)
            }
        }
        return nil
    }
}
