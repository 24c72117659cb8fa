import CXXHash
import Foundation

/// A streaming XXH3-64 checksum (libxxhash), seed 0: the checksum of spill files.
/// Over 10 GB/s, so checksumming costs little next to disk I/O.
///
/// - Note: Owns its C state (freed in `deinit`); not thread-safe.
final class _Checksum {
    private let state: OpaquePointer

    init() {
        state = XXH3_createState()
        XXH3_64bits_reset(state)
    }

    deinit { XXH3_freeState(state) }

    func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        XXH3_64bits_update(state, base, bytes.count)
    }

    var value: UInt64 { XXH3_64bits_digest(state) }

    /// The checksum of `bytes` in one call.
    static func of(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        XXH3_64bits(bytes.baseAddress, bytes.count)
    }
}

/// The XXH3-64 of a buffer, computed on a thread of its own while the caller does other work
/// (writes the same bytes to a file). The caller must keep `bytes` alive and unchanged until
/// `wait()` returns.
final class _ConcurrentChecksum: @unchecked Sendable {  // `result` is written once, before `done` is signalled
    private let done = DispatchSemaphore(value: 0)
    private var result: UInt64 = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        // Safe: the caller keeps the bytes alive until `wait()`; they are only read.
        nonisolated(unsafe) let unsafeBytes = bytes
        Thread.detachNewThread { [self] in
            result = _Checksum.of(unsafeBytes)
            done.signal()
        }
    }

    /// Blocks until the checksum is ready and returns it.
    func wait() -> UInt64 {
        done.wait()
        return result
    }
}
