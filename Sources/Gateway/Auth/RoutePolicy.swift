import JOSE

/// A route's requirements on a verified identity: role in a set, assurance level, claim
/// values. The first unmet requirement is the reason (`forbidden`).
enum RoutePolicy {
    static func check(_ route: RouteConfig, _ identity: Identity) throws(AuthFailure) {
        if !route.roles.isEmpty {
            guard let role = identity.role, route.roles.contains(role) else {
                throw AuthFailure(.forbidden, "role \(identity.role.map { "\"\($0)\"" } ?? "(none)") may not use this route (allowed: \(route.roles.joined(separator: ", ")))")
            }
        }
        if let wanted = route.assuranceLevel {
            let aal = identity.token.claims.json["aal"]?.string ?? "aal1"
            if wanted == "aal2", aal != "aal2" {
                throw AuthFailure(.forbidden, "this route needs aal2 (multi-factor); the token has \(aal)")
            }
        }
        for condition in route.conditions {
            let node = identity.token.claims[path: condition.path]
            let ok: Bool
            switch condition.kind {
            case .equals:
                ok = node.map { n in condition.values.contains { n.stringEquals($0) || n.serialized() == $0 } } ?? false
            case .contains:
                ok = node?.array.map { items in items.contains { item in condition.values.contains { item.stringEquals($0) || item.serialized() == $0 } } } ?? false
            }
            if !ok {
                let verb = condition.kind == .equals ? "equal" : "contain"
                throw AuthFailure(.forbidden, "claim \"\(condition.path)\" does not \(verb) \(condition.values.count == 1 ? "\"\(condition.values[0])\"" : "one of \(condition.values)")")
            }
        }
    }
}
