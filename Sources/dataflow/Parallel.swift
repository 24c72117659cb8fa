import Dispatch

/// A raw pointer handed to several threads that each touch a disjoint part of it.
struct SharedPointer<T>: @unchecked Sendable {  // callers split the range between threads
    let base: UnsafeMutablePointer<T>
}

/// A read-only pointer handed to several threads.
struct SharedReadPointer<T>: @unchecked Sendable {  // only read while the owner keeps it alive
    let base: UnsafePointer<T>
}

/// Runs `body(chunk)` for `chunks` chunks on all cores and waits for them.
func parallelFor(chunks: Int, _ body: @Sendable (Int) -> Void) {
    guard chunks > 1 else {
        if chunks == 1 { body(0) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
}

/// The half-open range of chunk `chunk` when `count` items are split into `chunks` near-equal parts.
func chunkRange(_ chunk: Int, of chunks: Int, count: Int) -> Range<Int> {
    let lower = count * chunk / chunks
    let upper = count * (chunk + 1) / chunks
    return lower..<upper
}

/// SplitMix64: a small, fast, deterministic generator (the same numbers on every machine).
struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A float uniformly in [-1, 1).
    @inline(__always)
    mutating func nextSignedUnit() -> Float {
        Float(Int32(truncatingIfNeeded: next() >> 32)) * (1.0 / 2_147_483_648.0)
    }
}
