import Synchronization

/// One holder per key at a time, first come first served; callers with other keys do not wait.
/// A key's entry lives only while someone holds it.
final class KeyedLock: Sendable {
    private let queues = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    func lock(_ key: String) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let free = queues.withLock { queues -> Bool in
                guard queues[key] != nil else {
                    queues[key] = []
                    return true
                }
                queues[key, default: []].append(continuation)
                return false
            }
            if free { continuation.resume() }
        }
    }

    func unlock(_ key: String) {
        let next = queues.withLock { queues -> CheckedContinuation<Void, Never>? in
            guard var waiting = queues[key], !waiting.isEmpty else {
                queues[key] = nil
                return nil
            }
            let first = waiting.removeFirst()
            queues[key] = waiting
            return first
        }
        next?.resume()
    }

    func withLock<T, E: Error>(_ key: String, _ body: () async throws(E) -> T) async throws(E) -> T {
        await lock(key)
        defer { unlock(key) }
        return try await body()
    }
}
