// Hooks for crash tests: ways to be killed at the worst moments. `package` access: visible to
// this package's test helpers only, never to users of the library.

extension SharedObjectStore {
    /// Takes the store's lock and never gives it back: the caller is about to be killed.
    /// With `partialAllocationBytes`, first allocates a heap block that no table entry owns, as a
    /// process killed in the middle of `create` would leave it. Never returns.
    package func _testingHoldLockForever(partialAllocationBytes: Int?) -> Never {
        _ = try? withLock { view, _ in
            if let bytes = partialAllocationBytes {
                _ = view.allocateBlock(byteCount: _Layout.blockByteCount(forPayload: bytes))
            }
            while true { _Syscall.sleep(nanoseconds: 1_000_000_000) }
        }
        fatalError("unreachable: the lock is held until the process is killed")
    }
}
