import Foundation
import ObjectStore

/// Carries out materialization plans for the values of one run: writes the files a plan asks
/// for, pins `never` values, hands consumers the files they need, and frees or keeps each value
/// when its last consumer is done. The Dataflow scheduler calls it; it knows values, not graphs.
///
/// Files go under the run directory: `values/<name>.dfspill` (kept: results, `always`, `final`
/// leaves) and `exchange/<name>.dfspill` (for consumers that read files; removed with the value).
/// Both directories are mode 0700, files 0600, written safely (see `SpillFile`).
///
/// - Note: Thread-safe: per-value bookkeeping is behind a lock; file I/O runs outside it.
public final class Materializer: @unchecked Sendable {  // `values` is guarded by `lock`
    /// Where one value is and why: what the run log records.
    public struct ValueRecord: Sendable, Equatable, Codable {
        public var id: ObjectID
        public var name: String
        public var policy: MaterializationPolicy
        public var byteCount: Int
        /// Files written for it, by path.
        public var files: [String]
        /// In memory now (false once freed).
        public var inMemory: Bool
        public var remainingConsumers: Int
        public var reason: String
        /// The XXH3-64 of the value's bytes (`ContentHash`), known when its plan wrote a file
        /// as it was registered (the file's raw checksum).
        public var contentHash: UInt64?

        private enum CodingKeys: String, CodingKey { case id, name, policy, byteCount, files, inMemory, remainingConsumers, reason, contentHash }

        /// Reads a record; the run log leaves out an empty `files` and the `name` (its task's).
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            id = try container.decode(ObjectID.self, forKey: .id)
            name = try container.decodeIfPresent(String.self, forKey: .name) ?? ""
            policy = try container.decode(MaterializationPolicy.self, forKey: .policy)
            byteCount = try container.decode(Int.self, forKey: .byteCount)
            files = try container.decodeIfPresent([String].self, forKey: .files) ?? []
            inMemory = try container.decodeIfPresent(Bool.self, forKey: .inMemory) ?? false
            remainingConsumers = try container.decodeIfPresent(Int.self, forKey: .remainingConsumers) ?? 0
            reason = try container.decodeIfPresent(String.self, forKey: .reason) ?? ""
            contentHash = try container.decodeIfPresent(UInt64.self, forKey: .contentHash)
        }

        public init(id: ObjectID, name: String, policy: MaterializationPolicy, byteCount: Int, files: [String], inMemory: Bool, remainingConsumers: Int, reason: String, contentHash: UInt64? = nil) {
            self.contentHash = contentHash
            self.id = id
            self.name = name
            self.policy = policy
            self.byteCount = byteCount
            self.files = files
            self.inMemory = inMemory
            self.remainingConsumers = remainingConsumers
            self.reason = reason
        }
    }

    public let spill: SpillManager
    public let runDirectory: String
    public var store: SharedObjectStore { spill.store }
    /// Where kept values go (`<run directory>/values` unless the caller's layout says otherwise).
    public let valuesDirectory: String
    /// Where values for consumers that read files go (`<run directory>/exchange` by default).
    public let exchangeDirectory: String

    private struct Value {
        var record: ValueRecord
        var plan: MaterializationPlan
        /// The after-last-consumer step ran (it runs once, whatever is reported afterwards).
        var finished = false
    }
    /// Values by id: a dictionary of positions into a dense array, so that registering a value
    /// writes a small dictionary entry and appends to the array (a run registers one per task).
    private struct Table {
        private var positions: [ObjectID: Int] = [:]
        private(set) var entries: [Value] = []

        func position(of id: ObjectID) -> Int? { positions[id] }

        subscript(id: ObjectID) -> Value? {
            positions[id].map { entries[$0] }
        }

        subscript(position position: Int) -> Value {
            get { entries[position] }
            _modify { yield &entries[position] }
        }

        /// The position of `id`'s value; a new id gets the next position (one hash look-up), and
        /// the caller must `append` its value at once.
        mutating func claimPosition(for id: ObjectID) -> (position: Int, isNew: Bool) {
            let next = entries.count
            let position = Self.read(&positions[id, default: next])  // enters `next` if new
            return (position, position == next)
        }

        mutating func append(_ value: Value) { entries.append(value) }

        private static func read(_ slot: inout Int) -> Int { slot }

        mutating func reserveCapacity(_ count: Int) {
            positions.reserveCapacity(count)
            entries.reserveCapacity(count)
        }
    }
    private let lock = _AdaptiveLock()
    private var values = Table()

    /// - Throws: `.ioFailed` naming a directory that cannot be created.
    public init(spill: SpillManager, runDirectory: String, valuesDirectory: String? = nil, exchangeDirectory: String? = nil) throws(MaterializeError) {
        self.spill = spill
        self.runDirectory = runDirectory
        self.valuesDirectory = valuesDirectory ?? "\(runDirectory)/values"
        self.exchangeDirectory = exchangeDirectory ?? "\(runDirectory)/exchange"
        for directory in [runDirectory, self.valuesDirectory, self.exchangeDirectory] {
            try SpillFile.check(_FileSyscall.makeDirectory(directory), "mkdir", directory, "creating run directory")
        }
    }

    /// Creates the object of a value about to be produced, making room under memory pressure
    /// (spilling colder values) and waiting up to `timeout` seconds for room.
    /// - Throws: `.noRoom` naming what pins the memory; `.store`.
    public func create(_ id: ObjectID, byteCount: Int, typeTag: String = "bytes", timeout: Double = 10) throws(MaterializeError) -> ObjectBuilder {
        try spill.create(id, byteCount: byteCount, typeTag: typeTag, waitingUpTo: timeout)
    }

    /// Applies the plan for a value its producer just sealed, and returns where it went and why.
    /// A value with no remaining consumers is finished at once (see `consumerFinished`).
    ///
    /// A task may return its input unchanged (a tensor view passed through): then the object is
    /// already a registered value, and the two merge. Their consumers are counted together, and
    /// the object is kept if either plan keeps it.
    /// - Throws: `.policyConflict`; the errors of writing its file.
    @discardableResult
    public func register(_ handle: ObjectHandle, name: String, policy: MaterializationPolicy, facts: ValueFacts) throws(MaterializeError) -> ValueRecord {
        try register(handle.id, byteCount: handle.byteCount, handle: handle, name: name, policy: policy, facts: facts)
    }

    /// `register(_:name:policy:facts:)` for a value sealed in the store with no handle held (a
    /// small task output put there without a reference): the object is got from the store,
    /// restored if spilled meanwhile, only if its plan writes a file now.
    /// - Throws: `.policyConflict` for `never` (such a value must be registered with a handle:
    ///   held, it cannot be spilled before it is pinned); as `register(_:name:policy:facts:)`.
    @discardableResult
    public func register(_ id: ObjectID, byteCount: Int, name: String, policy: MaterializationPolicy, facts: ValueFacts) throws(MaterializeError) -> ValueRecord {
        guard policy != .never else {
            throw MaterializeError(.policyConflict, "value '\(name)' (\(id)) has policy 'never' and must be registered with a handle held", object: id)
        }
        return try register(id, byteCount: byteCount, handle: nil, name: name, policy: policy, facts: facts)
    }

    private func register(
        _ id: ObjectID, byteCount: Int, handle: ObjectHandle?, name: String, policy: MaterializationPolicy, facts: ValueFacts
    ) throws(MaterializeError) -> ValueRecord {
        let plan = try MaterializationPlan.make(policy: policy, facts: facts, valueName: "value '\(name)' (\(id))")
        if plan.pinnedInMemory {
            do { try store.setPinned(id, true) } catch { throw .store(error, while: "pinning value '\(name)'") }
        }
        var files: [String] = []
        var contentHash: UInt64?
        if let destination = plan.fileAfterSeal {
            let path = self.path(for: name, id, destination)
            let source: ObjectHandle
            if let handle { source = handle } else { source = try spill.get(id) }
            contentHash = try SpillFile.write(source, to: path).rawChecksum
            files.append(path)
        }
        let record = ValueRecord(
            id: id, name: name, policy: policy, byteCount: byteCount, files: files,
            inMemory: true, remainingConsumers: facts.remainingConsumers, reason: plan.reason, contentHash: contentHash)
        // A kept value with no consumers and no files to remove finishes with nothing to do.
        let finishesNow = facts.remainingConsumers <= 0
        let nothingToDo = !plan.freeAfterLastConsumer && (plan.keepFilesAfterLastConsumer || files.isEmpty)
        let (registered, merged, finishing) = lock.withLock { () -> (ValueRecord, Bool, Value?) in
            let (position, isNew) = values.claimPosition(for: id)
            if !isNew && !values[position: position].finished {
                var existing = values[position: position]
                existing.record.remainingConsumers += facts.remainingConsumers
                existing.record.files += files
                existing.record.reason += "; also the output of '\(name)' (passed through unchanged)"
                existing.plan.freeAfterLastConsumer = existing.plan.freeAfterLastConsumer && plan.freeAfterLastConsumer
                existing.plan.keepFilesAfterLastConsumer = existing.plan.keepFilesAfterLastConsumer || plan.keepFilesAfterLastConsumer
                existing.plan.pinnedInMemory = existing.plan.pinnedInMemory || plan.pinnedInMemory
                values[position: position] = existing
                return (existing.record, true, nil)
            }
            // A kept value with no consumers and no files to remove finishes with nothing to do;
            // one with something to do is finished below, once. (A finished value of the same id
            // is replaced.)
            let value = Value(record: record, plan: plan, finished: finishesNow)
            if isNew { values.append(value) } else { values[position: position] = value }
            return (record, false, finishesNow && !nothingToDo ? value : nil)
        }
        if merged { return registered }
        if let finishing { return try finish(id, finishing) }
        return registered
    }

    /// Makes room in the bookkeeping for `count` more values (a run knows how many it makes).
    public func reserveCapacity(_ count: Int) {
        lock.withLock { values.reserveCapacity(values.entries.count + count) }
    }

    /// The value's bytes as a plain file (`exchange/<name>.bin`, see `RawValueFile`) for a
    /// consumer that is a shell command: written on first request, removed with the value.
    /// - Throws: `.policyConflict` for a `never` value; `.fileNotFound` for an unknown value.
    public func rawFile(for id: ObjectID) throws(MaterializeError) -> String {
        let value = try lookup(id)
        let path = self.path(for: value.record.name, id, .exchange, fileExtension: "bin")
        if value.record.files.contains(path) { return path }
        guard value.record.policy != .never else {
            throw MaterializeError(.policyConflict, "value '\(value.record.name)' (\(id)) has policy 'never' and cannot be given to a shell command as a file", object: id)
        }
        let handle = try spill.get(id)
        try RawValueFile.write(handle, to: path)
        lock.withLock { if let position = values.position(of: id) { values[position: position].record.files.append(path) } }
        return path
    }

    /// The file a consumer reads the value from, written now if the value has none yet.
    /// - Throws: `.policyConflict` for a `never` value; `.fileNotFound` for an unknown value.
    public func file(for id: ObjectID) throws(MaterializeError) -> String {
        let value = try lookup(id)
        if let existing = value.record.files.first { return existing }
        guard value.record.policy != .never else {
            throw MaterializeError(.policyConflict, "value '\(value.record.name)' (\(id)) has policy 'never' and cannot be given to a consumer as a file", object: id)
        }
        let handle = try spill.get(id)
        let path = self.path(for: value.record.name, id, .exchange)
        try SpillFile.write(handle, to: path)
        lock.withLock { if let position = values.position(of: id) { values[position: position].record.files.append(path) } }
        return path
    }

    /// One consumer is done with the value; after the last, the value is freed or kept as its
    /// plan says. Returns the updated record.
    @discardableResult
    public func consumerFinished(_ id: ObjectID) throws(MaterializeError) -> ValueRecord {
        let step = lock.withLock { () -> (value: Value, finish: Bool)? in
            guard let position = values.position(of: id) else { return nil }
            let remaining = max(0, values[position: position].record.remainingConsumers - 1)
            values[position: position].record.remainingConsumers = remaining
            // Finish once: a late or repeated report must not delete a new object that reuses the id.
            let finish = remaining == 0 && !values[position: position].finished
            if finish { values[position: position].finished = true }
            return (values[position: position], finish)
        }
        guard let step else { throw unknown(id) }
        return step.finish ? try finish(id, step.value) : step.value.record
    }

    /// One more consumer will read the value (a task that runs again to recompute a lost value
    /// of its own). Returns false, changing nothing, when the value is unknown or already
    /// finished (freed or kept after its last consumer): then that consumer finds it gone, or
    /// reads the kept file.
    @discardableResult
    public func consumerAdded(_ id: ObjectID) -> Bool {
        lock.withLock {
            guard let position = values.position(of: id), !values[position: position].finished else { return false }
            values[position: position].record.remainingConsumers += 1
            return true
        }
    }

    /// Sets how many consumers will still read the value (a recomputed value is read only by
    /// the consumers that had not yet read the lost one); at zero the value is finished at once,
    /// as after its last consumer. Returns the updated record.
    /// - Throws: `.fileNotFound` for an unknown value; as `consumerFinished`.
    @discardableResult
    public func setRemainingConsumers(_ id: ObjectID, _ count: Int) throws(MaterializeError) -> ValueRecord {
        let step = lock.withLock { () -> (value: Value, finish: Bool)? in
            guard let position = values.position(of: id) else { return nil }
            values[position: position].record.remainingConsumers = max(0, count)
            let finish = count <= 0 && !values[position: position].finished
            if finish { values[position: position].finished = true }
            return (values[position: position], finish)
        }
        guard let step else { throw unknown(id) }
        return step.finish ? try finish(id, step.value) : step.value.record
    }

    /// Drops a value that was lost (its file damaged or gone, or evicted from memory): whatever
    /// is left of it in memory and on disk is removed, and it counts as finished, so that no
    /// later report frees anything in its name. Its producer's recomputed value takes its place
    /// under a new id.
    public func forget(_ id: ObjectID) {
        let files = lock.withLock { () -> [String] in
            guard let position = values.position(of: id) else { return [] }
            values[position: position].finished = true
            values[position: position].record.inMemory = false
            defer { values[position: position].record.files = [] }
            return values[position: position].record.files
        }
        try? store.setPinned(id, false)
        try? spill.delete(id)
        for path in files { _ = _FileSyscall.unlink(path) }
    }

    /// The record of a value.
    public func record(for id: ObjectID) throws(MaterializeError) -> ValueRecord { try lookup(id).record }

    /// Every value registered so far.
    public func records() -> [ValueRecord] { lock.withLock { values.entries.map(\.record) } }

    /// How many values are in memory, how many have files (and are no longer in memory), and
    /// how many were freed with no file left: counted in place, without copying a record.
    public func valueCounts() -> (inMemory: Int, inFiles: Int, freed: Int) {
        lock.withLock {
            var counts = (inMemory: 0, inFiles: 0, freed: 0)
            for entry in values.entries {
                if entry.record.inMemory {
                    counts.inMemory += 1
                } else if !entry.record.files.isEmpty {
                    counts.inFiles += 1
                } else {
                    counts.freed += 1
                }
            }
            return counts
        }
    }

    // MARK: Internals

    /// The after-last-consumer step of `value` (already marked finished under the lock): frees
    /// it and removes its files as its plan says, outside the lock, then records that.
    /// - Throws: the store's error when freeing fails (the record then says it is in memory).
    private func finish(_ id: ObjectID, _ value: Value) throws(MaterializeError) -> ValueRecord {
        var record = value.record
        var failure: MaterializeError?
        if value.plan.freeAfterLastConsumer {
            if value.plan.pinnedInMemory { try? store.setPinned(id, false) }
            do {
                try spill.delete(id)
                record.inMemory = false
            } catch where error.storeError?.code == .objectNotFound {
                record.inMemory = false  // already gone from memory and never spilled
            } catch {
                failure = error
            }
        }
        if !value.plan.keepFilesAfterLastConsumer {
            for path in record.files { _ = _FileSyscall.unlink(path) }
            record.files = []
        }
        let finished = record
        lock.withLock {
            guard let position = values.position(of: id) else { return }
            values[position: position].record.inMemory = finished.inMemory
            values[position: position].record.files = finished.files
        }
        if let failure { throw failure }
        return finished
    }

    private func lookup(_ id: ObjectID) throws(MaterializeError) -> Value {
        guard let value = lock.withLock({ values[id] }) else { throw unknown(id) }
        return value
    }

    private func unknown(_ id: ObjectID) -> MaterializeError {
        MaterializeError(.fileNotFound, "no value \(id) is registered with the materializer of run directory '\(runDirectory)'", object: id)
    }

    private func path(for name: String, _ id: ObjectID, _ destination: MaterializationPlan.FileDestination, fileExtension: String = "dfspill") -> String {
        let safe = String(name.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" }.prefix(100))
        let directory = destination == .runDirectory ? valuesDirectory : exchangeDirectory
        // A name changed by sanitising could meet another ("out/a", "out_a"): add its id.
        let file = safe == name && !safe.isEmpty ? safe : "\(safe)-\(id.description.prefix(16))"
        return "\(directory)/\(file).\(fileExtension)"
    }
}
