import Synchronization

/// A poll loop's pause between rounds that something can cut short: an executor that submits
/// and polls (SLURM, Ray) sleeps between status rounds, and a new submission or a cancellation
/// wakes it at once. A wake with nobody sleeping makes the next sleep return at once.
///
///     while running {
///         await sleeper.sleep(seconds: interval)   // elsewhere: sleeper.wake()
///         ...
///     }
///
/// - Note: Thread-safe. Suspends; blocks no thread.
public final class PollSleeper: Sendable {
    private struct State {
        var waiter: (token: Int, continuation: CheckedContinuation<Void, Never>)?
        var wakePending = false
        var nextToken = 0
    }

    private let state = LockedValue(State())

    public init() {}

    /// Sleeps `seconds`, or less if `wake()` is called (or was, since the last sleep).
    public func sleep(seconds: Double) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let token = state.withLock { state -> Int? in
                if state.wakePending {
                    state.wakePending = false
                    return nil
                }
                state.nextToken += 1
                state.waiter = (state.nextToken, continuation)
                return state.nextToken
            }
            guard let token else {
                continuation.resume()
                return
            }
            Task {
                try? await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9))
                self.resume(token: token)
            }
        }
    }

    /// Ends the current sleep now (or the next one at once).
    public func wake() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.wakePending = true
                return nil
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }

    private func resume(token: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter, waiter.token == token else { return nil }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }
}
