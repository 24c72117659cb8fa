/// A snapshot of a store's occupancy. Byte figures for objects count payload bytes; block
/// figures include each object's 64-byte header and alignment padding.
///
/// - Note: A value type; thread-safe. Taken under the store's lock, so its numbers agree.
public struct StoreStatistics: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Heap bytes available for blocks.
    public var capacityBytes: Int
    /// Size of the whole shared segment (header, tables, heap).
    public var segmentBytes: Int
    /// Heap bytes in used blocks.
    public var allocatedBytes: Int
    /// The most heap bytes ever in used blocks at once.
    public var highWaterBytes: Int
    /// Heap bytes in free blocks.
    public var freeBytes: Int
    /// The largest free block: the largest object that fits now is 64 bytes less.
    public var largestFreeBlockBytes: Int
    /// Objects being created (not yet sealed).
    public var creatingCount: Int
    public var creatingBytes: Int
    /// Sealed objects referenced by at least one handle.
    public var sealedInUseCount: Int
    public var sealedInUseBytes: Int
    /// Sealed objects that nobody references (candidates for eviction or spilling).
    public var sealedIdleCount: Int
    public var sealedIdleBytes: Int
    /// Deleted objects still referenced by some handle.
    public var deletePendingCount: Int
    public var deletePendingBytes: Int
    /// The most objects the store can hold at once.
    public var maxObjects: Int
    /// Processes attached now (including dead ones not yet swept).
    public var attachedProcessCount: Int
    /// Times the bookkeeping was rebuilt because a process died holding the lock.
    public var lockOwnerDeathRecoveries: Int
    /// Dead processes whose slots, references and unsealed objects were reclaimed.
    public var reclaimedProcessCount: Int

    /// All objects, in any state.
    public var objectCount: Int { creatingCount + sealedInUseCount + sealedIdleCount + deletePendingCount }

    public var description: String {
        "capacity \(capacityBytes) B, allocated \(allocatedBytes) B (high water \(highWaterBytes) B), free \(freeBytes) B "
            + "(largest block \(largestFreeBlockBytes) B); objects: creating \(creatingCount) (\(creatingBytes) B), "
            + "sealed in use \(sealedInUseCount) (\(sealedInUseBytes) B), sealed idle \(sealedIdleCount) (\(sealedIdleBytes) B), "
            + "delete pending \(deletePendingCount) (\(deletePendingBytes) B); processes \(attachedProcessCount)"
    }
}

/// A sealed object that nobody references, in least-recently-used order.
public struct EvictionCandidate: Sendable, Equatable {
    public var id: ObjectID
    /// Payload bytes.
    public var byteCount: Int
    /// Heap bytes freed by evicting it (payload, header and padding).
    public var blockBytes: Int
    /// The store's logical clock at its last get or seal: smaller is colder.
    public var lastUse: UInt64
    /// The object's type tag.
    public var typeTag: String
    /// A file (a spill file) holds a copy: evicting it writes nothing.
    public var hasFileCopy: Bool = false
}
