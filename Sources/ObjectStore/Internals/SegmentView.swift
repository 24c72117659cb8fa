/// A view of one mapped store segment: typed access to the header, tables and heap.
///
/// `_SegmentView` owns nothing: `_MappedSegment` owns the mapping and outlives every view.
/// Every method that reads or writes segment state requires the caller to hold the segment's
/// robust mutex (see `SharedObjectStore.withLock`). The view is a plain value; it is not itself
/// synchronised.
struct _SegmentView {
    let base: UnsafeMutableRawPointer
    let geometry: _Layout.Geometry

    var header: _Fields { _Fields(raw: base) }
    var heap: UnsafeMutableRawPointer { base + geometry.heapOffset }
    var heapCapacity: Int { geometry.heapCapacity }
    var tableSlotCount: Int { geometry.tableSlotCount }
    var tableMask: Int { geometry.tableSlotCount - 1 }
    var mutexAddress: UnsafeMutableRawPointer { base + _Layout.mutexOffset }
    var maxObjects: Int { Int(header.u64(_Layout.maxObjectsOffset)) }

    @inline(__always) func entry(_ index: Int) -> _Entry {
        _Entry(base + _Layout.objectTableOffset + index * _Layout.slotByteCount)
    }
    @inline(__always) func processSlot(_ index: Int) -> _ProcessSlot {
        _ProcessSlot(base + _Layout.processTableOffset + index * _Layout.slotByteCount)
    }
    @inline(__always) func block(_ offset: Int) -> _Block {
        _Block(heap: heap, offset: offset)
    }
    @inline(__always) func block(_ offset: UInt64) -> _Block {
        _Block(heap: heap, offset: Int(offset))
    }

    /// The payload address of an object whose payload starts at heap offset `payloadOffset`.
    @inline(__always) func payloadAddress(_ payloadOffset: Int) -> UnsafeMutableRawPointer {
        heap + payloadOffset
    }

    /// The next object generation (never 0, never reused within a segment's life).
    func nextGeneration() -> UInt64 {
        let next = header.u64(_Layout.generationOffset) &+ 1
        header.setU64(_Layout.generationOffset, next)
        return next
    }

    /// Advances and returns the logical clock used for least-recently-used ordering.
    func tick() -> UInt64 {
        let next = header.u64(_Layout.useClockOffset) &+ 1
        header.setU64(_Layout.useClockOffset, next)
        return next
    }
}
