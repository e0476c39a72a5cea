import Foundation
import Logging
import NIOCore
import Synchronization

/// Passive health of upstream origins, from the connects requests make (no probe traffic).
///
/// An origin that refuses or times out a connect is ejected: routes with several upstreams
/// put it last in their order until its ejection ends, so requests that cannot be retried
/// (a POST) go to the others instead of failing half the time. The ejection lasts 5 s and
/// doubles with each further failure in a row, up to 60 s (Envoy's outlier detection grows
/// its ejection time the same way); a connect that succeeds clears the origin. When every
/// upstream of a route is ejected the route's usual order is used: a request still tries.
/// Routes with one upstream are not reordered, so their requests never read this.
///
/// Kept by the server, across reloads: the origins are the same machines.
final class UpstreamHealth: Sendable {
    struct Ejection: Sendable {
        var until: UInt64
        var failures: Int
    }
    private let ejections = Mutex<[String: Ejection]>([:])
    /// Origins with an ejection recorded: zero lets the request path skip the lock.
    private let recorded = Atomic<Int>(0)
    private let logger: Logger
    /// Told the failures in a row of an origin when they change (0 once it connects again).
    private let report: @Sendable (String, Int) -> Void
    static let firstEjection: UInt64 = 5_000_000_000
    static let longestEjection: UInt64 = 60_000_000_000

    init(logger: Logger, report: @escaping @Sendable (String, Int) -> Void = { _, _ in }) {
        self.logger = logger
        self.report = report
    }

    /// A connect to `origin` failed (refused, unreachable, timed out). Failures while it is
    /// ejected (connects already under way when it was) neither lengthen the ejection nor
    /// count: the next ejection doubles only if the origin fails again once back. Failures
    /// that say nothing about the upstream (this process out of descriptors or memory, the
    /// event loop shutting down) are not counted.
    func connectFailed(_ origin: String, error: any Error, now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        guard Self.isUpstreamsFault(error) else { return }
        let ejection: Ejection? = ejections.withLock { table in
            var entry = table[origin] ?? Ejection(until: 0, failures: 0)
            if now < entry.until { return nil }
            if table[origin] == nil { recorded.add(1, ordering: .relaxed) }
            // Long after the last ejection ended, a failure starts a new run.
            if now >= entry.until &+ Self.longestEjection { entry.failures = 0 }
            entry.failures += 1
            let length = min(Self.firstEjection << UInt64(min(entry.failures - 1, 8)), Self.longestEjection)
            entry.until = now &+ length
            table[origin] = entry
            return entry
        }
        guard let ejection else { return }
        report(origin, ejection.failures)
        logger.warning("upstream ejected", metadata: [
            "upstream": "\(origin)", "for_s": "\(Double(ejection.until &- now) / 1e9)", "failures_in_a_row": "\(ejection.failures)",
            "reason": "\(ErrorResponse.describe(error))",
        ])
    }

    static func isUpstreamsFault(_ error: any Error) -> Bool {
        if error is EventLoopError { return false }
        if let io = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(io.errnoCode) { return false }
        return true
    }

    /// A kept-alive connection to `origin` answered in full. Once its ejection is over, that
    /// ends its run of failures too (its entry goes, and requests stop reading the table);
    /// during the ejection it changes nothing: new connects may still fail.
    func served(_ origin: String, now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        guard recorded.load(ordering: .relaxed) > 0 else { return }
        let cleared: Bool = ejections.withLock { table in
            guard let entry = table[origin], now >= entry.until else { return false }
            table.removeValue(forKey: origin)
            recorded.subtract(1, ordering: .relaxed)
            return true
        }
        if cleared { report(origin, 0) }
    }

    /// Whether any origin has a failure recorded (a cheap test before `connected`).
    var anyRecorded: Bool { recorded.load(ordering: .relaxed) > 0 }

    /// After a reload: origins no route names any more are forgotten.
    func keep(origins: Set<String>) {
        let dropped: [String] = ejections.withLock { table in
            let gone = table.keys.filter { !origins.contains($0) }
            for origin in gone { table.removeValue(forKey: origin) }
            recorded.subtract(gone.count, ordering: .relaxed)
            return gone
        }
        for origin in dropped { report(origin, 0) }
    }

    /// A connect to `origin` succeeded.
    func connected(_ origin: String) {
        guard recorded.load(ordering: .relaxed) > 0 else { return }
        let cleared: Ejection? = ejections.withLock { table in
            guard let entry = table.removeValue(forKey: origin) else { return nil }
            recorded.subtract(1, ordering: .relaxed)
            return entry
        }
        if let cleared {
            report(origin, 0)
            logger.info("upstream back", metadata: ["upstream": "\(origin)", "after_failures": "\(cleared.failures)"])
        }
    }

    /// Whether `origin` is ejected now.
    func isEjected(_ origin: String, now: UInt64 = DispatchTime.now().uptimeNanoseconds) -> Bool {
        guard recorded.load(ordering: .relaxed) > 0 else { return false }
        return ejections.withLock { $0[origin].map { now < $0.until } ?? false }
    }

    /// The order for one request among `upstreams` (a route's, in config order) for round-robin
    /// position `turn`: the upstreams not ejected take turns among themselves (each gets an
    /// equal share while another is out), then the ejected ones, as a last resort. Nil when
    /// nothing is ejected: the caller's plain rotation stands.
    func order(_ upstreams: [Upstream], turn: UInt64, now: UInt64 = DispatchTime.now().uptimeNanoseconds) -> [Upstream]? {
        guard recorded.load(ordering: .relaxed) > 0 else { return nil }
        let ejected: [Bool] = ejections.withLock { table in upstreams.map { table[$0.origin].map { now < $0.until } ?? false } }
        guard ejected.contains(true), ejected.contains(false) else { return nil }
        let healthy = upstreams.indices.filter { !ejected[$0] }.map { upstreams[$0] }
        let out = upstreams.indices.filter { ejected[$0] }.map { upstreams[$0] }
        let start = Int(turn % UInt64(healthy.count))
        return Array(healthy[start...] + healthy[..<start]) + out
    }

    /// The origins ejected now, for /readyz-style reporting and tests.
    func ejected(now: UInt64 = DispatchTime.now().uptimeNanoseconds) -> [String] {
        ejections.withLock { $0.filter { now < $0.value.until }.keys.sorted() }
    }
}
