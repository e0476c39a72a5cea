import AsyncHTTPClient
import Foundation
import JOSE
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Keys of other Supabase projects, trusted through their JWKS URLs (`[auth] jwks_urls`):
/// fetched with AsyncHTTPClient at start and every `refreshInterval`, and again when a token
/// names a kid nobody knows, at most once a minute per URL. Fetched keys join the key ring
/// next to the local ones; a fetch that fails or returns nothing usable keeps the last good
/// keys.
final class RemoteJWKS: Sendable {
    let urls: [String]
    let keys: KeyStore
    let client: HTTPClient
    let logger: Logger
    let refreshInterval: Double
    let minimumInterval: Double
    /// When an unknown kid last caused a refetch, per URL (scheduled fetches do not count).
    private let lastKidRefetch = Mutex<[String: Double]>([:])

    init(urls: [String], keys: KeyStore, eventLoopGroup: any EventLoopGroup, logger: Logger, refreshInterval: Double = 600, minimumInterval: Double = 60) {
        self.urls = urls
        self.keys = keys
        self.logger = logger
        self.refreshInterval = refreshInterval
        self.minimumInterval = minimumInterval
        var configuration = HTTPClient.Configuration()
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: .seconds(5), read: .seconds(10))
        client = HTTPClient(eventLoopGroupProvider: .shared(eventLoopGroup), configuration: configuration)
    }

    /// Fetches every URL now.
    func refreshAll() async {
        for url in urls { await refresh(url) }
    }

    /// Periodic refresh until cancelled.
    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: UInt64(refreshInterval * 1e9))
            await refreshAll()
        }
    }

    /// A token named an unknown kid: refetch the URLs not tried within the last minute.
    func unknownKid() {
        let now = Date().timeIntervalSince1970
        let due = lastKidRefetch.withLock { attempts -> [String] in
            let due = urls.filter { now - (attempts[$0] ?? 0) >= minimumInterval }
            for url in due { attempts[url] = now }
            return due
        }
        guard !due.isEmpty else { return }
        Task { for url in due { await self.refresh(url) } }
    }

    private func refresh(_ url: String) async {
        do {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "accept", value: "application/json")
            let response = try await client.execute(request, timeout: .seconds(10))
            guard response.status == .ok else { throw AuthFailure(.keyConfig, "\(url): HTTP \(response.status.code)") }
            let body = try await response.body.collect(upTo: 1 << 20)
            let fetched = try KeyRing.jwks(Array(buffer: body), source: url).filter { !$0.isPrivate && !$0.isSecret }
            guard !fetched.isEmpty else { throw AuthFailure(.keyConfig, "\(url): no usable public keys") }
            keys.setRemoteKeys(fetched, from: url)
            logger.info("jwks fetched", metadata: ["url": "\(url)", "keys": "\(fetched.count)", "kids": "\(fetched.compactMap(\.kid))"])
        } catch {
            // A key problem's lines name the URL (and the key) already; other errors (HTTP client) as they are.
            let text = (error as? AuthFailure)?.message ?? "\(error)"
            logger.warning("jwks fetch failed; keeping the last good keys", metadata: ["url": "\(url)", "error": "\(text)"])
        }
    }

    func shutdown() async { try? await client.shutdown() }
}
