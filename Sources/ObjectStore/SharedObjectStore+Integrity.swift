// A full consistency check of a store's bookkeeping, and the debug-build invariant hook.

extension SharedObjectStore {
    /// Checks every invariant of the segment: the heap's blocks tile it exactly with no two
    /// free neighbours and every free block on the right list; every object-table entry is
    /// reachable from its home slot, and owns a used block large enough for it; every used
    /// block belongs to exactly one entry; the counters match the table.
    ///
    /// - Throws: `.storeCorrupted` naming the first inconsistency found.
    /// - Complexity: O(table slots + heap blocks). For tests, tools and after recovery; not for
    ///   hot paths.
    public func verifyIntegrity() throws(ObjectStoreError) {
        try withLock { view, _ throws(ObjectStoreError) in
            if case .failure(let failure) = view.checkIntegrity() {
                throw ObjectStoreError(.storeCorrupted, "store '\(name)': \(failure.message)", store: name)
            }
        }
    }

    /// Runs `verifyIntegrity` in builds with `DATAFLOW_INTERNAL_CHECKS` (debug and test); does
    /// nothing in release builds.
    @inline(__always)
    package func _checkInvariants() {
        #if DATAFLOW_INTERNAL_CHECKS
        do { try verifyIntegrity() } catch { preconditionFailure("\(error)") }
        #endif
    }
}

extension _SegmentView {
    func checkIntegrity() -> Result<Void, _IntegrityFailure> {
        let heapSummary: (used: Int, free: Int, usedBlocks: Int)
        switch checkHeap() {
        case .success(let value): heapSummary = value
        case .failure(let failure): return .failure(failure)
        }
        var entries = 0
        for index in 0..<tableSlotCount {
            let current = entry(index)
            guard current.state != .empty else { continue }
            entries += 1
            let id = current.id
            // Reachable: no empty slot between its home and its position.
            var probe = homeSlot(id)
            while probe != index {
                if entry(probe).state == .empty {
                    return .failure(_IntegrityFailure("object \(id) at table slot \(index) is unreachable from its home slot \(homeSlot(id))"))
                }
                probe = (probe + 1) & tableMask
            }
            let blockOffset = current.payloadOffset - _Layout.blockHeaderByteCount
            guard blockOffset >= 0, blockOffset < heapCapacity else {
                return .failure(_IntegrityFailure("object \(id) has payload offset \(current.payloadOffset) outside the heap"))
            }
            let owner = block(blockOffset)
            guard !owner.isFree, owner.ownerLow == id.low, owner.size >= _Layout.blockByteCount(forPayload: current.byteCount) else {
                return .failure(_IntegrityFailure("object \(id) does not own a used block of \(current.byteCount) bytes at offset \(blockOffset)"))
            }
            if current.state == .creating && !processSlot(current.creator).isAttached {
                return .failure(_IntegrityFailure("object \(id) is being created by process slot \(current.creator), which is not attached"))
            }
            if current.state == .deletePending && current.holders == 0 {
                return .failure(_IntegrityFailure("object \(id) is pending deletion but nobody holds it"))
            }
            var unattachedHolders: UInt64 = 0
            for slot in 0..<_Layout.processSlotCount where !processSlot(slot).isAttached { unattachedHolders |= 1 << UInt64(slot) }
            if current.holders & unattachedHolders != 0 {
                return .failure(_IntegrityFailure("object \(id) is held by process slots that are not attached"))
            }
        }
        guard entries == heapSummary.usedBlocks else {
            return .failure(_IntegrityFailure("\(heapSummary.usedBlocks) used heap blocks but \(entries) objects: \(heapSummary.usedBlocks - entries) block(s) lost"))
        }
        guard heapSummary.used == Int(header.u64(_Layout.allocatedBlockBytesOffset)) else {
            return .failure(_IntegrityFailure("allocated-bytes counter says \(header.u64(_Layout.allocatedBlockBytesOffset)), the heap holds \(heapSummary.used)"))
        }
        let recomputed = recomputedCounters()
        guard recomputed == counters else {
            return .failure(_IntegrityFailure("counters \(counters) disagree with the table \(recomputed)"))
        }
        return .success(())
    }
}
