// Recovery: what the store does when a process died.
//
// Two cases.
// 1. A process died outside the lock (the common case: SIGKILL while writing an object or while
//    holding handles). `sweepDeadProcesses` finds its slot, releases every reference it held
//    (clears its bit in every entry's `holders`), reclaims the objects it was still creating,
//    frees objects pending deletion that no one holds any more, and frees the slot.
// 2. A process died while holding the lock. The robust mutex hands the next locker
//    `EOWNERDEAD`; the half-done operation may have left the heap links, a table probe run or
//    a counter inconsistent. `rebuildAfterOwnerDeath` trusts only the table entries (whose state
//    is written last), drops invalid and duplicated ones, re-inserts them into a cleared table,
//    lays the heap out anew around their blocks, and recomputes every counter. Then the sweep.
//
// Requires the segment mutex.

/// What a sweep of dead processes released.
public struct ReclaimReport: Sendable, Equatable, CustomStringConvertible {
    /// Pids of the dead processes whose slots were freed.
    public var deadProcessIDs: [Int32] = []
    /// Objects whose creator died before sealing them; their bytes were freed.
    public var reclaimedUnsealedObjects = 0
    /// References the dead processes held (one per object and process), now released.
    public var releasedReferences = 0
    /// Objects pending deletion that were freed because their last holder died.
    public var freedPendingDeletes = 0

    public init() {}
    public var description: String {
        "dead processes \(deadProcessIDs), reclaimed unsealed objects \(reclaimedUnsealedObjects), "
            + "released references \(releasedReferences), freed pending deletes \(freedPendingDeletes)"
    }
}

extension _SegmentView {
    /// Frees an entry and its block; the entry must not be referenced by any live holder.
    func freeEntry(at index: Int) {
        let dying = entry(index)
        updateCounters(byteCount: dying.byteCount, from: dying.state, fromHolders: dying.holders, to: .empty, toHolders: 0)
        freeBlock(at: dying.payloadOffset - _Layout.blockHeaderByteCount)
        removeEntry(at: index)
    }

    /// Releases everything held by processes that are no longer alive. `ownSlot` is never
    /// considered dead. O(processes + table slots) when some process died, O(processes) otherwise.
    func sweepDeadProcesses(ownSlot: Int) -> ReclaimReport {
        var report = ReclaimReport()
        var deadMask: UInt64 = 0
        for index in 0..<_Layout.processSlotCount where index != ownSlot && processSlot(index).isAttached {
            if !isProcessAlive(slot: index) {
                deadMask |= 1 << UInt64(index)
                report.deadProcessIDs.append(processSlot(index).pid)
            }
        }
        guard deadMask != 0 else { return report }
        // First pass: release references and decide what to free (no removals while scanning).
        var toFree: [(ObjectID, UInt64)] = []
        forEachEntry { _, current in
            let held = current.holders
            if held & deadMask != 0 {
                report.releasedReferences += (held & deadMask).nonzeroBitCount
                updateCounters(byteCount: current.byteCount, from: current.state, fromHolders: held, to: current.state, toHolders: held & ~deadMask)
                current.holders = held & ~deadMask
            }
            switch current.state {
            case .creating where deadMask & (1 << UInt64(current.creator)) != 0:
                toFree.append((current.id, current.generation))
                report.reclaimedUnsealedObjects += 1
            case .deletePending where current.holders == 0:
                toFree.append((current.id, current.generation))
                report.freedPendingDeletes += 1
            default: break
            }
        }
        for (id, generation) in toFree {
            if let index = find(id, generation: generation) { freeEntry(at: index) }
        }
        for index in 0..<_Layout.processSlotCount where deadMask & (1 << UInt64(index)) != 0 {
            processSlot(index).detach()
        }
        header.add(_Layout.reclaimedProcessCountOffset, report.deadProcessIDs.count)
        return report
    }

    /// Rebuilds the table's probe runs, the heap and the counters from the table's entries after
    /// a process died holding the lock. Entries that are invalid (block outside the heap, unknown
    /// type, creator slot out of range), duplicated (same id and generation) or overlapping an
    /// earlier entry's block are dropped. Returns the number of entries dropped.
    func rebuildAfterOwnerDeath() -> Int {
        struct Saved { var slot: Int; var id: ObjectID; var generation: UInt64; var blockOffset: Int; var blockSize: Int; var state: _EntryState }
        var saved: [Saved] = []
        var dropped = 0
        let types = typeCount
        for index in 0..<tableSlotCount {
            let current = entry(index)
            let rawState = current.fields.u32(60)
            guard rawState != 0 else { continue }
            let blockOffset = current.payloadOffset - _Layout.blockHeaderByteCount
            let blockSize = _Layout.blockByteCount(forPayload: max(current.byteCount, 1))
            guard let state = _EntryState(rawValue: rawState), current.byteCount >= 0,
                blockOffset >= 0, blockOffset % _Layout.blockAlignment == 0,
                blockOffset + blockSize <= heapCapacity, current.typeIndex < max(types, 1),
                current.creator < _Layout.processSlotCount
            else {
                dropped += 1
                continue
            }
            saved.append(Saved(slot: index, id: current.id, generation: current.generation, blockOffset: blockOffset, blockSize: blockSize, state: state))
        }
        // Deduplicate (a backward shift may have been cut off between copy and clear).
        saved.sort { ($0.blockOffset, $0.generation) < ($1.blockOffset, $1.generation) }
        var kept: [Saved] = []
        var end = 0
        for candidate in saved {
            if candidate.blockOffset < end {
                dropped += 1  // a duplicate, or overlaps the block kept before it
                continue
            }
            kept.append(candidate)
            end = candidate.blockOffset + candidate.blockSize
        }
        // Only one live entry per id: keep the newest generation.
        var newestLive: [ObjectID: UInt64] = [:]
        for candidate in kept where candidate.state != .deletePending {
            newestLive[candidate.id] = max(newestLive[candidate.id] ?? 0, candidate.generation)
        }
        kept.removeAll { candidate in
            let stale = candidate.state != .deletePending && newestLive[candidate.id] != candidate.generation
            if stale { dropped += 1 }
            return stale
        }
        // Repair the table in place, so that this recovery can itself be cut off by a crash and
        // redone by the next locker without losing an entry: first drop what is not kept...
        let keptSlots = Set(kept.map(\.slot))
        for index in 0..<tableSlotCount where entry(index).fields.u32(60) != 0 && !keptSlots.contains(index) {
            entry(index).fields.setU32(60, _EntryState.empty.rawValue)
        }
        // ...then move every entry stranded behind an empty slot of its probe run to the first
        // empty slot of that run, copying before clearing (a crash leaves a duplicate, which
        // the next recovery drops). Each move brings an entry closer to its home, so this ends.
        var moved = true
        while moved {
            moved = false
            for index in 0..<tableSlotCount {
                let current = entry(index)
                guard current.state != .empty else { continue }
                var probe = homeSlot(current.id)
                while probe != index {
                    if entry(probe).state == .empty {
                        entry(probe).copy(from: current)
                        current.state = .empty
                        moved = true
                        break
                    }
                    probe = (probe + 1) & tableMask
                }
            }
        }
        rebuildHeap(usedBlocks: kept.map { ($0.blockOffset, $0.blockSize, $0.id.low) })
        storeCounters(recomputedCounters())
        header.add(_Layout.recoveryCountOffset, 1)
        return dropped
    }
}
