// Creating, sealing, reading and deleting objects. See `SharedObjectStore` for the lifecycle.

extension SharedObjectStore {
    /// What `create` may do when the allocation does not fit.
    public enum EvictionPolicy: Sendable {
        /// Fail with `.outOfMemory`; the error's `capacity` report says what could be evicted.
        case none
        /// Delete sealed objects that nobody references, least recently used first, until the
        /// new object fits. Their bytes are gone: use this for values that can be recomputed.
        case leastRecentlyUsed
    }

    /// Creates object `id` of `byteCount` bytes and returns a builder whose bytes lie inside the
    /// shared segment: write them in place, then `seal()`. The object is invisible to `get`
    /// until sealed, and is reclaimed if this process dies first or the builder is dropped
    /// unsealed. The bytes are not zeroed.
    ///
    /// When it does not fit, the store's room maker (see `StoreRoomMaker`: a spill manager)
    /// is asked to free memory first; `.outOfMemory` means it could free nothing more.
    ///
    /// - Parameters:
    ///   - id: unique among the store's live objects.
    ///   - byteCount: 1 byte up to the store's capacity minus the 64-byte block header.
    ///   - typeTag: the stored type's stable name (`StoreValue.typeTag`), at most 63 UTF-8 bytes.
    ///   - eviction: what to do if it does not fit.
    /// - Throws: `.invalidSize`, `.objectExists`, `.tooManyObjects`, `.tooManyTypes`,
    ///   `.invalidName` (type tag), `.outOfMemory` with a `CapacityReport`.
    /// - Complexity: O(1), plus a sweep of dead processes when the store is full.
    public func create(_ id: ObjectID, byteCount: Int, typeTag: String = "bytes", eviction: EvictionPolicy = .none) throws(ObjectStoreError) -> ObjectBuilder {
        try create(id, byteCount: byteCount, typeTag: typeTag, eviction: eviction, allowingEmpty: false)
    }

    /// `create`, optionally allowing an empty object (typed `put` of an empty string or array:
    /// it takes a minimum block, and its handle has 0 bytes).
    package func create(_ id: ObjectID, byteCount: Int, typeTag: String, eviction: EvictionPolicy, allowingEmpty: Bool) throws(ObjectStoreError) -> ObjectBuilder {
        let blockSize = try checkedBlockSize(byteCount == 0 && allowingEmpty ? 1 : byteCount, for: id)
        let placed = try withRoom(forByteCount: byteCount, eviction: eviction) { () throws(ObjectStoreError) in
            try withLock { view, local throws(ObjectStoreError) in
                try placeNewObject(id, byteCount: byteCount, blockSize: blockSize, typeTag: typeTag, eviction: eviction, view, local)
            }
        }
        return ObjectBuilder(
            store: self, key: ObjectKey(id: id, generation: placed.generation),
            address: segment.view.payloadAddress(placed.payloadOffset), byteCount: byteCount,
            payloadOffset: placed.payloadOffset, typeTag: typeTag)
    }

    /// A zero-copy, read-only handle on sealed object `id`; counts a reference until the last
    /// copy of the handle is gone.
    ///
    /// - Throws: `.objectNotFound` (never created, deleted, or spilled away), `.objectNotSealed`
    ///   (still being created).
    /// - Complexity: O(1); well under a microsecond.
    public func get(_ id: ObjectID) throws(ObjectStoreError) -> ObjectHandle {
        let found = try withLock { view, local throws(ObjectStoreError) -> (Int, Int, UInt64, String) in
            guard let index = view.findLive(id) else {
                throw ObjectStoreError(.objectNotFound, "no object \(id) in store '\(name)'", store: name, object: id)
            }
            let current = view.entry(index)
            guard current.state == .sealed else {
                throw ObjectStoreError(.objectNotSealed, "object \(id) in store '\(name)' is still being created", store: name, object: id)
            }
            retain(current, view, local)
            return (current.payloadOffset, current.byteCount, current.generation, typeName(current.typeIndex, view, local))
        }
        return makeHandle(id: id, payloadOffset: found.0, byteCount: found.1, generation: found.2, typeTag: found.3)
    }

    /// A handle on the object a descriptor (from another process, say) describes.
    ///
    /// - Throws: `.invalidOption` if the descriptor names another store; `.staleDescriptor` if
    ///   that object was deleted (even if its id was reused since); `.objectNotFound`.
    public func get(_ descriptor: ObjectDescriptor) throws(ObjectStoreError) -> ObjectHandle {
        guard descriptor.storeName == name else {
            throw ObjectStoreError(.invalidOption, "descriptor of object \(descriptor.id) names store '\(descriptor.storeName)', not '\(name)'", store: name, object: descriptor.id)
        }
        let handle = try get(descriptor.id)
        guard handle.generation == descriptor.generation, handle.payloadOffset == descriptor.payloadOffset, handle.byteCount == descriptor.byteCount else {
            throw ObjectStoreError(.staleDescriptor, "descriptor of object \(descriptor.id) (generation \(descriptor.generation)) is stale: the object was deleted and its id reused (now generation \(handle.generation))", store: name, object: descriptor.id)
        }
        return handle
    }

    /// Whether a sealed object `id` exists (false while it is still being created).
    public func contains(_ id: ObjectID) -> Bool {
        (try? withLock { view, _ in view.findLive(id).map { view.entry($0).state == .sealed } ?? false }) ?? false
    }

    /// Deletes sealed object `id`: its bytes are freed now if no process holds a reference,
    /// otherwise as soon as the last reference is released. Either way its id is free for a new
    /// object at once, and `get` no longer finds it.
    ///
    /// - Returns: what was deleted (its size, whether its bytes were freed at once, and whether a
    ///   file copy was recorded for it with `setHasFileCopy`).
    /// - Throws: `.objectNotFound`; `.objectNotSealed` (only its creator may abandon an object
    ///   being created, by dropping or aborting its builder).
    @discardableResult
    public func delete(_ id: ObjectID) throws(ObjectStoreError) -> DeletedObject {
        try withLock { view, _ throws(ObjectStoreError) -> DeletedObject in
            guard let index = view.findLive(id) else {
                throw ObjectStoreError(.objectNotFound, "cannot delete object \(id): no such object in store '\(name)'", store: name, object: id)
            }
            let current = view.entry(index)
            guard current.state == .sealed else {
                throw ObjectStoreError(.objectNotSealed, "cannot delete object \(id) in store '\(name)': it is still being created", store: name, object: id)
            }
            let deleted = DeletedObject(byteCount: current.byteCount, freedNow: current.holders == 0, hadFileCopy: current.hasFileCopy)
            if current.holders == 0 {
                view.freeEntry(at: index)
            } else {
                view.updateCounters(byteCount: current.byteCount, from: .sealed, fromHolders: current.holders, to: .deletePending, toHolders: current.holders)
                current.state = .deletePending
            }
            return deleted
        }
    }

    /// Records whether a file (e.g. a spill file) holds a copy of sealed object `id`, so that
    /// whoever deletes it learns to remove that file too (`DeletedObject.hadFileCopy`). The mark
    /// goes with the object: a new object under the same id starts without it.
    /// - Throws: `.objectNotFound` when there is no such sealed object (e.g. it was deleted).
    public func setHasFileCopy(_ id: ObjectID, _ hasFileCopy: Bool) throws(ObjectStoreError) {
        try withLock { view, _ throws(ObjectStoreError) in
            guard let index = view.findLive(id), view.entry(index).state == .sealed else {
                throw ObjectStoreError(.objectNotFound, "cannot mark object \(id) as having a file copy: no such sealed object in store '\(name)'", store: name, object: id)
            }
            view.entry(index).hasFileCopy = hasFileCopy
        }
    }

    // MARK: Internals used by builders and handles

    /// Seals the object a builder created; returns the reader's handle (one reference).
    func seal(_ key: ObjectKey, typeTag: String) throws(ObjectStoreError) -> ObjectHandle {
        let found = try withLock { view, local throws(ObjectStoreError) -> (Int, Int) in
            guard let index = view.find(key.id, generation: key.generation), view.entry(index).state == .creating,
                view.entry(index).creator == processSlot
            else {
                throw ObjectStoreError(.objectNotFound, "cannot seal object \(key.id): it is no longer being created in store '\(name)' (reclaimed?)", store: name, object: key.id)
            }
            let current = view.entry(index)
            view.updateCounters(byteCount: current.byteCount, from: .creating, fromHolders: 0, to: .sealed, toHolders: 0)
            current.state = .sealed
            retain(current, view, local)
            return (current.payloadOffset, current.byteCount)
        }
        return makeHandle(id: key.id, payloadOffset: found.0, byteCount: found.1, generation: key.generation, typeTag: typeTag)
    }

    /// Values at most this big are written under the store's lock by `putSmall`.
    package static let smallValueByteLimit = 4096

    /// Creates, fills and seals object `id` of at most `smallValueByteLimit` bytes in one visit
    /// to the lock (a small task output: `create` + `seal` would take it twice). The bytes are
    /// written while the lock is held; until they are, the entry is `creating`, so a crash in
    /// between leaves an object that recovery reclaims, never a sealed one with torn bytes.
    /// - Throws: as `create`; whatever `write` throws (the object is then freed).
    package func putSmall(
        _ id: ObjectID, byteCount: Int, typeTag: String, write: (inout MutableRawSpan) throws -> Void
    ) throws -> ObjectHandle {
        let placed = try placeSmall(id, byteCount: byteCount, typeTag: typeTag, holdingReference: true, write: write)
        return makeHandle(id: id, payloadOffset: placed.payloadOffset, byteCount: byteCount, generation: placed.generation, typeTag: typeTag)
    }

    /// `putSmall` without taking a reference: the object is sealed and nobody holds it, as if a
    /// handle had been made and dropped at once (one visit to the lock instead of two). Until
    /// someone gets it, it is idle: under memory pressure it may be spilled (its plan allowing)
    /// or, with an eviction policy, evicted.
    /// - Throws: as `putSmall`.
    package func putSmallUnheld(
        _ id: ObjectID, byteCount: Int, typeTag: String, write: (inout MutableRawSpan) throws -> Void
    ) throws {
        _ = try placeSmall(id, byteCount: byteCount, typeTag: typeTag, holdingReference: false, write: write)
    }

    private func placeSmall(
        _ id: ObjectID, byteCount: Int, typeTag: String, holdingReference: Bool, write: (inout MutableRawSpan) throws -> Void
    ) throws -> (payloadOffset: Int, generation: UInt64) {
        precondition(byteCount <= Self.smallValueByteLimit, "putSmall takes at most \(Self.smallValueByteLimit) bytes")
        let blockSize = try checkedBlockSize(byteCount == 0 ? 1 : byteCount, for: id)
        var writeError: (any Error)?
        let placed = try withRoom(forByteCount: byteCount, eviction: .none) { () throws(ObjectStoreError) in
            try withLock { view, local throws(ObjectStoreError) -> (payloadOffset: Int, generation: UInt64)? in
                let (index, payloadOffset, generation) = try placeNewObject(id, byteCount: byteCount, blockSize: blockSize, typeTag: typeTag, eviction: .none, view, local)
                let slot = view.entry(index)
                do {
                    var span = UnsafeMutableRawBufferPointer(start: view.payloadAddress(payloadOffset), count: byteCount).mutableBytes
                    try write(&span)
                } catch {
                    writeError = error
                    view.freeEntry(at: index)
                    return nil
                }
                view.updateCounters(byteCount: byteCount, from: .creating, fromHolders: 0, to: .sealed, toHolders: 0)
                slot.state = .sealed
                if holdingReference { retain(slot, view, local) }
                return (payloadOffset, generation)
            }
        }
        guard let placed else { throw writeError! }
        return placed
    }

    /// Allocates object `id` and enters it in the table as `creating` (under the lock).
    /// - Returns: its table slot, payload offset and generation.
    private func placeNewObject(
        _ id: ObjectID, byteCount: Int, blockSize: Int, typeTag: String, eviction: EvictionPolicy, _ view: _SegmentView, _ local: _ProcessLocalState
    ) throws(ObjectStoreError) -> (index: Int, payloadOffset: Int, generation: UInt64) {
        guard view.findLive(id) == nil else {
            throw ObjectStoreError(.objectExists, "object \(id) already exists in store '\(name)'", store: name, object: id)
        }
        let typeIndex = try typeIndex(typeTag, view, local)
        if view.entryCount >= view.maxObjects {
            _ = view.sweepDeadProcesses(ownSlot: processSlot)
            guard view.entryCount < view.maxObjects else {
                throw ObjectStoreError(
                    .tooManyObjects,
                    "store '\(name)' holds its maximum of \(view.maxObjects) objects (raise StoreOptions.maxObjects; for a run's own store, RunOptions.maxObjects or max_objects under [run] in dataflow.toml)",
                    store: name, object: id)
            }
        }
        let blockOffset = try allocate(blockSize, for: id, eviction: eviction, view)
        let generation = view.nextGeneration()
        let payloadOffset = blockOffset + _Layout.blockHeaderByteCount
        view.block(blockOffset).ownerLow = id.low
        let index = view.emptySlot(for: id)
        let slot = view.entry(index)
        slot.fill(id: id, payloadOffset: payloadOffset, byteCount: byteCount, generation: generation, typeIndex: typeIndex, creator: processSlot, lastUse: view.tick())
        slot.state = .creating
        view.updateCounters(byteCount: byteCount, from: .empty, fromHolders: 0, to: .creating, toHolders: 0)
        return (index, payloadOffset, generation)
    }

    /// Frees an object that its builder abandoned before sealing.
    func abort(_ key: ObjectKey) {
        _ = try? withLock { view, _ in
            if let index = view.find(key.id, generation: key.generation), view.entry(index).state == .creating {
                view.freeEntry(at: index)
            }
        }
    }

    /// Gives back one reference of this process (a handle's last copy went away).
    func release(_ key: ObjectKey) {
        _ = try? withLock { view, local in
            guard let count = local.referenceCounts[key] else {
                preconditionFailure("releasing object \(key.id) that this process holds no reference to")
            }
            if count > 1 {
                local.referenceCounts[key] = count - 1
                return
            }
            local.referenceCounts[key] = nil
            guard let index = view.find(key.id, generation: key.generation) else { return }
            let current = view.entry(index)
            let before = current.holders
            let after = before & ~(1 << UInt64(processSlot))
            current.holders = after
            if current.state == .deletePending && after == 0 {
                view.freeEntry(at: index)
            } else {
                view.updateCounters(byteCount: current.byteCount, from: current.state, fromHolders: before, to: current.state, toHolders: after)
            }
        }
    }

    /// Counts one more reference of this process on `entry`.
    private func retain(_ entry: _Entry, _ view: _SegmentView, _ local: _ProcessLocalState) {
        let key = ObjectKey(id: entry.id, generation: entry.generation)
        let count = _postIncrement(&local.referenceCounts[key, default: 0])  // one look-up
        entry.lastUse = view.tick()
        if count == 0 {
            let before = entry.holders
            let after = before | (1 << UInt64(processSlot))
            entry.holders = after
            if before == 0 {
                view.updateCounters(byteCount: entry.byteCount, from: .sealed, fromHolders: before, to: .sealed, toHolders: after)
            }
        }
    }

    private func makeHandle(id: ObjectID, payloadOffset: Int, byteCount: Int, generation: UInt64, typeTag: String) -> ObjectHandle {
        ObjectHandle(reference: _ObjectReference(
            store: self, key: ObjectKey(id: id, generation: generation),
            address: UnsafeRawPointer(segment.view.payloadAddress(payloadOffset)),
            byteCount: byteCount, payloadOffset: payloadOffset, typeTag: typeTag))
    }

    private func checkedBlockSize(_ byteCount: Int, for id: ObjectID) throws(ObjectStoreError) -> Int {
        guard byteCount > 0, byteCount <= capacityBytes - _Layout.blockHeaderByteCount else {
            throw ObjectStoreError(.invalidSize, "object \(id): size \(byteCount) bytes is outside 1 ... \(capacityBytes - _Layout.blockHeaderByteCount) (store '\(name)' capacity \(capacityBytes) bytes, less a 64-byte header)", store: name, object: id)
        }
        return _Layout.blockByteCount(forPayload: byteCount)
    }

    private func typeIndex(_ tag: String, _ view: _SegmentView, _ local: _ProcessLocalState) throws(ObjectStoreError) -> Int {
        if let cached = local.typeIndices[tag] { return cached }
        guard !tag.isEmpty, tag.utf8.count <= _SegmentView.maximumTypeNameByteCount else {
            throw ObjectStoreError(.invalidName, "type tag '\(tag)' must be 1-\(_SegmentView.maximumTypeNameByteCount) UTF-8 bytes", store: name)
        }
        guard let index = view.typeIndex(named: tag) else {
            throw ObjectStoreError(.tooManyTypes, "store '\(name)' already knows \(_Layout.typeSlotCount) types; cannot add '\(tag)'", store: name)
        }
        local.typeIndices[tag] = index
        return index
    }

    private func typeName(_ index: Int, _ view: _SegmentView, _ local: _ProcessLocalState) -> String {
        if let cached = local.typeNames[index] { return cached }
        let name = view.typeName(at: index)
        local.typeNames[index] = name
        return name
    }
}

/// Adds one to `value` and returns what it was.
private func _postIncrement(_ value: inout Int) -> Int {
    defer { value += 1 }
    return value
}
