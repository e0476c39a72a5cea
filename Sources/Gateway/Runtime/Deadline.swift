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
    let race = DeadlineRace()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let timer = Task {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            if Task.isCancelled { return }
            if race.settle() {
                race.cancelWork()
                continuation.resume(throwing: RuntimeTimeout(seconds: seconds))
            }
        }
        let work = Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            timer.cancel()  // no sleeper left behind when the work wins
            if race.settle() { continuation.resume(with: result) }
        }
        race.setWork(work)
    }
}

/// Who answered first, the work or the timer: the continuation is resumed exactly once.
private final class DeadlineRace: Sendable {
    private let state = Mutex<(settled: Bool, work: Task<Void, Never>?)>((false, nil))
    func settle() -> Bool { state.withLock { s in defer { s.settled = true }; return !s.settled } }
    func setWork(_ work: Task<Void, Never>) { state.withLock { $0.work = work } }
    func cancelWork() { state.withLock { $0.work }?.cancel() }
}
