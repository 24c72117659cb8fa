import Foundation
import ObjectStore

/// Moves cold values between a store and its spill directory: under memory pressure it writes
/// sealed, idle, unpinned objects to spill files and frees them; a later `get` restores them
/// transparently (into the store, zero-copy again afterwards).
///
/// Memory pressure is measured against watermarks of the store's capacity, with hysteresis:
/// above `high`, objects are spilled, least recently used first, until usage is below `low`.
/// The spill I/O runs with no store lock held (the object is pinned in memory by a handle
/// while its file is written) and, once `startBackgroundSpilling()` was called, on a background
/// thread rather than on the thread that asked for memory. Values that already have a spill
/// file (restored earlier) are only dropped, not written again.
///
/// The spill directory is `<root>/<store name>-<store instance id>/` (mode 0700). Every process
/// attached to the same store shares it, so any of them restores what another spilled. Opening
/// a manager sweeps orphans: directories left by earlier stores of the same name, and temporary
/// files of writers that died. Deleting a value through `delete(_:)` removes its spill file.
///
/// - Note: Thread-safe. Spill and restore of different objects run concurrently; the same
///   object is spilled by one thread at a time.
public final class SpillManager: @unchecked Sendable {  // mutable state is guarded by `condition`
    /// Fractions of the store's capacity between which spilling keeps usage.
    public struct Watermarks: Sendable, Equatable {
        /// Spilling starts when allocated bytes exceed this fraction of capacity.
        public var high: Double
        /// ...and goes on until allocated bytes are below this fraction.
        public var low: Double
        public init(high: Double = 0.85, low: Double = 0.70) {
            self.high = high
            self.low = low
        }
    }

    /// What one round of relieving memory pressure did.
    public struct PressureReport: Sendable, Equatable {
        /// Objects freed from memory (their bytes are in spill files).
        public var spilledObjects = 0
        /// Heap bytes freed.
        public var freedBytes = 0
        /// Spill files written (objects that already had one were only dropped).
        public var writtenFiles = 0
        /// Candidates skipped: taken by a reader meanwhile, deleted, or failed to write.
        public var skipped = 0
        public init() {}
    }

    /// The outcome of spilling one object.
    public struct SpillOutcome: Sendable, Equatable {
        /// A new spill file was written (false: one existed already).
        public var wroteFile: Bool
        /// The object was freed from memory (false: someone held it, so it stays, with its file).
        public var evicted: Bool
        public init(wroteFile: Bool, evicted: Bool) {
            self.wroteFile = wroteFile
            self.evicted = evicted
        }
    }

    public let store: SharedObjectStore
    /// This store's spill directory.
    public let directory: String
    public let watermarks: Watermarks

    /// Everything the background thread shares with the manager; guarded by its condition.
    /// A separate object, so that the thread never keeps the manager alive between rounds.
    final class _State: @unchecked Sendable {  // every field is read and written under `condition`
        let condition = NSCondition()
        /// Objects being spilled or restored now, by one thread each.
        var inFlight: Set<ObjectID> = []
        /// Objects deleted while being spilled or restored: their file or restored object goes
        /// when the spill or restore ends.
        var deletedWhileBusy: Set<ObjectID> = []
        var backgroundRunning = false
        var stopping = false
        var wakeRequested = false
        var completedRounds = 0
        var counters = Counters()
    }

    struct Counters {
        var spilledObjects = 0, spilledBytes = 0, restoredObjects = 0, restoredBytes = 0
    }

    let state = _State()

    /// How long `get` waits for another thread or process that is restoring the same object.
    public static let restoreWaitSeconds = 30.0

    /// Opens the spill directory of `store` under `rootDirectory` (creating both, mode 0700)
    /// and sweeps orphans.
    /// - Throws: `.invalidOption` for bad watermarks; `.ioFailed` naming the directory.
    public init(store: SharedObjectStore, rootDirectory: String, watermarks: Watermarks = Watermarks()) throws(MaterializeError) {
        guard watermarks.low > 0, watermarks.low < watermarks.high, watermarks.high <= 1 else {
            throw MaterializeError(.invalidOption, "watermarks must satisfy 0 < low < high <= 1; got low \(watermarks.low), high \(watermarks.high)")
        }
        self.store = store
        self.watermarks = watermarks
        let root = rootDirectory.hasSuffix("/") && rootDirectory.count > 1 ? String(rootDirectory.dropLast()) : rootDirectory
        self.directory = "\(root)/\(store.name)-\(store.instanceID)"
        try SpillFile.check(_FileSyscall.makeDirectory(root), "mkdir", root, "creating spill root")
        try SpillFile.check(_FileSyscall.makeDirectory(directory), "mkdir", directory, "creating spill directory")
        sweepOrphans(root: root)
        // Every allocation of this process in the store asks this manager for room.
        store.setRoomMaker(self)
    }

    deinit {
        store.clearRoomMaker(ifIs: self)
        // Signal only: this may run on the background thread itself (its round held the last
        // reference), which then sees `stopping` and ends.
        state.condition.withLock {
            state.stopping = true
            state.condition.broadcast()
        }
    }

    // MARK: Paths

    /// Where object `id`'s spill file lives (whether or not it exists).
    public func path(for id: ObjectID) -> String { "\(directory)/\(id).dfspill" }

    /// Whether object `id` has a spill file.
    public func hasSpillFile(_ id: ObjectID) -> Bool { FileManager.default.fileExists(atPath: path(for: id)) }

    /// Whether the spill file of `id` holds this incarnation (`generation`) of the object, rather
    /// than an earlier object that had the same id.
    func hasCurrentSpillFile(_ id: ObjectID, generation: UInt64) -> Bool {
        guard let header = try? SpillFile.readHeader(at: path(for: id)) else { return false }
        return header.objectID == id && header.objectGeneration == generation
    }

    /// Marks `id` as being spilled or restored by this thread; false if another thread is.
    private func claim(_ id: ObjectID) -> Bool {
        state.condition.withLock { state.inFlight.insert(id).inserted }
    }

    /// Ends a claim; returns whether the object was deleted meanwhile.
    private func unclaim(_ id: ObjectID) -> Bool {
        state.condition.withLock {
            state.inFlight.remove(id)
            state.condition.broadcast()  // a producer may wait for this spill to free memory
            return state.deletedWhileBusy.remove(id) != nil
        }
    }

    // MARK: Spill, restore, delete

    /// Writes object `id`'s spill file (unless it has one for this very object) and frees it
    /// from memory if nobody holds it. The store's lock is not held during the I/O. If another
    /// thread is spilling or restoring the same object, returns at once, having done nothing.
    /// - Throws: `.store` (no such sealed object), `.ioFailed`, `.compressionFailed`.
    @discardableResult
    public func spill(_ id: ObjectID) throws(MaterializeError) -> SpillOutcome {
        guard claim(id) else { return SpillOutcome(wroteFile: false, evicted: false) }
        // The claim is held to the end, eviction included: another thread that spilled the same
        // object between our write and our eviction would evict it, and our "deleted meanwhile"
        // branch below would then remove the only copy (found under ThreadSanitizer).
        defer {
            if unclaim(id) { _ = _FileSyscall.unlink(path(for: id)) }  // deleted while we spilled it
        }
        var wrote = false
        var byteCount = 0
        do {
            let handle: ObjectHandle
            do { handle = try store.get(id) } catch { throw MaterializeError.store(error, while: "spilling object \(id)") }
            byteCount = handle.byteCount
            if !hasCurrentSpillFile(id, generation: handle.generation) {
                try SpillFile.write(handle, to: path(for: id))
                wrote = true
            }
        }  // the handle is released here, so the object can be evicted
        guard hasSpillFile(id) else { return SpillOutcome(wroteFile: false, evicted: false) }
        do {
            // Whoever deletes the object from now on removes the file too.
            try store.setHasFileCopy(id, true)
        } catch {
            // Deleted (by another process) while we wrote: the file must not outlive it.
            if wrote { _ = _FileSyscall.unlink(path(for: id)) }
            return SpillOutcome(wroteFile: wrote, evicted: false)
        }
        let evicted: Bool
        do { evicted = try !store.evict([id]).isEmpty } catch { throw .store(error, while: "evicting spilled object \(id)") }
        if evicted {
            state.condition.withLock {
                state.counters.spilledObjects += 1
                state.counters.spilledBytes += byteCount
            }
        }
        return SpillOutcome(wroteFile: wrote, evicted: evicted)
    }

    /// A handle on object `id`: from memory, or restored from its spill file (making room by
    /// spilling colder objects if needed). If another thread or process is restoring the same
    /// object, or nothing can be freed for it yet, waits (up to `restoreWaitSeconds`), blocking
    /// the calling thread. From async code use `get(_:waitingForRoomUpTo:)`, which does not block.
    /// - Throws: `.store` wrapping `.objectNotFound` when the object is neither in memory nor
    ///   spilled (or was deleted while being restored); the spill-file errors of
    ///   `SpillFile.restore` (e.g. `.corruptedFile`); `.store` wrapping `.outOfMemory` (naming
    ///   what pins the memory) if it cannot be made to fit before the wait ends.
    public func get(_ id: ObjectID) throws(MaterializeError) -> ObjectHandle {
        // In memory, the common case: no clock read, no claim.
        if let handle = try getFromMemory(id) { return handle }
        let deadline = Date().addingTimeInterval(Self.restoreWaitSeconds)
        var pause = Self.firstRoomPauseSeconds
        while true {
            if let handle = try getStep(id, deadline: deadline) { return handle }
            Thread.sleep(forTimeInterval: pause)  // a synchronous caller asked to wait
            pause = min(pause * 2, Self.lastRoomPauseSeconds)
        }
    }

    /// `get(_:)` for async callers: while it waits (for room, or for another restorer) it
    /// suspends instead of blocking a thread, at most `timeout` seconds, and stops waiting when
    /// the calling task is cancelled.
    /// - Throws: as `get(_:)`.
    public func get(_ id: ObjectID, waitingForRoomUpTo timeout: Double) async throws(MaterializeError) -> ObjectHandle {
        if let handle = try getFromMemory(id) { return handle }
        let deadline = Date().addingTimeInterval(timeout)
        var pause = Self.firstRoomPauseSeconds
        while true {
            if let handle = try getStep(id, deadline: Task.isCancelled ? .distantPast : deadline) { return handle }
            try? await Task.sleep(nanoseconds: UInt64(pause * 1e9))
            pause = min(pause * 2, Self.lastRoomPauseSeconds)
        }
    }

    /// The object if it is in memory and sealed; nil if it is being restored or is not there
    /// (then `get` restores it). No clock read, no claim: the common, cheap case.
    public func getFromMemory(_ id: ObjectID) throws(MaterializeError) -> ObjectHandle? {
        do {
            return try store.get(id)
        } catch where error.code == .objectNotSealed || error.code == .objectNotFound {
            return nil  // being restored by someone else, or spilled (or gone)
        } catch {
            throw .store(error, while: "getting object \(id)")
        }
    }

    /// One try of `get`: the handle, or nil when the caller should wait and try again (another
    /// restorer is busy with it, or there is no room yet) — or the error, once `deadline` passed.
    private func getStep(_ id: ObjectID, deadline: Date) throws(MaterializeError) -> ObjectHandle? {
        do {
            return try store.get(id)
        } catch where error.code == .objectNotSealed && Date() < deadline {
            return nil  // being restored by someone else
        } catch where error.code == .objectNotFound && hasSpillFile(id) {
            // spilled: restore it below
        } catch where error.code == .objectNotFound {
            // Neither in memory nor spilled: say where its spill file would be (a deleted one).
            throw .store(error, while: "getting object \(id) (not in memory, and no spill file at '\(path(for: id))')")
        } catch {
            throw .store(error, while: "getting object \(id)")
        }
        guard claim(id) else { return nil }  // another thread of this process is restoring it
        do throws(MaterializeError) {
            let handle = try restore(id)
            if unclaim(id) {  // deleted while we restored it: it stays deleted
                _ = try? store.delete(id)
                throw MaterializeError.store(
                    ObjectStoreError.deletedWhileRestoring(id, store: store.name), while: "getting object \(id)")
            }
            return handle
        } catch where error.storeError?.code == .objectExists || error.code == .fileNotFound {
            _ = unclaim(id)
            return nil  // another process restored it meanwhile (and may have removed the file)
        } catch where error.storeError?.code == .outOfMemory && Date() < deadline {
            _ = unclaim(id)
            return nil  // nothing could be freed for it now: wait for consumers to free memory
        } catch {
            _ = unclaim(id)
            throw error
        }
    }

    /// Reads object `id` as a `V`, restoring it first if it was spilled.
    public func get<V: StoreValue>(_ id: ObjectID, as type: V.Type = V.self) throws(MaterializeError) -> V {
        let handle = try get(id)
        do { return try handle.decode(as: type) } catch { throw .store(error, while: "decoding object \(id)") }
    }

    /// Deletes object `id` from memory and removes its spill file. An object in memory that never
    /// had a spill file (the common case) costs no file-system call.
    /// - Throws: `.store` wrapping `.objectNotFound` when it is in neither place.
    public func delete(_ id: ObjectID) throws(MaterializeError) {
        let busy = state.condition.withLock { () -> Bool in
            guard state.inFlight.contains(id) else { return false }
            state.deletedWhileBusy.insert(id)
            return true
        }
        var storeError: ObjectStoreError?
        do {
            let deleted = try store.delete(id)
            // In memory with no file copy, and nobody here writing one: nothing to remove.
            if !deleted.hadFileCopy && !busy { return }
        } catch where error.code == .objectNotFound {
            storeError = error
        } catch {
            throw .store(error, while: "deleting object \(id)")
        }
        switch _FileSyscall.unlink(path(for: id)) {
        case .success: return
        case .failure(.noSuchFileOrDirectory):
            let busyNow = state.condition.withLock { state.inFlight.contains(id) }
            if let storeError, !busyNow { throw .store(storeError, while: "deleting object \(id)") }
        case .failure(let errno): throw .io("unlink", errno, path: path(for: id), while: "removing spill file")
        }
    }

    // MARK: Memory pressure

    /// Spills cold objects until allocated bytes are below the low watermark, if they are above
    /// the high one (with `force`: even if they are not above the high one; nothing is spilled
    /// below the low watermark either way). Runs on the calling thread.
    @discardableResult
    public func relieveMemoryPressure(force: Bool = false) -> PressureReport {
        guard let statistics = try? store.statistics() else { return PressureReport() }
        let capacity = Double(statistics.capacityBytes)
        guard force || Double(statistics.allocatedBytes) > watermarks.high * capacity else { return PressureReport() }
        let target = statistics.allocatedBytes - Int(watermarks.low * capacity)
        let candidates = (try? store.idleObjectsLeastRecentlyUsedFirst()) ?? []
        return spillCandidates(candidates, until: target)
    }

    /// Frees memory until an object of `byteCount` bytes fits (a contiguous block), in the
    /// order pressure escalates: idle values that already have a file are dropped first, then
    /// cold idle values are written to spill files and freed. Runs on the calling thread.
    @discardableResult
    public func makeRoom(forByteCount byteCount: Int) -> PressureReport {
        let candidates = (try? store.evictionCandidates(toFit: byteCount)) ?? []
        return spillCandidates(candidates, until: .max)
    }

    private func spillCandidates(_ candidates: [EvictionCandidate], until target: Int) -> PressureReport {
        var report = PressureReport()
        for candidate in candidates where report.freedBytes < target {
            guard let outcome = try? spill(candidate.id) else {
                report.skipped += 1
                continue
            }
            if outcome.wroteFile { report.writtenFiles += 1 }
            if outcome.evicted {
                report.spilledObjects += 1
                report.freedBytes += candidate.blockBytes
            } else {
                report.skipped += 1
            }
        }
        return report
    }

    /// Creates object `id`, making room when the store is full: the store asks this manager
    /// (its room maker) to drop or spill idle values until the object fits; when nothing more can
    /// be freed (values pinned by `never` and objects in use can only be freed by their
    /// consumers), waits for room up to `timeout` seconds, blocking the calling thread.
    /// From async code use `create(_:byteCount:typeTag:waitingForRoomUpTo:)`, which does not block.
    /// - Throws: `.noRoom` naming what pins the memory; `.store` for other store errors.
    public func create(_ id: ObjectID, byteCount: Int, typeTag: String = "bytes", waitingUpTo timeout: Double = 10) throws(MaterializeError) -> ObjectBuilder {
        let deadline = Date().addingTimeInterval(timeout)
        var pause = Self.firstRoomPauseSeconds
        while true {
            switch try createOnce(id, byteCount: byteCount, typeTag: typeTag, deadline: deadline, timeout: timeout) {
            case .made(let builder): return builder
            case .noRoomYet:
                Thread.sleep(forTimeInterval: pause)  // a synchronous caller asked to wait
                pause = min(pause * 2, Self.lastRoomPauseSeconds)
            }
        }
    }

    /// `create(_:byteCount:typeTag:waitingUpTo:)` for async callers: while it waits for room it
    /// suspends (no thread is blocked), and it stops waiting when the calling task is cancelled.
    /// - Throws: `.noRoom` naming what pins the memory; `.store` for other store errors.
    public func create(_ id: ObjectID, byteCount: Int, typeTag: String = "bytes", waitingForRoomUpTo timeout: Double) async throws(MaterializeError) -> ObjectBuilder {
        let deadline = Date().addingTimeInterval(timeout)
        var pause = Self.firstRoomPauseSeconds
        while true {
            switch try createOnce(id, byteCount: byteCount, typeTag: typeTag, deadline: Task.isCancelled ? .distantPast : deadline, timeout: timeout) {
            case .made(let builder): return builder
            case .noRoomYet:
                try? await Task.sleep(nanoseconds: UInt64(pause * 1e9))
                pause = min(pause * 2, Self.lastRoomPauseSeconds)
            }
        }
    }

    /// The first and the longest pause between two tries of a producer waiting for room.
    static let firstRoomPauseSeconds = 0.002
    static let lastRoomPauseSeconds = 0.05

    private enum CreateStep: ~Copyable {
        case made(ObjectBuilder)
        case noRoomYet
    }

    /// One try: the object, or `.noRoomYet` before `deadline`, or `.noRoom` after it.
    private func createOnce(_ id: ObjectID, byteCount: Int, typeTag: String, deadline: Date, timeout: Double) throws(MaterializeError) -> CreateStep {
        do {
            return .made(try store.create(id, byteCount: byteCount, typeTag: typeTag))
        } catch where error.code == .outOfMemory {
            guard Date() >= deadline else { return .noRoomYet }
            var failure = MaterializeError(
                .noRoom,
                "object \(id) of \(byteCount) bytes found no room in store '\(store.name)' within \(timeout) s: \(error.capacity.map(\.description) ?? error.message)",
                object: id)
            failure.storeError = error
            throw failure
        } catch {
            throw .store(error, while: "creating object \(id)")
        }
    }

    // MARK: Background spilling

    /// Starts a thread that relieves memory pressure whenever usage passes the high watermark
    /// (checked every `pollInterval` seconds, and at once when a producer runs short). The
    /// thread holds the manager only during a round, and ends when the manager goes away.
    public func startBackgroundSpilling(pollInterval: Double = 0.01) {
        let state = self.state
        state.condition.withLock {
            guard !state.backgroundRunning else { return }
            state.backgroundRunning = true
            state.stopping = false
            let manager = _WeakSpillManager(self)
            let thread = Thread { Self.backgroundLoop(state: state, manager: manager, pollInterval: pollInterval) }
            thread.name = "dataflow-spill-\(store.name)"
            thread.start()
        }
    }

    /// Stops the background thread after its current round, and waits for it.
    public func stopBackgroundSpilling() {
        state.condition.withLock {
            guard state.backgroundRunning else { return }
            state.stopping = true
            state.condition.broadcast()
            while state.backgroundRunning { state.condition.wait() }
        }
    }

    public var isBackgroundSpillingRunning: Bool { state.condition.withLock { state.backgroundRunning } }

    private static func backgroundLoop(state: _State, manager: _WeakSpillManager, pollInterval: Double) {
        defer {
            state.condition.withLock {
                state.backgroundRunning = false
                state.condition.broadcast()
            }
        }
        while true {
            let stop = state.condition.withLock { () -> Bool in
                if !state.stopping && !state.wakeRequested { _ = state.condition.wait(until: Date().addingTimeInterval(pollInterval)) }
                state.wakeRequested = false
                return state.stopping
            }
            if stop { return }
            do {
                guard let strong = manager.value else { return }  // the manager is gone
                strong.relieveMemoryPressure()
            }  // the strong reference ends with the round
            state.condition.withLock {
                state.completedRounds += 1
                state.condition.broadcast()  // producers waiting for room try again
            }
        }
    }

    // MARK: Statistics

    /// Objects spilled and restored by this manager, and their bytes.
    public var spilledObjectCount: Int { state.condition.withLock { state.counters.spilledObjects } }
    public var spilledByteCount: Int { state.condition.withLock { state.counters.spilledBytes } }
    public var restoredObjectCount: Int { state.condition.withLock { state.counters.restoredObjects } }
    public var restoredByteCount: Int { state.condition.withLock { state.counters.restoredBytes } }

    /// Bytes of spill files in the directory now (stored, i.e. compressed, sizes).
    public func spillFileBytes() -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".dfspill") }.reduce(0) { total, name in
            total + ((try? FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)")[.size] as? Int) ?? 0)
        }
    }

    // MARK: Internals

    /// Restores object `id` from its spill file (the store makes room for it through this
    /// manager, its room maker).
    private func restore(_ id: ObjectID) throws(MaterializeError) -> ObjectHandle {
        let handle = try SpillFile.restore(from: path(for: id), into: store)
        // The file now holds this incarnation: spilling it again needs no new write, and
        // deleting it must remove the file.
        try? SpillFile.restampGeneration(at: path(for: id), to: handle.generation)
        try? store.setHasFileCopy(id, true)
        state.condition.withLock {
            state.counters.restoredObjects += 1
            state.counters.restoredBytes += handle.byteCount
        }
        return handle
    }

    /// Removes directories of earlier stores of this name and temporary files of dead writers.
    private func sweepOrphans(root: String) {
        let fileManager = FileManager.default
        let prefix = "\(store.name)-"
        for name in (try? fileManager.contentsOfDirectory(atPath: root)) ?? [] where name.hasPrefix(prefix) {
            let suffix = name.dropFirst(prefix.count)
            if suffix.count == 32, ObjectID(suffix) != nil, ObjectID(suffix) != store.instanceID {
                try? fileManager.removeItem(atPath: "\(root)/\(name)")
            }
        }
        for name in (try? fileManager.contentsOfDirectory(atPath: directory)) ?? [] {
            // "<id>.dfspill.tmp-<pid>-<random>"
            guard let range = name.range(of: ".tmp-") else { continue }
            let pidText = name[range.upperBound...].prefix { $0.isNumber }
            if let pid = Int32(pidText), !_FileSyscall.processExists(pid) {
                _ = _FileSyscall.unlink("\(directory)/\(name)")
            }
        }
    }
}

extension SpillManager: StoreRoomMaker {
    /// The store's room maker: drops idle values that have a file and spills cold idle ones
    /// (see `makeRoom(forByteCount:)`). Returns whether the allocation is worth trying again.
    ///
    /// When it frees nothing because the candidates are being spilled by other threads of this
    /// process right now (producers racing for the same memory), it waits for those spills to
    /// end (at most `inFlightSpillWaitSeconds`) and reports progress, so the allocation is tried
    /// again rather than failed.
    public func makeRoom(forByteCount byteCount: Int, in store: SharedObjectStore) -> Bool {
        guard store === self.store, let candidates = try? store.evictionCandidates(toFit: byteCount) else { return false }
        if candidates.isEmpty { return true }  // it fits now: another thread freed memory meanwhile
        let report = spillCandidates(candidates, until: .max)
        if report.freedBytes > 0 { return true }
        guard report.skipped > 0 else { return false }
        // Another thread took the candidates (spilling them, or getting them): wait for the
        // spills to end, then try again (the caller's rounds are bounded).
        let ids = Set(candidates.map(\.id))
        let deadline = Date().addingTimeInterval(Self.inFlightSpillWaitSeconds)
        state.condition.withLock {
            while !state.inFlight.isDisjoint(with: ids) && Date() < deadline { _ = state.condition.wait(until: deadline) }
        }
        return true
    }

    /// The longest a producer waits for other threads' spills of the objects it would free.
    static let inFlightSpillWaitSeconds = 2.0
}

/// A weak reference to a manager, for its background thread.
final class _WeakSpillManager: @unchecked Sendable {  // `value` is written once, in init
    weak var value: SpillManager?
    init(_ value: SpillManager) { self.value = value }
}
