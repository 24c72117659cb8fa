// Hooks for crash tests: ways to be killed at the worst moments. `package` access: visible to
// this package's test helpers only, never to users of the library.

extension SharedObjectStore {
    /// Damages the object table as a crash in the middle of a deletion or a backward shift
    /// would, then runs the recovery a process that finds the lock's owner dead runs:
    /// - an entry is lost without the shift, leaving a gap in front of an entry that is not in
    ///   its home slot (so that entry is stranded: unreachable until recovery moves it);
    /// - another entry gets a second copy in the first empty slot after its own.
    /// Returns the ids chosen, the stranded one, and the number of entries recovery dropped
    /// (nil if the table has no displaced entry to strand).
    package func _testingDamageTableAndRecover() throws(ObjectStoreError) -> (removed: ObjectID, stranded: ObjectID, duplicated: ObjectID, dropped: Int)? {
        try withLock { view, _ in
            let mask = view.tableMask
            guard let gap = (0..<view.tableSlotCount).first(where: { index in
                let next = (index + 1) & mask
                return view.entry(index).state != .empty && view.entry(next).state != .empty
                    && view.homeSlot(view.entry(next).id) != next
            }) else { return nil }
            let removed = view.entry(gap).id
            let stranded = view.entry((gap + 1) & mask).id
            view.entry(gap).fields.setU32(60, _EntryState.empty.rawValue)
            guard let original = (0..<view.tableSlotCount).first(where: { view.entry($0).state != .empty && view.entry($0).id != stranded }) else { return nil }
            let duplicated = view.entry(original).id
            var spare = (original + 1) & mask
            while view.entry(spare).state != .empty || spare == gap { spare = (spare + 1) & mask }
            view.entry(spare).copy(from: view.entry(original))
            return (removed, stranded, duplicated, view.rebuildAfterOwnerDeath())
        }
    }

    /// Takes the store's lock and never gives it back: the caller is about to be killed.
    /// With `partialAllocationBytes`, first allocates a heap block that no table entry owns, as a
    /// process killed in the middle of `create` would leave it. Never returns.
    package func _testingHoldLockForever(partialAllocationBytes: Int?) -> Never {
        _ = try? withLock { view, _ in
            if let bytes = partialAllocationBytes {
                _ = view.allocateBlock(byteCount: _Layout.blockByteCount(forPayload: bytes))
            }
            while true { _Syscall.sleep(nanoseconds: 1_000_000_000) }
        }
        fatalError("unreachable: the lock is held until the process is killed")
    }
}
