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

    private let condition = NSCondition()
    private var inFlight: Set<ObjectID> = []
    private var background: Thread?
    private var stopping = false
    private var wakeRequested = false
    private var completedRounds = 0
    private var counters = Counters()

    struct Counters {
        var spilledObjects = 0, spilledBytes = 0, restoredObjects = 0, restoredBytes = 0
    }

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
    }

    deinit {
        stopBackgroundSpilling()
    }

    // MARK: Paths

    /// Where object `id`'s spill file lives (whether or not it exists).
    public func path(for id: ObjectID) -> String { "\(directory)/\(id).dfspill" }

    /// Whether object `id` has a spill file.
    public func hasSpillFile(_ id: ObjectID) -> Bool { FileManager.default.fileExists(atPath: path(for: id)) }

    // MARK: Spill, restore, delete

    /// Writes object `id`'s spill file (unless it has one) and frees it from memory if nobody
    /// holds it. The store's lock is not held during the I/O.
    /// - Throws: `.store` (no such sealed object), `.ioFailed`, `.compressionFailed`.
    @discardableResult
    public func spill(_ id: ObjectID) throws(MaterializeError) -> SpillOutcome {
        var wrote = false
        do {
            let handle: ObjectHandle
            do { handle = try store.get(id) } catch { throw MaterializeError.store(error, while: "spilling object \(id)") }
            if !hasSpillFile(id) {
                try SpillFile.write(handle, to: path(for: id))
                wrote = true
            }
        }  // the handle is released here, so the object can be evicted
        let evicted: Bool
        do { evicted = try !store.evict([id]).isEmpty } catch { throw .store(error, while: "evicting spilled object \(id)") }
        if evicted {
            condition.withLock {
                counters.spilledObjects += 1
                counters.spilledBytes += (try? SpillFile.readHeader(at: path(for: id)).rawByteCount) ?? 0
            }
        }
        return SpillOutcome(wroteFile: wrote, evicted: evicted)
    }

    /// A handle on object `id`: from memory, or restored from its spill file (making room by
    /// spilling colder objects if needed). If another thread or process is restoring the same
    /// object, waits for it.
    /// - Throws: `.store` wrapping `.objectNotFound` when the object is neither in memory nor
    ///   spilled; the spill-file errors of `SpillFile.restore` (e.g. `.corruptedFile`);
    ///   `.noRoom` if it cannot be made to fit.
    public func get(_ id: ObjectID) throws(MaterializeError) -> ObjectHandle {
        let deadline = Date().addingTimeInterval(Self.restoreWaitSeconds)
        while true {
            do {
                return try store.get(id)
            } catch where error.code == .objectNotSealed && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.001)  // being restored by someone else
                continue
            } catch where error.code == .objectNotFound && hasSpillFile(id) {
                // fall through to restore
            } catch {
                throw .store(error, while: "getting object \(id)")
            }
            do {
                let handle = try restore(id, deadline: deadline)
                return handle
            } catch where error.storeError?.code == .objectExists {
                continue  // someone else restored it meanwhile
            }
        }
    }

    /// Reads object `id` as a `V`, restoring it first if it was spilled.
    public func get<V: StoreValue>(_ id: ObjectID, as type: V.Type = V.self) throws(MaterializeError) -> V {
        let handle = try get(id)
        do { return try handle.decode(as: type) } catch { throw .store(error, while: "decoding object \(id)") }
    }

    /// Deletes object `id` from memory and removes its spill file.
    /// - Throws: `.store` wrapping `.objectNotFound` when it is in neither place.
    public func delete(_ id: ObjectID) throws(MaterializeError) {
        var storeError: ObjectStoreError?
        do { try store.delete(id) } catch where error.code == .objectNotFound { storeError = error } catch {
            throw .store(error, while: "deleting object \(id)")
        }
        switch _FileSyscall.unlink(path(for: id)) {
        case .success: return
        case .failure(.noSuchFileOrDirectory):
            if let storeError { throw .store(storeError, while: "deleting object \(id)") }
        case .failure(let errno): throw .io("unlink", errno, path: path(for: id), while: "removing spill file")
        }
    }

    // MARK: Memory pressure

    /// Spills cold objects until allocated bytes are below the low watermark, if they are above
    /// the high one (or, with `force`, whatever the usage). Runs on the calling thread.
    @discardableResult
    public func relieveMemoryPressure(force: Bool = false) -> PressureReport {
        guard let statistics = try? store.statistics() else { return PressureReport() }
        let capacity = Double(statistics.capacityBytes)
        guard force || Double(statistics.allocatedBytes) > watermarks.high * capacity else { return PressureReport() }
        let target = statistics.allocatedBytes - Int(watermarks.low * capacity)
        let candidates = (try? store.idleObjectsLeastRecentlyUsedFirst()) ?? []
        return spillCandidates(candidates, until: target)
    }

    /// Spills cold objects until one of `byteCount` bytes fits (a contiguous block).
    @discardableResult
    public func makeRoom(forByteCount byteCount: Int) -> PressureReport {
        let candidates = (try? store.evictionCandidates(toFit: byteCount)) ?? []
        return spillCandidates(candidates, until: .max)
    }

    private func spillCandidates(_ candidates: [EvictionCandidate], until target: Int) -> PressureReport {
        var report = PressureReport()
        for candidate in candidates where report.freedBytes < target {
            let claimed = condition.withLock { inFlight.insert(candidate.id).inserted }
            guard claimed else { continue }
            defer { _ = condition.withLock { inFlight.remove(candidate.id) } }
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

    /// Creates object `id`, making room when the store is full: spills colder objects (on the
    /// background thread if one runs, else here) and waits for room up to `timeout` seconds
    /// (values pinned by `never` and objects in use can only be freed by their consumers).
    /// - Throws: `.noRoom` naming what pins the memory; `.store` for other store errors.
    public func create(_ id: ObjectID, byteCount: Int, typeTag: String = "bytes", waitingUpTo timeout: Double = 10) throws(MaterializeError) -> ObjectBuilder {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            do {
                return try store.create(id, byteCount: byteCount, typeTag: typeTag)
            } catch where error.code == .outOfMemory {
                if Date() >= deadline {
                    var failure = MaterializeError(
                        .noRoom,
                        "object \(id) of \(byteCount) bytes found no room in store '\(store.name)' within \(timeout) s: \(error.capacity.map(\.description) ?? error.message)",
                        object: id)
                    failure.storeError = error
                    throw failure
                }
                if isBackgroundSpillingRunning {
                    waitForBackgroundRound(requesting: true, timeout: min(0.05, max(0, deadline.timeIntervalSinceNow)))
                } else if makeRoom(forByteCount: byteCount).spilledObjects == 0 {
                    Thread.sleep(forTimeInterval: 0.005)  // nothing spillable now: wait for consumers to free memory
                }
            } catch {
                throw .store(error, while: "creating object \(id)")
            }
        }
    }

    // MARK: Background spilling

    /// Starts a thread that relieves memory pressure whenever usage passes the high watermark
    /// (checked every `pollInterval` seconds, and at once when a producer runs short).
    public func startBackgroundSpilling(pollInterval: Double = 0.01) {
        condition.withLock {
            guard background == nil else { return }
            stopping = false
            let thread = Thread { [weak self] in self?.backgroundLoop(pollInterval: pollInterval) }
            thread.name = "dataflow-spill-\(store.name)"
            background = thread
            thread.start()
        }
    }

    /// Stops the background thread after its current round.
    public func stopBackgroundSpilling() {
        condition.withLock {
            guard background != nil else { return }
            stopping = true
            condition.broadcast()
            while background != nil { condition.wait() }
        }
    }

    public var isBackgroundSpillingRunning: Bool { condition.withLock { background != nil } }

    private func backgroundLoop(pollInterval: Double) {
        while true {
            let stop = condition.withLock { () -> Bool in
                if !stopping && !wakeRequested { _ = condition.wait(until: Date().addingTimeInterval(pollInterval)) }
                wakeRequested = false
                return stopping
            }
            if stop { break }
            relieveMemoryPressure()
            condition.withLock {
                completedRounds += 1
                condition.broadcast()  // producers waiting for room try again
            }
        }
        condition.withLock {
            background = nil
            condition.broadcast()
        }
    }

    /// Wakes the background thread (optionally) and waits until it finished a round or `timeout`.
    private func waitForBackgroundRound(requesting: Bool, timeout: Double) {
        condition.withLock {
            let start = completedRounds
            if requesting {
                wakeRequested = true
                condition.broadcast()
            }
            let deadline = Date().addingTimeInterval(timeout)
            while completedRounds == start && background != nil && Date() < deadline {
                _ = condition.wait(until: deadline)
            }
        }
    }

    // MARK: Statistics

    /// Objects spilled and restored by this manager, and their bytes.
    public var spilledObjectCount: Int { condition.withLock { counters.spilledObjects } }
    public var spilledByteCount: Int { condition.withLock { counters.spilledBytes } }
    public var restoredObjectCount: Int { condition.withLock { counters.restoredObjects } }
    public var restoredByteCount: Int { condition.withLock { counters.restoredBytes } }

    /// Bytes of spill files in the directory now (stored, i.e. compressed, sizes).
    public func spillFileBytes() -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".dfspill") }.reduce(0) { total, name in
            total + ((try? FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)")[.size] as? Int) ?? 0)
        }
    }

    // MARK: Internals

    private func restore(_ id: ObjectID, deadline: Date) throws(MaterializeError) -> ObjectHandle {
        while true {
            do {
                let handle = try SpillFile.restore(from: path(for: id), into: store)
                condition.withLock {
                    counters.restoredObjects += 1
                    counters.restoredBytes += handle.byteCount
                }
                return handle
            } catch where error.storeError?.code == .outOfMemory && Date() < deadline {
                let needed = (try? SpillFile.readHeader(at: path(for: id)).rawByteCount) ?? 0
                if makeRoom(forByteCount: needed).spilledObjects == 0 { Thread.sleep(forTimeInterval: 0.005) }
            }
        }
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
