import Foundation  // NSLock: a pthread mutex, which ThreadSanitizer understands

/// A named object store in shared memory that several processes use at once.
///
/// A store is one POSIX shared-memory segment (`/dev/shm/dataflow.<name>`, mode 0600) that holds
/// a header, a process table, an object table and a heap. Every attached process maps the whole
/// segment once; objects are blocks of the heap, so handing an object to another process hands
/// over an offset, never bytes.
///
/// Object lifecycle: `create(_:byteCount:)` gives the producer an `ObjectBuilder` whose bytes are
/// *inside* the segment (no staging copy) → `seal()` makes the object immutable and visible →
/// `get(_:)` gives any number of readers a zero-copy `ObjectHandle`, each counting a reference →
/// dropping the last copy of a handle gives the reference back → `delete(_:)` frees the bytes, at
/// once or as soon as no process holds a reference. See `ObjectState`.
///
/// Crash safety: an object whose creator dies before sealing it is reclaimed; references held by
/// a process that died are released; a process that dies holding the store's lock cannot block
/// the others (the lock is a robust mutex; the next locker rebuilds the bookkeeping from the
/// object table). Dead processes are found when a process attaches, when an allocation does not
/// fit, and on `reclaimDeadProcesses()`.
///
/// Ownership: the store object owns this process's mapping. Handles and builders keep it alive;
/// the mapping is unmapped once the store and all of them are gone. The segment itself lives on
/// until `SharedObjectStore.remove(named:)`. Within one process, `attach` returns the instance
/// that already maps a store of that name, so a process never maps a store twice.
///
/// - Note: `SharedObjectStore` is thread-safe: every operation takes the segment's lock, which
///   serialises the threads of all processes.
public final class SharedObjectStore: Sendable {
    /// The store's name (without the "dataflow." prefix).
    public let name: String
    /// Bytes of heap for object blocks (each object also takes a 64-byte block header).
    public let capacityBytes: Int
    /// The most objects (live or pending deletion) the store holds at once.
    public let maxObjects: Int
    /// A random id chosen when the store was created: tells it from an earlier or later store
    /// of the same name (for example to recognise spill files a previous store left behind).
    public let instanceID: ObjectID

    let segment: _MappedSegment
    /// This process's slot in the process table.
    let processSlot: Int
    let local: _ProcessLocalState
    /// Whom this process's allocations ask for room (see `StoreRoomMaker`).
    let roomMakerSlot = _RoomMakerSlot()

    private init(segment: _MappedSegment, processSlot: Int) {
        self.segment = segment
        self.name = segment.name
        self.capacityBytes = segment.view.heapCapacity
        self.maxObjects = segment.view.maxObjects
        self.instanceID = ObjectID(
            high: segment.view.header.u64(_Layout.instanceIDOffset), low: segment.view.header.u64(_Layout.instanceIDOffset + 8))
        self.processSlot = processSlot
        self.local = _ProcessLocalState()
    }

    deinit {
        _ = try? Self.registry.withLock { stores throws(ObjectStoreError) in
            if let entry = stores[name], entry.store == nil || entry.store === self { stores[name] = nil }
        }
        // Every handle and builder is gone (they retain the store), so this process holds no
        // reference and creates nothing: giving up the slot is all that is left.
        _ = try? withLock { view, _ in view.processSlot(processSlot).detach() }
    }

    // MARK: Creating, attaching, removing

    /// Creates a store of `capacityBytes` heap bytes and attaches this process to it.
    ///
    /// The whole segment is reserved in /dev/shm at once (`posix_fallocate`), so running out of
    /// shared memory is an error here, never a `SIGBUS` later.
    ///
    /// - Parameters:
    ///   - name: 1–200 characters from `[A-Za-z0-9._-]`; the segment is `/dev/shm/dataflow.<name>`.
    ///   - capacityBytes: heap bytes, at least 64 KiB (rounded up to a multiple of 64).
    ///   - options: object-table size and pre-faulting.
    /// - Throws: `.invalidName`, `.invalidSize`, `.invalidOption`, `.storeExists`,
    ///   `.outOfMemory` (/dev/shm cannot hold it), `.systemCallFailed`.
    /// - Complexity: O(capacity) for the reservation (about 0.1 s per GiB here), plus the same
    ///   again when `options.prefault` is set.
    public static func create(named name: String, capacityBytes: Int, options: StoreOptions = StoreOptions()) throws(ObjectStoreError) -> SharedObjectStore {
        try _MappedSegment.validate(name: name)
        guard capacityBytes >= 64 * 1024, capacityBytes <= _Layout.maximumHeapCapacity else {
            throw ObjectStoreError(.invalidSize, "store '\(name)': capacity \(capacityBytes) bytes is outside 64 KiB ... \(_Layout.maximumHeapCapacity) bytes", store: name)
        }
        let capacity = _Layout.roundUp(capacityBytes, to: _Layout.blockAlignment)
        let maxObjects = options.maxObjects ?? StoreOptions.defaultMaxObjects(forCapacity: capacity)
        guard maxObjects >= 1, maxObjects <= StoreOptions.maximumMaxObjects else {
            throw ObjectStoreError(.invalidOption, "store '\(name)': maxObjects \(maxObjects) is outside 1 ... \(StoreOptions.maximumMaxObjects)", store: name)
        }
        let geometry = _Layout.Geometry(heapCapacity: capacity, tableSlotCount: _Layout.Geometry.tableSlotCount(forMaxObjects: maxObjects))
        return try registry.withLock { stores throws(ObjectStoreError) -> SharedObjectStore in
            let segment = try _MappedSegment.create(name: name, geometry: geometry, maxObjects: maxObjects, prefault: options.prefault)
            let store = try register(segment, in: &stores)
            return store
        }
    }

    /// Attaches this process to the existing store `name`, or returns the instance that already
    /// maps it in this process.
    ///
    /// Attaching first releases whatever processes that died still held (see
    /// `reclaimDeadProcesses()`).
    ///
    /// - Throws: `.invalidName`; `.storeNotFound` if there is no such store; `.incompatibleFormat`
    ///   for a segment that is not a store or has another format version; `.foreignOwner` for a
    ///   store made by another user; `.tooManyProcesses` when all 64 process slots are taken by
    ///   live processes; `.systemCallFailed`.
    public static func attach(named name: String, options: AttachOptions = AttachOptions()) throws(ObjectStoreError) -> SharedObjectStore {
        try _MappedSegment.validate(name: name)
        return try registry.withLock { stores throws(ObjectStoreError) -> SharedObjectStore in
            if let existing = stores[name]?.store { return existing }
            let segment = try _MappedSegment.attach(name: name, prefault: options.prefault)
            return try register(segment, in: &stores)
        }
    }

    /// Removes the store's name from /dev/shm. Processes that have it mapped keep using it; its
    /// memory is returned to the system when the last of them unmaps it. New attaches fail.
    ///
    /// - Throws: `.invalidName`; `.storeNotFound` if there is no such store; `.systemCallFailed`.
    /// - Note: The corresponding C call is `shm_unlink`.
    public static func remove(named name: String) throws(ObjectStoreError) {
        try _MappedSegment.validate(name: name)
        switch _Syscall.shmUnlink(_MappedSegment.systemName(for: name)) {
        case .success: return
        case .failure(.noSuchFileOrDirectory):
            throw ObjectStoreError(.storeNotFound, "no store named '\(name)' exists", store: name)
        case .failure(let errno):
            throw .syscall("shm_unlink", errno, while: "removing store '\(name)'", store: name)
        }
    }

    /// Checks that `name` can name a store: 1–200 characters from `[A-Za-z0-9._-]`, not
    /// starting with `.` (it becomes the file name `/dev/shm/dataflow.<name>`).
    /// - Throws: `.invalidName`.
    public static func validate(name: String) throws(ObjectStoreError) {
        try _MappedSegment.validate(name: name)
    }

    /// Whether a store named `name` exists in /dev/shm (false for an invalid name).
    public static func exists(named name: String) -> Bool {
        guard (try? _MappedSegment.validate(name: name)) != nil else { return false }
        switch _Syscall.shmOpen(_MappedSegment.systemName(for: name), create: false, exclusive: false, mode: 0) {
        case .success(let fd):
            _Syscall.close(fd)
            return true
        case .failure(let errno):
            return errno != .noSuchFileOrDirectory
        }
    }

    /// Registers this process in the segment's process table and in the per-process registry.
    private static func register(_ segment: _MappedSegment, in stores: inout [String: _WeakStore]) throws(ObjectStoreError) -> SharedObjectStore {
        let pid = _Syscall.processID()
        guard case .running(let startTime) = _Syscall.processStatus(pid) else {
            throw ObjectStoreError(.systemCallFailed, "cannot read /proc/\(pid)/stat to register this process with store '\(segment.name)'", store: segment.name)
        }
        let slot = try Self.locked(segment) { view throws(ObjectStoreError) -> Int in
            _ = view.sweepDeadProcesses(ownSlot: -1)
            guard let slot = view.registerProcess(pid: pid, startTime: startTime) else {
                let pids = view.attachedProcesses().map(\.pid)
                throw ObjectStoreError(.tooManyProcesses, "store '\(segment.name)' already has \(_Layout.processSlotCount) live processes attached (pids \(pids))", store: segment.name)
            }
            return slot
        }
        let store = SharedObjectStore(segment: segment, processSlot: slot)
        stores[segment.name] = _WeakStore(store)
        return store
    }

    // MARK: The lock

    /// Runs `body` holding the segment's lock. If the previous holder died holding it, the
    /// bookkeeping is rebuilt from the object table first (see SegmentView+Recovery.swift).
    @inline(__always)
    func withLock<R>(_ body: (_SegmentView, _ProcessLocalState) throws(ObjectStoreError) -> R) throws(ObjectStoreError) -> R {
        try Self.locked(segment) { view throws(ObjectStoreError) -> R in try body(view, local) }
    }

    @inline(__always)
    static func locked<R>(_ segment: _MappedSegment, _ body: (_SegmentView) throws(ObjectStoreError) -> R) throws(ObjectStoreError) -> R {
        let view = segment.view
        switch _Syscall.lock(view.mutexAddress) {
        case .success(.acquired):
            break
        case .success(.acquiredFromDeadOwner):
            _ = view.rebuildAfterOwnerDeath()
            // The dead owner's references and unsealed objects go too (no live process is
            // mistaken for dead: see `isProcessAlive`).
            _ = view.sweepDeadProcesses(ownSlot: -1)
            _Syscall.markConsistent(view.mutexAddress)
        case .failure(let errno):
            throw .syscall("pthread_mutex_lock", errno, while: "locking store '\(segment.name)'", store: segment.name, code: .storeCorrupted)
        }
        defer { _Syscall.unlock(view.mutexAddress) }
        return try body(view)
    }

    // MARK: Per-process registry

    private static let registry = _StoreRegistry()
}

/// The stores this process has mapped, by name, so that it maps each at most once.
///
/// - Note: Thread-safe: every access holds `lock`. (An `NSLock`, not `Synchronization.Mutex`:
///   on Linux the latter is a bare futex that ThreadSanitizer cannot see, and reports races.)
final class _StoreRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var stores: [String: _WeakStore] = [:]

    func withLock<R>(_ body: (inout [String: _WeakStore]) throws(ObjectStoreError) -> R) throws(ObjectStoreError) -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&stores)
    }
}

/// A weak reference to a store, for the per-process registry.
struct _WeakStore {
    weak var store: SharedObjectStore?
    init(_ store: SharedObjectStore) { self.store = store }
}

/// State of this process's use of one store that other processes need not see.
///
/// - Note: Not synchronised by itself: every access happens while holding the segment's lock
///   (through `SharedObjectStore.withLock`), which also orders the threads of this process.
final class _ProcessLocalState: @unchecked Sendable {
    /// References this process holds, by object (id and generation). The shared `holders` bit of
    /// the object is set exactly while the count is above zero.
    var referenceCounts: [ObjectKey: Int] = [:]
    /// Type indices already looked up in the segment's type table (which is append-only).
    var typeIndices: [String: Int] = [:]
    /// Type names by index, the other way round.
    var typeNames: [Int: String] = [:]
}

/// One object incarnation: an id may be reused after deletion, a generation never is.
struct ObjectKey: Hashable {
    let id: ObjectID
    let generation: UInt64

    /// One mixing step instead of SipHash (see `ObjectID._rawHashValue`): this process's
    /// reference counts are looked up twice per object made.
    func _rawHashValue(seed: Int) -> Int {
        id._rawHashValue(seed: seed ^ Int(truncatingIfNeeded: generation &* 0x9e37_79b9_7f4a_7c15))
    }
}
