// The byte layout of a store segment. Every field lives at a fixed byte offset and is read and
// written through the pointer views below, so the layout does not depend on how the compiler lays
// out Swift structs. Bump `formatVersion` whenever anything here changes.
//
//   0          header (16 KiB): identity, robust mutex, counters, allocator free lists
//   16 KiB     process table: `processSlotCount` slots of 64 bytes
//   20 KiB     type table: `typeSlotCount` slots of 64 bytes (type names)
//   64 KiB     object table: `tableSlotCount` entries of 64 bytes (open addressing)
//   page-aligned heap: `heapCapacity` bytes of blocks, then a 64-byte sentinel block
//
// All of it is read and written only while holding the header's mutex, except payload bytes,
// whose access is governed by the object lifecycle (creator writes before seal, anyone reads after).

import Synchronization

enum _Layout {
    static let magic: UInt64 = 0x3145_524f_5453_4644  // "DFSTORE1" little-endian
    static let formatVersion: UInt32 = 1

    static let headerByteCount = 16 * 1024
    static let processTableOffset = 16 * 1024
    static let processSlotCount = 64  // one bit each in an entry's `holders` mask
    static let typeTableOffset = 20 * 1024
    static let typeSlotCount = 256
    static let objectTableOffset = 64 * 1024
    static let slotByteCount = 64

    /// Heap blocks and payloads are aligned to this, and block sizes are multiples of it.
    static let blockAlignment = 64
    /// Every block starts with a 64-byte header; the payload follows, 64-byte aligned.
    static let blockHeaderByteCount = 64
    /// The smallest block: a header and 64 payload bytes.
    static let minimumBlockByteCount = 128
    static let pageByteCount = 4096

    /// "No offset" in heap links.
    static let nilOffset = UInt64.max

    // Header field offsets.
    static let magicOffset = 0
    static let versionOffset = 8
    static let ownerOffset = 12
    static let segmentSizeOffset = 16
    static let heapCapacityOffset = 24
    static let tableSlotCountOffset = 32
    static let maxObjectsOffset = 40
    static let publishedOffset = 48
    static let typeCountOffset = 52
    static let mutexOffset = 64
    static let generationOffset = 128
    static let useClockOffset = 136
    // Counters (all derived from the object table; rebuilt by recovery).
    static let liveCountOffset = 144
    static let creatingCountOffset = 152
    static let creatingBytesOffset = 160
    static let sealedCountOffset = 168
    static let sealedBytesOffset = 176
    static let inUseCountOffset = 184
    static let inUseBytesOffset = 192
    static let allocatedBlockBytesOffset = 200
    static let highWaterBlockBytesOffset = 208
    static let recoveryCountOffset = 216
    static let reclaimedProcessCountOffset = 224
    static let pendingDeleteCountOffset = 232
    static let pendingDeleteBytesOffset = 240
    /// A random 128-bit id chosen at creation: tells this store from an earlier one of the same name.
    static let instanceIDOffset = 400
    // Allocator (TLSF) control.
    static let firstLevelBitmapOffset = 256
    static let secondLevelBitmapsOffset = 264  // UInt32 × firstLevelCount
    static let freeListHeadsOffset = 512  // UInt64 × firstLevelCount × secondLevelCount

    // TLSF parameters: sizes below 1 KiB map linearly to 16 lists of 64-byte steps; above, each
    // power of two is split into 16 lists. First level 31 covers blocks up to 2^40 bytes.
    static let secondLevelLog2 = 4
    static let secondLevelCount = 1 << secondLevelLog2
    static let firstLevelShift = secondLevelLog2 + 6  // log2(64) = 6
    static let smallBlockByteCount = 1 << firstLevelShift
    static let firstLevelMax = 40
    static let firstLevelCount = firstLevelMax - firstLevelShift + 1
    static let maximumHeapCapacity = (1 << firstLevelMax) - blockAlignment

    static func roundUp(_ value: Int, to alignment: Int) -> Int {
        (value + alignment - 1) / alignment * alignment
    }

    /// The block size that holds a payload of `byteCount` bytes.
    static func blockByteCount(forPayload byteCount: Int) -> Int {
        max(minimumBlockByteCount, blockHeaderByteCount + roundUp(byteCount, to: blockAlignment))
    }

    /// Offsets and sizes of one store's regions, derived from its capacity and table size.
    struct Geometry: Equatable {
        var heapCapacity: Int
        var tableSlotCount: Int
        var heapOffset: Int { roundUp(objectTableOffset + tableSlotCount * slotByteCount, to: pageByteCount) }
        /// The heap's blocks, then the sentinel block.
        var heapRegionByteCount: Int { heapCapacity + blockHeaderByteCount }
        var segmentByteCount: Int { roundUp(heapOffset + heapRegionByteCount, to: pageByteCount) }

        /// A table with at most 50% load for `maxObjects` live objects.
        static func tableSlotCount(forMaxObjects maxObjects: Int) -> Int {
            var slots = 1024
            while slots < maxObjects * 2 { slots <<= 1 }
            return slots
        }
    }
}

// MARK: - Pointer views. Each is a thin wrapper over a pointer into the mapping; none owns memory.

/// A read/write view of 64-bit and smaller fields at fixed offsets from `raw`.
struct _Fields {
    let raw: UnsafeMutableRawPointer

    @inline(__always) func u64(_ offset: Int) -> UInt64 { raw.load(fromByteOffset: offset, as: UInt64.self) }
    @inline(__always) func setU64(_ offset: Int, _ value: UInt64) { raw.storeBytes(of: value, toByteOffset: offset, as: UInt64.self) }
    @inline(__always) func u32(_ offset: Int) -> UInt32 { raw.load(fromByteOffset: offset, as: UInt32.self) }
    @inline(__always) func setU32(_ offset: Int, _ value: UInt32) { raw.storeBytes(of: value, toByteOffset: offset, as: UInt32.self) }
    @inline(__always) func u16(_ offset: Int) -> UInt16 { raw.load(fromByteOffset: offset, as: UInt16.self) }
    @inline(__always) func setU16(_ offset: Int, _ value: UInt16) { raw.storeBytes(of: value, toByteOffset: offset, as: UInt16.self) }
    @inline(__always) func u8(_ offset: Int) -> UInt8 { raw.load(fromByteOffset: offset, as: UInt8.self) }
    @inline(__always) func setU8(_ offset: Int, _ value: UInt8) { raw.storeBytes(of: value, toByteOffset: offset, as: UInt8.self) }

    /// Adds `delta` (which may be negative) to a counter. Counters never go below zero in a
    /// consistent store; `_checkInvariants` verifies them against the table.
    @inline(__always) func add(_ offset: Int, _ delta: Int) {
        setU64(offset, UInt64(bitPattern: Int64(bitPattern: u64(offset)) &+ Int64(delta)))
    }
}

/// The state byte of an object-table entry.
enum _EntryState: UInt32 {
    case empty = 0
    case creating = 1
    case sealed = 2
    /// Deleted by `delete` while referenced; freed when the last holder releases it.
    case deletePending = 3
}

/// One 64-byte object-table entry.
///
///     0 idHigh  8 idLow  16 payloadOffset (heap-relative)  24 byteCount  32 generation
///     40 holders (bit i: process slot i holds a reference)  48 lastUse (LRU clock)
///     56 typeIndex (UInt16)  58 creator slot (UInt8)  59 flags (bit 0: pinned, bit 1: has a file copy)
///     60 state (UInt32, written last)
struct _Entry {
    let fields: _Fields
    init(_ raw: UnsafeMutableRawPointer) { fields = _Fields(raw: raw) }

    var id: ObjectID { ObjectID(high: fields.u64(0), low: fields.u64(8)) }
    // Truncating: recovery reads entries that may be garbage, and validates them itself.
    var payloadOffset: Int { Int(truncatingIfNeeded: fields.u64(16)) }
    var byteCount: Int { Int(truncatingIfNeeded: fields.u64(24)) }
    var generation: UInt64 { fields.u64(32) }
    var holders: UInt64 {
        get { fields.u64(40) }
        nonmutating set { fields.setU64(40, newValue) }
    }
    var lastUse: UInt64 {
        get { fields.u64(48) }
        nonmutating set { fields.setU64(48, newValue) }
    }
    var typeIndex: Int { Int(fields.u16(56)) }
    /// Pinned objects are never evicted or offered for eviction (byte 59, bit 0).
    var isPinned: Bool {
        get { fields.u8(59) & 1 != 0 }
        nonmutating set { fields.setU8(59, newValue ? fields.u8(59) | 1 : fields.u8(59) & ~1) }
    }
    /// A file holds a copy of the object's bytes (a spill file; byte 59, bit 1), so deleting
    /// the object must remove it too.
    var hasFileCopy: Bool {
        get { fields.u8(59) & 2 != 0 }
        nonmutating set { fields.setU8(59, newValue ? fields.u8(59) | 2 : fields.u8(59) & ~2) }
    }
    var creator: Int { Int(fields.u8(58)) }
    var state: _EntryState {
        // A value outside the enum can only come from damage; treat it as empty (recovery drops it).
        get { _EntryState(rawValue: fields.u32(60)) ?? .empty }
        nonmutating set {
            // Every other field of the entry must be in memory before the state says it is live:
            // recovery after a crash trusts entries whose state is not `empty`.
            atomicMemoryFence(ordering: .releasing)
            fields.setU32(60, newValue.rawValue)
        }
    }

    /// Writes every field but the state (which the caller sets last).
    func fill(id: ObjectID, payloadOffset: Int, byteCount: Int, generation: UInt64, typeIndex: Int, creator: Int, lastUse: UInt64) {
        fields.setU64(0, id.high)
        fields.setU64(8, id.low)
        fields.setU64(16, UInt64(payloadOffset))
        fields.setU64(24, UInt64(byteCount))
        fields.setU64(32, generation)
        fields.setU64(40, 0)
        fields.setU64(48, lastUse)
        fields.setU16(56, UInt16(typeIndex))
        fields.setU8(58, UInt8(creator))
        fields.setU8(59, 0)
    }

    /// Copies every field from `other`, the state last. The destination is marked empty first,
    /// so that a crash in the middle leaves it empty (and `other` intact), never a torn mix of
    /// two entries that recovery would trust.
    func copy(from other: _Entry) {
        fields.setU32(60, _EntryState.empty.rawValue)
        atomicMemoryFence(ordering: .releasing)
        fields.raw.copyMemory(from: other.fields.raw, byteCount: 60)
        state = other.state
    }
}

/// One 64-byte process slot: `0 state (1 = attached)  4 pid  8 start time (clock ticks)`.
struct _ProcessSlot {
    let fields: _Fields
    init(_ raw: UnsafeMutableRawPointer) { fields = _Fields(raw: raw) }
    var isAttached: Bool { fields.u32(0) == 1 }
    var pid: Int32 { Int32(bitPattern: fields.u32(4)) }
    var startTime: UInt64 { fields.u64(8) }
    func attach(pid: Int32, startTime: UInt64) {
        fields.setU32(4, UInt32(bitPattern: pid))
        fields.setU64(8, startTime)
        atomicMemoryFence(ordering: .releasing)
        fields.setU32(0, 1)
    }
    func detach() {
        fields.setU32(0, 0)
        fields.setU32(4, 0)
        fields.setU64(8, 0)
    }
}

/// One heap block header at a heap-relative offset.
///
///     0 size | free flag (bit 0)  8 previous physical block  16 next free  24 previous free
///     32 low 64 bits of the owning object's id (used blocks; checked by `_checkInvariants`)
struct _Block {
    let fields: _Fields
    let offset: Int
    init(heap: UnsafeMutableRawPointer, offset: Int) {
        self.offset = offset
        fields = _Fields(raw: heap + offset)
    }
    var size: Int { Int(fields.u64(0) & ~UInt64(1)) }
    var isFree: Bool { fields.u64(0) & 1 == 1 }
    func setSize(_ size: Int, free: Bool) { fields.setU64(0, UInt64(size) | (free ? 1 : 0)) }
    var previousPhysical: UInt64 {
        get { fields.u64(8) }
        nonmutating set { fields.setU64(8, newValue) }
    }
    var nextFree: UInt64 {
        get { fields.u64(16) }
        nonmutating set { fields.setU64(16, newValue) }
    }
    var previousFree: UInt64 {
        get { fields.u64(24) }
        nonmutating set { fields.setU64(24, newValue) }
    }
    var ownerLow: UInt64 {
        get { fields.u64(32) }
        nonmutating set { fields.setU64(32, newValue) }
    }
}
