#if canImport(Glibc)
import Glibc
#endif

/// A process-private lock that spins briefly before sleeping (glibc's adaptive mutex): the
/// scheduler, materializer and run log hold their locks for well under a microsecond, and on a
/// machine with few cores a waiter that sleeps at once pays a context switch (several
/// microseconds) each time two threads meet. ThreadSanitizer understands it (pthread calls).
///
/// - Note: Thread-safe. Not reentrant. The mutex lives in its own allocation, so it never moves.
package final class _AdaptiveLock: @unchecked Sendable {  // the mutex is only used through pthread calls
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        mutex = .allocate(capacity: 1)
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        let status = pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` holding the lock.
    @inline(__always)
    package func withLock<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    package func lock() { pthread_mutex_lock(mutex) }
    package func unlock() { pthread_mutex_unlock(mutex) }
}
