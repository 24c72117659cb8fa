// The object table: open addressing with linear probing and backward-shift deletion, so no
// tombstones build up under churn. At most `maxObjects` entries are live and the table has at
// least twice as many slots, so probe chains stay short and an empty slot always exists.
//
// An entry moves when a neighbour is deleted, so indices are valid only until the next removal:
// code that removes entries while scanning collects keys first, then removes.
//
// The table is the store's source of truth: the heap layout and all counters can be rebuilt
// from it (see SegmentView+Recovery.swift).
//
// Requires the segment mutex.

extension _SegmentView {
    @inline(__always) func homeSlot(_ id: ObjectID) -> Int {
        Int(truncatingIfNeeded: id.tableHash) & tableMask
    }

    /// The index of the live (creating or sealed) entry for `id`, or nil. Entries pending
    /// deletion are skipped: their id may already belong to a new object.
    func findLive(_ id: ObjectID) -> Int? {
        var index = homeSlot(id)
        while true {
            let candidate = entry(index)
            let state = candidate.state
            if state == .empty { return nil }
            if (state == .creating || state == .sealed) && candidate.fields.u64(8) == id.low && candidate.fields.u64(0) == id.high {
                return index
            }
            index = (index + 1) & tableMask
        }
    }

    /// The index of the entry for exactly this object (id and generation), in any state.
    func find(_ id: ObjectID, generation: UInt64) -> Int? {
        var index = homeSlot(id)
        while true {
            let candidate = entry(index)
            if candidate.state == .empty { return nil }
            if candidate.generation == generation && candidate.id == id { return index }
            index = (index + 1) & tableMask
        }
    }

    /// The first empty slot on `id`'s probe sequence. The caller guarantees one exists (the
    /// number of entries never exceeds `maxObjects`, half the slot count).
    func emptySlot(for id: ObjectID) -> Int {
        var index = homeSlot(id)
        while entry(index).state != .empty { index = (index + 1) & tableMask }
        return index
    }

    /// Removes the entry at `index`, moving later entries of the same probe run back so that
    /// every entry stays reachable from its home slot. A crash part-way leaves at worst one
    /// entry duplicated (copied, not yet cleared), which recovery removes; a copy cut off in the
    /// middle leaves its destination empty (see `_Entry.copy`).
    func removeEntry(at index: Int) {
        var hole = index
        var cursor = index
        while true {
            cursor = (cursor + 1) & tableMask
            let candidate = entry(cursor)
            if candidate.state == .empty { break }
            let home = homeSlot(candidate.id)
            // The candidate may fill the hole if its home is not cyclically within (hole, cursor].
            let homeBetween = hole <= cursor ? (home > hole && home <= cursor) : (home > hole || home <= cursor)
            if !homeBetween {
                entry(hole).copy(from: candidate)
                hole = cursor
            }
        }
        entry(hole).state = .empty
    }

    /// Number of entries in any non-empty state (live and pending deletion).
    var entryCount: Int { Int(header.u64(_Layout.liveCountOffset)) }

    /// Visits every non-empty entry. `body` must not insert or remove entries.
    func forEachEntry(_ body: (Int, _Entry) throws -> Void) rethrows {
        for index in 0..<tableSlotCount {
            let candidate = entry(index)
            if candidate.state != .empty { try body(index, candidate) }
        }
    }
}

// MARK: - Counters

/// The counters kept in the header, all derived from the table. Byte figures are payload bytes.
struct _Counters: Equatable {
    var entries = 0
    var creatingCount = 0, creatingBytes = 0
    var sealedCount = 0, sealedBytes = 0
    var inUseCount = 0, inUseBytes = 0
    var pendingDeleteCount = 0, pendingDeleteBytes = 0

    /// Adds (or with `sign` -1 removes) one entry's contribution.
    mutating func account(state: _EntryState, holders: UInt64, byteCount: Int, sign: Int = 1) {
        entries += sign
        switch state {
        case .empty: entries -= sign
        case .creating:
            creatingCount += sign
            creatingBytes += sign * byteCount
        case .sealed:
            sealedCount += sign
            sealedBytes += sign * byteCount
            if holders != 0 {
                inUseCount += sign
                inUseBytes += sign * byteCount
            }
        case .deletePending:
            pendingDeleteCount += sign
            pendingDeleteBytes += sign * byteCount
        }
    }
}

extension _SegmentView {
    /// The counters as stored in the header.
    var counters: _Counters {
        let h = header
        return _Counters(
            entries: Int(h.u64(_Layout.liveCountOffset)),
            creatingCount: Int(h.u64(_Layout.creatingCountOffset)), creatingBytes: Int(h.u64(_Layout.creatingBytesOffset)),
            sealedCount: Int(h.u64(_Layout.sealedCountOffset)), sealedBytes: Int(h.u64(_Layout.sealedBytesOffset)),
            inUseCount: Int(h.u64(_Layout.inUseCountOffset)), inUseBytes: Int(h.u64(_Layout.inUseBytesOffset)),
            pendingDeleteCount: Int(h.u64(_Layout.pendingDeleteCountOffset)),
            pendingDeleteBytes: Int(h.u64(_Layout.pendingDeleteBytesOffset)))
    }

    func storeCounters(_ value: _Counters) {
        let h = header
        h.setU64(_Layout.liveCountOffset, UInt64(value.entries))
        h.setU64(_Layout.creatingCountOffset, UInt64(value.creatingCount))
        h.setU64(_Layout.creatingBytesOffset, UInt64(value.creatingBytes))
        h.setU64(_Layout.sealedCountOffset, UInt64(value.sealedCount))
        h.setU64(_Layout.sealedBytesOffset, UInt64(value.sealedBytes))
        h.setU64(_Layout.inUseCountOffset, UInt64(value.inUseCount))
        h.setU64(_Layout.inUseBytesOffset, UInt64(value.inUseBytes))
        h.setU64(_Layout.pendingDeleteCountOffset, UInt64(value.pendingDeleteCount))
        h.setU64(_Layout.pendingDeleteBytesOffset, UInt64(value.pendingDeleteBytes))
    }

    /// Moves one entry's contribution from (`from`, `fromHolders`) to (`to`, `toHolders`).
    /// Pass `.empty` as `from` for an insertion and as `to` for a removal.
    func updateCounters(byteCount: Int, from: _EntryState, fromHolders: UInt64, to: _EntryState, toHolders: UInt64) {
        var value = counters
        value.account(state: from, holders: fromHolders, byteCount: byteCount, sign: -1)
        value.account(state: to, holders: toHolders, byteCount: byteCount, sign: 1)
        storeCounters(value)
    }

    /// The counters recomputed from the table. O(table slots).
    func recomputedCounters() -> _Counters {
        var value = _Counters()
        forEachEntry { _, current in
            value.account(state: current.state, holders: current.holders, byteCount: current.byteCount)
        }
        return value
    }
}
