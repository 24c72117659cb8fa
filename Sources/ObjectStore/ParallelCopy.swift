import Dispatch
import Foundation

/// Copies large byte ranges with several threads: one thread's `memcpy` does not reach a
/// machine's memory bandwidth (here 512 MiB took 45 ms on one core; Ray copies large buffers
/// with several threads too). Below `threshold` bytes, or on one core, it is one `memcpy`.
///
/// The copy is synchronous CPU work, like a `memcpy`: the calling thread copies a part and
/// waits only for the other parts, which run at the same time on Dispatch's threads. Every
/// large copy the library makes goes through here: put by copy (`[UInt8]`, `String`, `Codable`
/// values, tensors), `ObjectBuilder.write`, and restores of raw spill files.
///
/// - Note: Stateless; thread-safe (the ranges must not overlap, and nothing else may write to
///   them meanwhile).
public enum ParallelCopy {
    /// Copies at or above this many bytes are split (the hand-off costs tens of microseconds).
    public static let threshold = 4 << 20
    /// The smallest part one thread copies.
    static let minimumPart = 2 << 20

    /// How many threads copy `byteCount` bytes.
    public static func parts(forByteCount byteCount: Int) -> Int {
        guard byteCount >= threshold else { return 1 }
        return max(1, min(ProcessInfo.processInfo.activeProcessorCount, byteCount / minimumPart, 16))
    }

    /// Copies `byteCount` bytes from `source` to `destination`.
    public static func copy(to destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, byteCount: Int) {
        let parts = parts(forByteCount: byteCount)
        guard parts > 1 else {
            if byteCount > 0 { memcpy(destination, source, byteCount) }
            return
        }
        // Parts of whole pages, the last one takes the rest.
        let part = (byteCount / parts) & ~4095
        // Safe: the ranges are disjoint, and both buffers outlive `concurrentPerform`.
        nonisolated(unsafe) let target = destination
        nonisolated(unsafe) let origin = source
        DispatchQueue.concurrentPerform(iterations: parts) { index in
            let offset = index * part
            let count = index == parts - 1 ? byteCount - offset : part
            memcpy(target + offset, origin + offset, count)
        }
    }

    /// Copies `source` to the start of `destination` (which must be at least as large).
    public static func copy(to destination: UnsafeMutableRawBufferPointer, from source: UnsafeRawBufferPointer) {
        precondition(destination.count >= source.count, "ParallelCopy: destination too small")
        guard let to = destination.baseAddress, let from = source.baseAddress else { return }
        copy(to: to, from: from, byteCount: source.count)
    }
}
