import Foundation

/// A value behind a pthread mutex (`NSLock`), for the executors' shared state.
///
/// Not `Synchronization.Mutex`: on Linux that one waits with raw futex calls, which
/// ThreadSanitizer does not see, so it reports races between two holders of the lock.
///
/// - Note: Thread-safe: every access goes through `withLock`.
public final class LockedValue<Value>: @unchecked Sendable {  // `value` is guarded by `lock`
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    /// Runs `body` with the value, under the lock.
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
