// What to do when memory runs short: statistics, eviction candidates, eviction, the
// out-of-memory report, and reclaiming what dead processes held.

extension SharedObjectStore {
    /// A consistent snapshot of the store's occupancy.
    /// - Complexity: O(1) but for the largest free block (one free-list walk).
    public func statistics() throws(ObjectStoreError) -> StoreStatistics {
        try withLock { view, _ in
            let counters = view.counters
            let allocated = Int(view.header.u64(_Layout.allocatedBlockBytesOffset))
            return StoreStatistics(
                capacityBytes: view.heapCapacity, segmentBytes: view.geometry.segmentByteCount,
                allocatedBytes: allocated, highWaterBytes: Int(view.header.u64(_Layout.highWaterBlockBytesOffset)),
                freeBytes: view.heapCapacity - allocated, largestFreeBlockBytes: view.largestFreeBlockEstimate(),
                creatingCount: counters.creatingCount, creatingBytes: counters.creatingBytes,
                sealedInUseCount: counters.inUseCount, sealedInUseBytes: counters.inUseBytes,
                sealedIdleCount: counters.sealedCount - counters.inUseCount, sealedIdleBytes: counters.sealedBytes - counters.inUseBytes,
                deletePendingCount: counters.pendingDeleteCount, deletePendingBytes: counters.pendingDeleteBytes,
                maxObjects: view.maxObjects, attachedProcessCount: view.attachedProcesses().count,
                lockOwnerDeathRecoveries: Int(view.header.u64(_Layout.recoveryCountOffset)),
                reclaimedProcessCount: Int(view.header.u64(_Layout.reclaimedProcessCountOffset)))
        }
    }

    /// Sealed, unpinned objects that nobody references, just enough of them that evicting them
    /// all frees a *contiguous* run of heap large enough for an object of `byteCount` bytes
    /// (taking fragmentation into account). Empty when it fits already; all idle objects when
    /// even that would not make room. In the order memory pressure escalates: objects that
    /// already have a file copy first (dropping them costs no write), then the others; least
    /// recently used first within each.
    ///
    /// - Complexity: O(table slots + k log k) for k idle objects, plus their neighbours.
    public func evictionCandidates(toFit byteCount: Int) throws(ObjectStoreError) -> [EvictionCandidate] {
        try withLock { view, local in
            let needed = _Layout.blockByteCount(forPayload: min(max(byteCount, 1), view.heapCapacity))
            if view.largestFreeBlockEstimate() >= needed { return [] }
            var chosen: [EvictionCandidate] = []
            var chosenBlocks: Set<Int> = []
            let idle = idleObjects(view)
            for candidate in idle.filter(\.hasFileCopy) + idle.filter({ !$0.hasFileCopy }) {
                let blockOffset = candidate.payloadOffset - _Layout.blockHeaderByteCount
                chosenBlocks.insert(blockOffset)
                chosen.append(EvictionCandidate(
                    id: candidate.id, byteCount: candidate.byteCount, blockBytes: candidate.blockBytes,
                    lastUse: candidate.lastUse, typeTag: view.typeName(at: candidate.typeIndex), hasFileCopy: candidate.hasFileCopy))
                if view.runSizeIfFreed(blockOffset, alsoFreed: chosenBlocks) >= needed { break }
            }
            return chosen
        }
    }

    /// Sealed, unpinned objects that nobody references, least recently used first (at most
    /// `limit`): what a spiller writes out and frees first.
    /// - Complexity: O(table slots + k log k) for k idle objects.
    public func idleObjectsLeastRecentlyUsedFirst(limit: Int = .max) throws(ObjectStoreError) -> [EvictionCandidate] {
        try withLock { view, _ in
            idleObjects(view).prefix(limit).map {
                EvictionCandidate(
                    id: $0.id, byteCount: $0.byteCount, blockBytes: $0.blockBytes, lastUse: $0.lastUse,
                    typeTag: view.typeName(at: $0.typeIndex), hasFileCopy: $0.hasFileCopy)
            }
        }
    }

    /// Pins or unpins sealed object `id`. A pinned object is never evicted, never offered as an
    /// eviction candidate or idle object, and never chosen by `.leastRecentlyUsed` eviction; it
    /// stays in memory until deleted. (Materialize pins values whose policy is `never`.)
    /// - Throws: `.objectNotFound`, `.objectNotSealed`.
    public func setPinned(_ id: ObjectID, _ pinned: Bool) throws(ObjectStoreError) {
        try withLock { view, _ throws(ObjectStoreError) in
            guard let index = view.findLive(id) else {
                throw ObjectStoreError(.objectNotFound, "cannot pin object \(id): no such object in store '\(name)'", store: name, object: id)
            }
            guard view.entry(index).state == .sealed else {
                throw ObjectStoreError(.objectNotSealed, "cannot pin object \(id) in store '\(name)': it is still being created", store: name, object: id)
            }
            view.entry(index).isPinned = pinned
        }
    }

    /// Whether sealed object `id` is pinned (false if there is no such object).
    public func isPinned(_ id: ObjectID) -> Bool {
        (try? withLock { view, _ in view.findLive(id).map { view.entry($0).isPinned } ?? false }) ?? false
    }

    /// Deletes those of `ids` that are sealed, unpinned and referenced by nobody; skips the
    /// others (they were taken meanwhile, are pinned, or are gone). Returns the ids evicted.
    @discardableResult
    public func evict(_ ids: [ObjectID]) throws(ObjectStoreError) -> [ObjectID] {
        try withLock { view, _ in
            var evicted: [ObjectID] = []
            for id in ids {
                guard let index = view.findLive(id) else { continue }
                let current = view.entry(index)
                guard current.state == .sealed, current.holders == 0, !current.isPinned else { continue }
                view.freeEntry(at: index)
                evicted.append(id)
            }
            return evicted
        }
    }

    /// Releases everything held by attached processes that have died: their references, the
    /// objects they were creating, and their process slots. Executors call this when they see a
    /// worker die; the store also does it by itself on attach and when memory runs short.
    /// - Complexity: O(processes) when none died; O(table slots) otherwise.
    @discardableResult
    public func reclaimDeadProcesses() throws(ObjectStoreError) -> ReclaimReport {
        try withLock { view, _ in view.sweepDeadProcesses(ownSlot: processSlot) }
    }

    /// Pids of the processes attached now, including dead ones not yet swept.
    public func attachedProcessIDs() throws(ObjectStoreError) -> [Int32] {
        try withLock { view, _ in view.attachedProcesses().map(\.pid) }
    }

    // MARK: Allocation

    /// Allocates a block of `blockSize` bytes for `id`: directly, else after sweeping dead
    /// processes, else (with `.leastRecentlyUsed`) by evicting idle objects one at a time.
    func allocate(_ blockSize: Int, for id: ObjectID, eviction: EvictionPolicy, _ view: _SegmentView) throws(ObjectStoreError) -> Int {
        if let offset = view.allocateBlock(byteCount: blockSize) { return offset }
        if !view.sweepDeadProcesses(ownSlot: processSlot).deadProcessIDs.isEmpty, let offset = view.allocateBlock(byteCount: blockSize) {
            return offset
        }
        if eviction == .leastRecentlyUsed {
            for candidate in idleObjects(view) {
                if let index = view.find(candidate.id, generation: candidate.generation) { view.freeEntry(at: index) }
                if let offset = view.allocateBlock(byteCount: blockSize) { return offset }
            }
        }
        var error = ObjectStoreError(.outOfMemory, "", store: name, object: id)
        let report = capacityReport(requestedBlockBytes: blockSize, view)
        error.capacity = report
        error.message = "object \(id) does not fit in store '\(name)': \(report)"
        throw error
    }

    /// Sealed, unreferenced objects, least recently used first.
    private typealias IdleObject = (
        id: ObjectID, generation: UInt64, byteCount: Int, blockBytes: Int, lastUse: UInt64, typeIndex: Int, payloadOffset: Int,
        hasFileCopy: Bool
    )

    private func idleObjects(_ view: _SegmentView) -> [IdleObject] {
        var idle: [IdleObject] = []
        view.forEachEntry { _, current in
            if current.state == .sealed && current.holders == 0 && !current.isPinned {
                idle.append((
                    current.id, current.generation, current.byteCount, view.blockSize(ofPayloadAt: current.payloadOffset),
                    current.lastUse, current.typeIndex, current.payloadOffset, current.hasFileCopy))
            }
        }
        idle.sort { $0.lastUse < $1.lastUse }
        return idle
    }

    /// What pins the store's memory now: free and evictable bytes, the largest free block, and
    /// the five largest objects with their state and holders (`requestedBytes` is 0). The same
    /// report an allocation that does not fit carries in `.outOfMemory`.
    /// - Complexity: O(table slots), under the store's lock.
    public func capacityReport() throws(ObjectStoreError) -> CapacityReport {
        try withLock { view, _ in capacityReport(requestedBlockBytes: 0, view) }
    }

    private func capacityReport(requestedBlockBytes: Int, _ view: _SegmentView) -> CapacityReport {
        var largest: [CapacityReport.Holder] = []
        var evictable = 0
        view.forEachEntry { _, current in
            let state: ObjectState
            switch current.state {
            case .creating: state = .creating
            case .sealed: state = current.holders == 0 ? .sealedIdle : .sealedInUse
            case .deletePending: state = .deletePending
            case .empty: return
            }
            if state == .sealedIdle && !current.isPinned { evictable += view.blockSize(ofPayloadAt: current.payloadOffset) }
            let holder = CapacityReport.Holder(id: current.id, byteCount: current.byteCount, state: state, holderProcessCount: current.holders.nonzeroBitCount, isPinned: current.isPinned)
            if largest.count < 5 || current.byteCount > largest[largest.count - 1].byteCount {
                largest.append(holder)
                largest.sort { $0.byteCount > $1.byteCount }
                if largest.count > 5 { largest.removeLast() }
            }
        }
        let free = view.freeSpace()
        return CapacityReport(
            requestedBytes: requestedBlockBytes, freeBytes: free.total, largestFreeBlockBytes: free.largestBlock,
            capacityBytes: view.heapCapacity, evictableBytes: evictable, largestHolders: largest)
    }
}
