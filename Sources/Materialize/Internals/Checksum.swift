import CXXHash

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
