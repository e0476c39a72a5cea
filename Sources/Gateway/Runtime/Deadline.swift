import JOSE
import Synchronization

/// The runtime did not answer in time.
struct RuntimeTimeout: Error, CustomStringConvertible {
    let seconds: Double
    var description: String { "the runtime did not answer within \(Duration.describe(seconds))" }
}

/// Runs `operation` and returns its result, or throws `RuntimeTimeout` after `seconds`
/// without waiting for it: a store that hangs (a database gone, a pool waiting for a
/// connection) cannot hold a request longer than that. The operation is cancelled and left
/// to end on its own.
func withDeadline<T: Sendable>(seconds: Double, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let settled = Mutex(false)
    let take: @Sendable () -> Bool = { settled.withLock { done in defer { done = true }; return !done } }
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let work = Task {
            do {
                let value = try await operation()
                if take() { continuation.resume(returning: value) }
            } catch {
                if take() { continuation.resume(throwing: error) }
            }
        }
        Task {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            if take() {
                work.cancel()
                continuation.resume(throwing: RuntimeTimeout(seconds: seconds))
            }
        }
    }
}
