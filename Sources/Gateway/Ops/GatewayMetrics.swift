import Foundation
import JOSE
import Metrics
import Prometheus
import Synchronization

/// The gateway's metrics, through swift-metrics into a Prometheus registry rendered at
/// `/metrics`: requests by route and status, verification outcomes by reason, upstream
/// latency, token cache hit ratio, open connections.
///
/// Metric handles are made once per label set and kept, so a request costs a dictionary
/// lookup, not a factory call.
public final class GatewayMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let requests = Mutex<[String: [Int: CoreMetrics.Counter]]>([:])
    private let verifications = Mutex<[String: CoreMetrics.Counter]>([:])
    private let latency = Mutex<[String: CoreMetrics.Timer]>([:])
    private let connectErrors = Mutex<[String: CoreMetrics.Counter]>([:])
    private let connections = Atomic<Int>(0)
    private let connectionsGauge: Prometheus.Gauge
    private let cacheHits: Prometheus.Gauge, cacheMisses: Prometheus.Gauge, cacheEntries: Prometheus.Gauge, cacheRatio: Prometheus.Gauge

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                                                   .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
                                                   .seconds(1), .seconds(2.5), .seconds(5), .seconds(10)]
        self.factory = factory
        connectionsGauge = Self.gauge(registry, "gateway_open_connections", help: "Client connections open now")
        cacheHits = Self.gauge(registry, "gateway_token_cache_hits", help: "Verified-token cache hits since start")
        cacheMisses = Self.gauge(registry, "gateway_token_cache_misses", help: "Verified-token cache misses since start")
        cacheEntries = Self.gauge(registry, "gateway_token_cache_entries", help: "Verified tokens cached now")
        cacheRatio = Self.gauge(registry, "gateway_token_cache_hit_ratio", help: "hits / (hits + misses) since start")
    }

    /// A metric named as given: the name whole in `metricName`, no unit suffix added.
    private static func name(_ name: String, help: String = "") -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    private static func gauge(_ registry: PrometheusCollectorRegistry, _ name: String, help: String) -> Prometheus.Gauge {
        registry.makeGauge(descriptor: Self.name(name, help: help))
    }

    func request(route: String, status: Int) {
        requestCounter(route: route, status: status).increment()
    }

    func requestCounter(route: String, status: Int) -> CoreMetrics.Counter {
        requests.withLock { counters in
            if let c = counters[route]?[status] { return c }
            let c = CoreMetrics.Counter(label: "gateway_requests_total", dimensions: [("route", route), ("status", String(status))], factory: factory)
            counters[route, default: [:]][status] = c
            return c
        }
    }

    /// `outcome` is "valid" or a failure reason.
    func verification(_ outcome: String) {
        verificationCounter(outcome).increment()
    }

    func verificationCounter(_ outcome: String) -> CoreMetrics.Counter {
        verifications.withLock { counters in
            if let c = counters[outcome] { return c }
            let c = CoreMetrics.Counter(label: "gateway_token_verifications_total", dimensions: [("outcome", outcome)], factory: factory)
            counters[outcome] = c
            return c
        }
    }

    func upstreamLatency(route: String, nanoseconds: UInt64) {
        latencyTimer(route: route).recordNanoseconds(Int64(nanoseconds))
    }

    func latencyTimer(route: String) -> CoreMetrics.Timer {
        latency.withLock { timers in
            if let t = timers[route] { return t }
            let t = CoreMetrics.Timer(label: "gateway_upstream_latency_seconds", dimensions: [("route", route)], factory: factory)
            timers[route] = t
            return t
        }
    }

    /// `gateway_upstream_connect_errors_total{upstream}`: every failed connect (for rate()).
    func upstreamConnectError(_ origin: String) {
        connectErrors.withLock { counters in
            if let c = counters[origin] { return c }
            let c = CoreMetrics.Counter(label: "gateway_upstream_connect_errors_total", dimensions: [("upstream", origin)], factory: factory)
            counters[origin] = c
            return c
        }.increment()
    }

    /// `gateway_upstream_connect_failures{upstream}`: failed connects in a row (0 once one succeeds).
    func upstreamConnectFailures(_ origin: String, _ count: Int) {
        registry.makeGauge(descriptor: Self.name("gateway_upstream_connect_failures"), labels: [("upstream", origin)]).set(Double(count))
    }

    func connectionOpened() { connectionsGauge.set(Double(connections.add(1, ordering: .relaxed).newValue)) }
    func connectionClosed() { connectionsGauge.set(Double(connections.subtract(1, ordering: .relaxed).newValue)) }

    /// Prometheus text exposition, with the cache gauges read now.
    func render(cache: VerifiedTokenCache?) -> [UInt8] {
        if let stats = cache?.statistics {
            cacheHits.set(Double(stats.hits))
            cacheMisses.set(Double(stats.misses))
            cacheEntries.set(Double(stats.count))
            let total = stats.hits + stats.misses
            cacheRatio.set(total == 0 ? 0 : Double(stats.hits) / Double(total))
        }
        return registry.emitToBuffer()
    }
}
