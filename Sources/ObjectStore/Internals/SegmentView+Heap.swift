// The heap allocator: Two-Level Segregated Fit (TLSF, Masmano et al. 2004) over heap-relative
// offsets, so every process can follow the links whatever address its mapping has.
//
// Blocks tile the heap exactly: [0, heapCapacity) then a zero-size, never-free sentinel block.
// Each block starts with a 64-byte header (`_Block`); a used block's payload follows it. Freed
// blocks merge with free physical neighbours at once, so free space never fragments into
// adjacent pieces. Allocation and free are O(1): two bitmap scans and a list splice.
// Free blocks are reused last-in first-out, so recently touched (already faulted-in) pages are
// handed out again before cold ones.
//
// Requires the segment mutex.

extension _SegmentView {
    // MARK: Size classes

    @inline(__always) static func highestBit(_ value: Int) -> Int { Int.bitWidth - 1 - value.leadingZeroBitCount }

    /// The free list a block of `size` bytes belongs to.
    @inline(__always) static func listIndex(forBlockSize size: Int) -> (first: Int, second: Int) {
        if size < _Layout.smallBlockByteCount {
            return (0, size / (_Layout.smallBlockByteCount / _Layout.secondLevelCount))
        }
        let top = highestBit(size)
        let second = (size >> (top - _Layout.secondLevelLog2)) ^ (1 << _Layout.secondLevelLog2)
        return (top - (_Layout.firstLevelShift - 1), second)
    }

    /// The first list whose every block is at least `size` bytes (rounds the size class up).
    @inline(__always) static func searchIndex(forBlockSize size: Int) -> (first: Int, second: Int) {
        var rounded = size
        if size >= _Layout.smallBlockByteCount {
            rounded += (1 << (highestBit(size) - _Layout.secondLevelLog2)) - 1
        }
        return listIndex(forBlockSize: rounded)
    }

    @inline(__always) private func headOffset(_ first: Int, _ second: Int) -> Int {
        _Layout.freeListHeadsOffset + (first * _Layout.secondLevelCount + second) * 8
    }
    @inline(__always) private func secondBitmapOffset(_ first: Int) -> Int {
        _Layout.secondLevelBitmapsOffset + first * 4
    }

    // MARK: Free lists

    private func insertFree(_ block: _Block) {
        let (first, second) = Self.listIndex(forBlockSize: block.size)
        let head = header.u64(headOffset(first, second))
        block.nextFree = head
        block.previousFree = _Layout.nilOffset
        if head != _Layout.nilOffset { self.block(head).previousFree = UInt64(block.offset) }
        header.setU64(headOffset(first, second), UInt64(block.offset))
        header.setU64(_Layout.firstLevelBitmapOffset, header.u64(_Layout.firstLevelBitmapOffset) | (1 << first))
        header.setU32(secondBitmapOffset(first), header.u32(secondBitmapOffset(first)) | (1 << second))
    }

    private func removeFree(_ block: _Block) {
        let (first, second) = Self.listIndex(forBlockSize: block.size)
        let next = block.nextFree
        let previous = block.previousFree
        if next != _Layout.nilOffset { self.block(next).previousFree = previous }
        if previous != _Layout.nilOffset {
            self.block(previous).nextFree = next
        } else {
            header.setU64(headOffset(first, second), next)
            if next == _Layout.nilOffset {
                let remaining = header.u32(secondBitmapOffset(first)) & ~(1 << second)
                header.setU32(secondBitmapOffset(first), remaining)
                if remaining == 0 {
                    header.setU64(_Layout.firstLevelBitmapOffset, header.u64(_Layout.firstLevelBitmapOffset) & ~(1 << first))
                }
            }
        }
    }

    /// A free block of at least `size` bytes (still on its list), or nil. First the O(1)
    /// good fit (the next size class up, where every block is large enough); failing that, a
    /// walk of `size`'s own class, whose blocks may or may not be large enough.
    private func findFree(atLeast size: Int) -> _Block? {
        if let found = findFreeInLargerClass(atLeast: size) { return found }
        let (first, second) = Self.listIndex(forBlockSize: size)
        guard first < _Layout.firstLevelCount else { return nil }
        var cursor = header.u64(headOffset(first, second))
        while cursor != _Layout.nilOffset {
            let candidate = block(cursor)
            if candidate.size >= size { return candidate }
            cursor = candidate.nextFree
        }
        return nil
    }

    private func findFreeInLargerClass(atLeast size: Int) -> _Block? {
        var (first, second) = Self.searchIndex(forBlockSize: size)
        guard first < _Layout.firstLevelCount else { return nil }
        var secondMap = header.u32(secondBitmapOffset(first)) & (UInt32.max << UInt32(second))
        if secondMap == 0 {
            let firstMap = first + 1 < 64 ? header.u64(_Layout.firstLevelBitmapOffset) & (UInt64.max << UInt64(first + 1)) : 0
            if firstMap == 0 { return nil }
            first = firstMap.trailingZeroBitCount
            secondMap = header.u32(secondBitmapOffset(first))
        }
        second = secondMap.trailingZeroBitCount
        return block(header.u64(headOffset(first, second)))
    }

    // MARK: Allocate and free

    /// Allocates a block of exactly `size` bytes (a multiple of 64, at least 128), splitting a
    /// larger free block when the rest can stand alone. Returns the block's heap offset, or nil
    /// when no free block is large enough. Updates the allocated-bytes counter and high-water mark.
    func allocateBlock(byteCount size: Int) -> Int? {
        guard let found = findFree(atLeast: size) else { return nil }
        removeFree(found)
        var allocated = found.size
        let remainder = allocated - size
        if remainder >= _Layout.minimumBlockByteCount {
            let rest = block(found.offset + size)
            rest.setSize(remainder, free: true)
            rest.previousPhysical = UInt64(found.offset)
            block(rest.offset + remainder).previousPhysical = UInt64(rest.offset)
            insertFree(rest)
            allocated = size
        }
        found.setSize(allocated, free: false)
        header.add(_Layout.allocatedBlockBytesOffset, allocated)
        let inUse = header.u64(_Layout.allocatedBlockBytesOffset)
        if inUse > header.u64(_Layout.highWaterBlockBytesOffset) {
            header.setU64(_Layout.highWaterBlockBytesOffset, inUse)
        }
        return found.offset
    }

    /// Frees the used block at heap offset `offset`, merging it with free neighbours.
    func freeBlock(at offset: Int) {
        var merged = block(offset)
        precondition(!merged.isFree, "freeing block at heap offset \(offset) twice")
        var size = merged.size
        header.add(_Layout.allocatedBlockBytesOffset, -size)
        let previousOffset = merged.previousPhysical
        if previousOffset != _Layout.nilOffset {
            let previous = block(previousOffset)
            if previous.isFree {
                removeFree(previous)
                size += previous.size
                merged = previous
            }
        }
        let next = block(merged.offset + size)
        if next.isFree {
            removeFree(next)
            size += next.size
        }
        merged.setSize(size, free: true)
        block(merged.offset + size).previousPhysical = UInt64(merged.offset)
        insertFree(merged)
    }

    /// The size of the free run that `blockOffset` would join if it and every block in
    /// `alsoFreed` (block offsets) were freed: the block plus its free or also-freed neighbours.
    func runSizeIfFreed(_ blockOffset: Int, alsoFreed: Set<Int>) -> Int {
        var size = block(blockOffset).size
        var previous = block(blockOffset).previousPhysical
        while previous != _Layout.nilOffset, block(previous).isFree || alsoFreed.contains(Int(previous)) {
            size += block(previous).size
            previous = block(previous).previousPhysical
        }
        var next = blockOffset + block(blockOffset).size
        while next < heapCapacity, block(next).isFree || alsoFreed.contains(next) {
            size += block(next).size
            next += block(next).size
        }
        return size
    }

    /// The size of the used block whose payload starts at `payloadOffset`.
    func blockSize(ofPayloadAt payloadOffset: Int) -> Int {
        block(payloadOffset - _Layout.blockHeaderByteCount).size
    }

    // MARK: Layout from scratch

    /// Lays the heap out anew: the given used blocks (sorted by offset, not overlapping, inside
    /// the heap) stay; every gap becomes a free block; the sentinel closes the heap. Used by
    /// creation (no used blocks) and by recovery (the live objects of the table).
    func rebuildHeap(usedBlocks: [(offset: Int, size: Int, ownerLow: UInt64)]) {
        header.setU64(_Layout.firstLevelBitmapOffset, 0)
        for first in 0..<_Layout.firstLevelCount {
            header.setU32(secondBitmapOffset(first), 0)
            for second in 0..<_Layout.secondLevelCount { header.setU64(headOffset(first, second), _Layout.nilOffset) }
        }
        var cursor = 0
        var previous = _Layout.nilOffset
        var allocated = 0
        func place(_ offset: Int, _ size: Int, free: Bool, ownerLow: UInt64) {
            let placed = block(offset)
            placed.setSize(size, free: free)
            placed.previousPhysical = previous
            if free { insertFree(placed) } else { placed.ownerLow = ownerLow }
            previous = UInt64(offset)
        }
        for used in usedBlocks {
            if used.offset > cursor { place(cursor, used.offset - cursor, free: true, ownerLow: 0) }
            place(used.offset, used.size, free: false, ownerLow: used.ownerLow)
            allocated += used.size
            cursor = used.offset + used.size
        }
        if cursor < heapCapacity { place(cursor, heapCapacity - cursor, free: true, ownerLow: 0) }
        let sentinel = block(heapCapacity)
        sentinel.setSize(0, free: false)
        sentinel.previousPhysical = previous
        header.setU64(_Layout.allocatedBlockBytesOffset, UInt64(allocated))
        if UInt64(allocated) > header.u64(_Layout.highWaterBlockBytesOffset) {
            header.setU64(_Layout.highWaterBlockBytesOffset, UInt64(allocated))
        }
    }

    /// Free bytes in total and the largest free block, by walking the heap. O(blocks).
    func freeSpace() -> (total: Int, largestBlock: Int) {
        var total = 0
        var largest = 0
        var offset = 0
        while offset < heapCapacity {
            let current = block(offset)
            if current.isFree {
                total += current.size
                largest = max(largest, current.size)
            }
            offset += current.size
        }
        return (total, largest)
    }

    /// The largest free block, from the free-list bitmaps: the head of the highest non-empty
    /// list is within one size class of the largest; O(1) plus one list walk.
    func largestFreeBlockEstimate() -> Int {
        let firstMap = header.u64(_Layout.firstLevelBitmapOffset)
        guard firstMap != 0 else { return 0 }
        let first = 63 - firstMap.leadingZeroBitCount
        let secondMap = header.u32(secondBitmapOffset(first))
        let second = 31 - secondMap.leadingZeroBitCount
        var largest = 0
        var cursor = header.u64(headOffset(first, second))
        while cursor != _Layout.nilOffset {
            let current = block(cursor)
            largest = max(largest, current.size)
            cursor = current.nextFree
        }
        return largest
    }

    /// Checks the heap's structure; returns (used bytes, free bytes, used block count) or a
    /// description of the first inconsistency.
    func checkHeap() -> Result<(used: Int, free: Int, usedBlocks: Int), _IntegrityFailure> {
        var offset = 0
        var previous = _Layout.nilOffset
        var previousFree = false
        var used = 0
        var free = 0
        var usedBlocks = 0
        var freeBlocks = 0
        while offset < heapCapacity {
            let current = block(offset)
            let size = current.size
            guard size >= _Layout.blockHeaderByteCount, size % _Layout.blockAlignment == 0, offset + size <= heapCapacity else {
                return .failure(_IntegrityFailure("heap block at offset \(offset) has invalid size \(size)"))
            }
            guard current.previousPhysical == previous else {
                return .failure(_IntegrityFailure("heap block at offset \(offset) links to previous \(current.previousPhysical), expected \(previous)"))
            }
            if current.isFree {
                guard !previousFree else { return .failure(_IntegrityFailure("adjacent free blocks at offset \(offset)")) }
                free += size
                freeBlocks += 1
            } else {
                used += size
                usedBlocks += 1
            }
            previousFree = current.isFree
            previous = UInt64(offset)
            offset += size
        }
        guard offset == heapCapacity, block(heapCapacity).size == 0, !block(heapCapacity).isFree,
            block(heapCapacity).previousPhysical == previous
        else { return .failure(_IntegrityFailure("heap does not end in its sentinel at offset \(heapCapacity)")) }
        // Every free block must be on the list of its size class, and every listed block free.
        var listed = 0
        let firstMap = header.u64(_Layout.firstLevelBitmapOffset)
        for first in 0..<_Layout.firstLevelCount {
            let secondMap = header.u32(secondBitmapOffset(first))
            guard (secondMap != 0) == (firstMap & (1 << first) != 0) else {
                return .failure(_IntegrityFailure("free-list bitmaps disagree at first level \(first)"))
            }
            for second in 0..<_Layout.secondLevelCount {
                var cursor = header.u64(headOffset(first, second))
                guard (cursor != _Layout.nilOffset) == (secondMap & (1 << second) != 0) else {
                    return .failure(_IntegrityFailure("free-list bitmap disagrees with list (\(first), \(second))"))
                }
                var previousLink = _Layout.nilOffset
                while cursor != _Layout.nilOffset {
                    let current = block(cursor)
                    guard current.isFree, Self.listIndex(forBlockSize: current.size) == (first, second), current.previousFree == previousLink else {
                        return .failure(_IntegrityFailure("block at offset \(cursor) is misplaced on free list (\(first), \(second))"))
                    }
                    listed += 1
                    guard listed <= freeBlocks else { return .failure(_IntegrityFailure("free lists hold more blocks than the heap")) }
                    previousLink = cursor
                    cursor = current.nextFree
                }
            }
        }
        guard listed == freeBlocks else {
            return .failure(_IntegrityFailure("\(freeBlocks - listed) free block(s) are on no free list"))
        }
        return .success((used, free, usedBlocks))
    }
}

/// What `verifyIntegrity` found wrong, in words.
struct _IntegrityFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
