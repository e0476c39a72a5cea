/// How many live sessions one user may hold, and what a new session does once they hold
/// that many: `evict` ends the user's least recently used sessions (oldest last activity:
/// sign-in or refresh) so the new one fits, as Supabase Auth does when a limit is set;
/// `refuse` refuses the new one (`RuntimeError.Code.sessionLimit`). With no maximum, as
/// Supabase Auth's default, a user may hold any number.
public struct SessionLimit: Sendable, Equatable, CustomStringConvertible {
    public enum Policy: String, Sendable, CaseIterable {
        case evict, refuse
    }

    /// At least 1 when set; nil means no limit.
    public let maximum: Int?
    public let policy: Policy

    /// `maximum` below 1 means no limit.
    public init(maximum: Int?, policy: Policy = .evict) {
        self.maximum = maximum.flatMap { $0 >= 1 ? $0 : nil }
        self.policy = policy
    }

    public static let unlimited = SessionLimit(maximum: nil)
    public static func evict(beyond maximum: Int) -> SessionLimit { SessionLimit(maximum: maximum, policy: .evict) }
    public static func refuse(beyond maximum: Int) -> SessionLimit { SessionLimit(maximum: maximum, policy: .refuse) }

    /// How many of `live` existing sessions a new one must end (0 when it fits), or nil when
    /// the new one is refused.
    public func toEnd(live: Int) -> Int? {
        guard let maximum, live >= maximum else { return 0 }
        return policy == .refuse ? nil : live - maximum + 1
    }

    /// The `revokedReason` of a session ended to make room for a new one.
    public static let revocationReason = "session_limit"

    public var description: String { maximum.map { "\($0) (\(policy.rawValue))" } ?? "unlimited" }
}
