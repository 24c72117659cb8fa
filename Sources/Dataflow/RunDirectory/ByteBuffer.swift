/// A growable byte buffer in manually managed memory, for formatting run-log lines: appending a
/// byte is a bounds check and a store, where `[UInt8].append` also checks uniqueness.
///
/// Ownership: a plain value holding a pointer. Exactly one owner calls `deallocate()` once, and
/// no copy is used after the owner's copy grew (growing moves the bytes). The run-log writer
/// owns one and lends it, by value, to the formatting code, which hands it back.
///
/// - Note: Not thread-safe; the owner serialises access.
struct _ByteBuffer {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private(set) var capacity: Int

    init(capacity: Int = 64 * 1024) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    func deallocate() { base.deallocate() }

    /// Forgets the contents; keeps the memory.
    mutating func removeAll() { count = 0 }

    @inline(__always) mutating func append(_ byte: UInt8) {
        if count == capacity { grow(toHold: count + 1) }
        base[count] = byte
        count += 1
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        if count + bytes.count > capacity { grow(toHold: count + bytes.count) }
        UnsafeMutableRawPointer(base + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        count += bytes.count
    }

    mutating func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Lets `body` write up to `maxCount` bytes at the end, directly, and keeps the number of
    /// bytes it says it wrote (one capacity check for a whole field).
    @inline(__always) mutating func append(upTo maxCount: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) {
        if count + maxCount > capacity { grow(toHold: count + maxCount) }
        let written = body(base + count)
        precondition(written >= 0 && written <= maxCount, "wrote \(written) bytes, more than the \(maxCount) reserved")
        count += written
    }

    /// The bytes written so far, valid until the next append.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    private mutating func grow(toHold needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }
}
