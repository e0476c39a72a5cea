/// A request to create a runtime session, before the runtime has checked it.
public struct SessionIntent: Sendable {
    public var id: String
    public var tenantID: String
    public var userID: String
    public var contract: String
    public var metadata: String
    public var ttl: Double

    public init(id: String, tenantID: String, userID: String, contract: String, metadata: String = "{}", ttl: Double) {
        self.id = id
        self.tenantID = tenantID
        self.userID = userID
        self.contract = contract
        self.metadata = metadata
        self.ttl = ttl
    }
}

/// The "traffic cop": every session intent is checked against the authenticated identity and
/// the runtime's rules before the state surface stores it. The store enforces the rules that
/// need its data (no duplicate live id, per-user limit) inside the same transaction.
public struct IntentValidator: Sendable {
    public var contracts: Set<String>
    /// Applied by the store when it creates the session.
    public var sessionLimit: SessionLimit
    public var maximumTTL: Double

    public init(contracts: Set<String> = ["default"], sessionLimit: SessionLimit = .unlimited, maximumTTL: Double = 30 * 86400) {
        self.contracts = contracts
        self.sessionLimit = sessionLimit
        self.maximumTTL = maximumTTL
    }

    /// Checks an intent made on behalf of `userID` in `tenantID` (from a verified token).
    public func validate(_ intent: SessionIntent, userID: String, tenantID: String) throws(RuntimeError) {
        guard intent.userID == userID else { throw RuntimeError(.invalidIntent, "the session's user must be the authenticated user") }
        guard intent.tenantID == tenantID else { throw RuntimeError(.invalidIntent, "the session's tenant must be the authenticated tenant") }
        guard IDs.isUUID(intent.id), intent.id == intent.id.lowercased() else {
            throw RuntimeError(.invalidIntent, "session id must be a lower-case UUID, got \"\(intent.id.prefix(64))\"")
        }
        guard contracts.contains(intent.contract) else {
            throw RuntimeError(.invalidIntent, "unknown execution contract \"\(intent.contract.prefix(64))\" (known: \(contracts.sorted().joined(separator: ", ")))")
        }
        guard intent.ttl > 0, intent.ttl <= maximumTTL else { throw RuntimeError(.invalidIntent, "session lifetime must be within (0, \(Int(maximumTTL))] seconds") }
        guard intent.metadata.utf8.count <= 16 * 1024 else { throw RuntimeError(.invalidIntent, "session metadata is larger than 16 KiB") }
    }
}
