// Every libc call of the ObjectStore module goes through this file.
//
// Each wrapper reads `errno` immediately after the call (before ARC or another call can clobber
// it), retries `EINTR` through `_retryingOnInterrupt`, and returns `Result<_, Errno>` so callers
// turn failures into `ObjectStoreError`s that name the syscall. No other file imports Glibc.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CStoreLock
import SystemPackage

/// Namespace for the syscall wrappers. Internal: the rest of the module calls these, nothing else.
enum _Syscall {
    static func _retryingOnInterrupt<T: FixedWidthInteger>(_ body: () -> T) -> Result<T, Errno> {
        retryingOnInterrupt(body)
    }
}

/// Runs `body` (a libc call) until it does not fail with `EINTR`, and maps `-1` to the `Errno`
/// read right after the call. The one retry loop of the package: Materialize's file syscalls use
/// it too (`package` access).
@inline(never)
package func retryingOnInterrupt<T: FixedWidthInteger>(_ body: () -> T) -> Result<T, Errno> {
    while true {
        let result = body()
        if result != -1 { return .success(result) }
        let code = errno
        if code == EINTR { continue }
        return .failure(Errno(rawValue: code))
    }
}

extension _Syscall {

    // MARK: Shared-memory objects

    /// Opens (or creates, with `create`) the POSIX shared-memory object `name` ("/dataflow.x").
    /// The corresponding C call is `shm_open`.
    static func shmOpen(_ name: String, create: Bool, exclusive: Bool, mode: UInt32) -> Result<Int32, Errno> {
        var flags = O_RDWR | O_CLOEXEC
        if create { flags |= O_CREAT }
        if exclusive { flags |= O_EXCL }
        return _retryingOnInterrupt { shm_open(name, flags, mode_t(mode)) }
    }

    /// Removes the name of a shared-memory object; mappings stay valid. The C call is `shm_unlink`.
    static func shmUnlink(_ name: String) -> Result<Void, Errno> {
        _retryingOnInterrupt { shm_unlink(name) }.map { _ in () }
    }

    /// Sets the size of the file behind `fd`. The corresponding C call is `ftruncate`.
    static func truncate(_ fd: Int32, toByteCount byteCount: Int) -> Result<Void, Errno> {
        _retryingOnInterrupt { ftruncate(fd, off_t(byteCount)) }.map { _ in () }
    }

    /// Reserves the backing pages of `fd` so that later page faults cannot fail with `SIGBUS`.
    /// The corresponding C call is `posix_fallocate`, which returns the error instead of setting errno.
    static func reserve(_ fd: Int32, byteCount: Int) -> Result<Void, Errno> {
        while true {
            let code = posix_fallocate(fd, 0, off_t(byteCount))
            if code == 0 { return .success(()) }
            if code == EINTR { continue }
            return .failure(Errno(rawValue: code))
        }
    }

    /// The owner, mode and size of the file behind `fd`. The corresponding C call is `fstat`.
    static func fileStatus(_ fd: Int32) -> Result<(ownerUID: UInt32, mode: UInt32, byteCount: Int), Errno> {
        var status = stat()
        return _retryingOnInterrupt { fstat(fd, &status) }.map { _ in
            (UInt32(status.st_uid), UInt32(status.st_mode), Int(status.st_size))
        }
    }

    /// Closes `fd`. `EINTR` is not retried (Linux closes the descriptor anyway). The C call is `close`.
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    // MARK: Mappings

    /// Maps `byteCount` bytes of `fd` shared, readable and writable. The corresponding C call is `mmap`.
    static func mapShared(_ fd: Int32, byteCount: Int) -> Result<UnsafeMutableRawPointer, Errno> {
        let address = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        if address == MAP_FAILED || address == nil { return .failure(Errno(rawValue: errno)) }
        return .success(address!)
    }

    /// Unmaps a mapping made by `mapShared`. The corresponding C call is `munmap`.
    static func unmap(_ address: UnsafeMutableRawPointer, byteCount: Int) {
        _ = munmap(address, byteCount)
    }

    /// Faults in every page of a shared mapping as writable without changing its bytes.
    /// Returns `false` where the kernel lacks `MADV_POPULATE_WRITE` (before Linux 5.14).
    /// The corresponding C call is `madvise(MADV_POPULATE_WRITE)`.
    static func populateWritable(_ address: UnsafeMutableRawPointer, byteCount: Int) -> Bool {
        let madvPopulateWrite: Int32 = 23  // <linux/mman.h>; not exported by Glibc's module map
        return _retryingOnInterrupt { madvise(address, byteCount, madvPopulateWrite) }.map { _ in true }
            .get(or: false)
    }

    // MARK: Processes

    /// This process's id. The corresponding C call is `getpid`.
    static func processID() -> Int32 { getpid() }

    /// The effective user id of this process. The corresponding C call is `geteuid`.
    static func effectiveUserID() -> UInt32 { UInt32(geteuid()) }

    /// What `/proc/PID/stat` says about a process.
    enum ProcessStatus: Equatable {
        /// Running (or stopped), started at this many clock ticks after boot.
        case running(startTime: UInt64)
        /// No such process, or a zombie (exited, not yet reaped).
        case dead
        /// `/proc` could not be read (out of descriptors, no /proc, ...): nothing is known, and
        /// callers must assume the process is alive.
        case unknown
    }

    /// The status of process `pid` from field 3 (state) and field 22 (start time) of
    /// `/proc/PID/stat`. The pair (pid, start time) names a process uniquely even when pids are
    /// reused. Only `ENOENT`/`ESRCH` or a zombie state mean dead; any other failure is `.unknown`.
    static func processStatus(_ pid: Int32) -> ProcessStatus {
        let fd = _retryingOnInterrupt { open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC) }
        let descriptor: Int32
        switch fd {
        case .success(let value): descriptor = value
        case .failure(.noSuchFileOrDirectory), .failure(.noSuchProcess): return .dead
        case .failure: return .unknown
        }
        defer { _ = Glibc.close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBytes { raw in
            _retryingOnInterrupt { read(descriptor, raw.baseAddress, raw.count) }
        }
        switch count {
        case .success(let byteCount) where byteCount > 0:
            // "pid (comm) S ppid ..." — comm may contain spaces and ')', so parse after the last ')'.
            let text = buffer[0..<byteCount]
            guard let close = text.lastIndex(of: UInt8(ascii: ")")) else { return .unknown }
            let fields = text[(close + 1)...].split(separator: UInt8(ascii: " "))
            // fields[0] is the state (field 3); the start time is field 22, i.e. fields[19].
            guard fields.count > 19, let state = fields[0].first else { return .unknown }
            if state == UInt8(ascii: "Z") || state == UInt8(ascii: "X") { return .dead }
            guard let start = UInt64(String(decoding: fields[19], as: UTF8.self)) else { return .unknown }
            return .running(startTime: start)
        case .success: return .dead  // the process went away while we read
        case .failure(.noSuchProcess): return .dead
        case .failure: return .unknown
        }
    }

    // MARK: Robust, process-shared mutex

    /// The outcome of locking a robust mutex.
    enum LockOutcome {
        /// The lock is held; the protected state is consistent.
        case acquired
        /// The lock is held, but its previous owner died while holding it: the protected state
        /// must be repaired and `markConsistent` called before unlocking.
        case acquiredFromDeadOwner
    }

    /// Bytes reserved in the segment header for a `pthread_mutex_t` (40 on x86-64 glibc).
    static let mutexReservedByteCount = 64

    /// Initialises a process-shared, robust mutex in place. Called once, by the creator, before
    /// any other process can see the segment. The corresponding C calls are
    /// `pthread_mutexattr_setpshared`, `pthread_mutexattr_setrobust` and `pthread_mutex_init`.
    static func initializeRobustMutex(at address: UnsafeMutableRawPointer) -> Result<Void, Errno> {
        precondition(MemoryLayout<pthread_mutex_t>.size <= mutexReservedByteCount)
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        defer { pthread_mutexattr_destroy(&attributes) }
        var code = pthread_mutexattr_setpshared(&attributes, Int32(PTHREAD_PROCESS_SHARED))
        if code == 0 { code = pthread_mutexattr_setrobust(&attributes, Int32(PTHREAD_MUTEX_ROBUST)) }
        // Safe: the creator owns these bytes exclusively until the header is published.
        if code == 0 { code = pthread_mutex_init(address.bindMemory(to: pthread_mutex_t.self, capacity: 1), &attributes) }
        return code == 0 ? .success(()) : .failure(Errno(rawValue: code))
    }

    /// Spin-wait rounds before a locker sleeps: with the CPU's pause, a few microseconds, several
    /// times the longest ordinary critical section.
    static let lockSpinRounds: Int32 = 200

    /// Locks the mutex at `address`. `EOWNERDEAD` becomes `.acquiredFromDeadOwner`; any other
    /// failure (e.g. `ENOTRECOVERABLE`) is returned. The corresponding C call is `pthread_mutex_lock`.
    static func lock(_ address: UnsafeMutableRawPointer) -> Result<LockOutcome, Errno> {
        // Safe: the header's mutex bytes were bound to pthread_mutex_t by the creator.
        let mutex = address.assumingMemoryBound(to: pthread_mutex_t.self)
        // Spin first (see CStoreLock): the store's critical sections are short, and sleeping on
        // the futex at once costs a context switch each time two threads meet.
        let code = dataflow_store_mutex_lock(mutex, Self.lockSpinRounds)
        switch code {
        case 0: return .success(.acquired)
        case EOWNERDEAD: return .success(.acquiredFromDeadOwner)
        default: return .failure(Errno(rawValue: code))
        }
    }

    /// Marks a mutex acquired from a dead owner as consistent again. The C call is `pthread_mutex_consistent`.
    static func markConsistent(_ address: UnsafeMutableRawPointer) {
        _ = pthread_mutex_consistent(address.assumingMemoryBound(to: pthread_mutex_t.self))
    }

    /// Unlocks the mutex at `address`. The corresponding C call is `pthread_mutex_unlock`.
    static func unlock(_ address: UnsafeMutableRawPointer) {
        let code = pthread_mutex_unlock(address.assumingMemoryBound(to: pthread_mutex_t.self))
        precondition(code == 0, "pthread_mutex_unlock failed with \(code): unlocking a lock this thread does not hold")
    }

    // MARK: Time

    /// Monotonic time in nanoseconds. The corresponding C call is `clock_gettime(CLOCK_MONOTONIC)`.
    static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// Sleeps for `nanoseconds`. The corresponding C call is `nanosleep`.
    static func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
    }
}

extension Result {
    /// The success value, or `fallback` on failure.
    func get(or fallback: Success) -> Success {
        if case .success(let value) = self { return value }
        return fallback
    }
}
