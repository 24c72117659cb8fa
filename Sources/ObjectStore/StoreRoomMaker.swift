import Synchronization

/// The one component a store asks for room when an allocation does not fit: every path that
/// makes an object (`create`, `put`, `makeTensor`, small values, restores) calls it, with no
/// store lock held, before it gives up with `.outOfMemory`. Materialize's `SpillManager` is
/// the implementation: it drops idle values that already have a file, then spills cold idle
/// values to files, until the object fits.
///
/// A store holds its room maker weakly (the maker owns the store, not the other way round), one
/// per process and store: the last one set wins.
///
/// - Note: Implementations must be thread-safe: any thread that allocates may call them, and
///   several at once.
public protocol StoreRoomMaker: AnyObject, Sendable {
    /// Frees memory of `store` so that an object of `byteCount` payload bytes fits, if it can.
    /// Called on the allocating thread with no store lock held; must not wait for other
    /// processes or tasks to free memory (the caller decides whether to wait).
    /// - Returns: whether the allocation is worth trying again (memory was freed, or the object
    ///   fits now because another thread freed some); false when nothing could be freed.
    func makeRoom(forByteCount byteCount: Int, in store: SharedObjectStore) -> Bool
}

/// The room maker a store calls (a weak reference, behind a mutex).
///
/// - Note: Thread-safe.
final class _RoomMakerSlot: Sendable {
    private struct Weak: @unchecked Sendable {  // the referent is Sendable; the box is only read under the mutex
        weak var maker: (any StoreRoomMaker)?
    }
    private let slot = Mutex(Weak())

    var maker: (any StoreRoomMaker)? { slot.withLock { $0.maker } }

    func set(_ maker: (any StoreRoomMaker)?) { slot.withLock { $0.maker = maker } }

    /// Clears the slot if it holds `maker` (a maker going away must not clear a newer one).
    func clear(ifIs maker: any StoreRoomMaker) {
        slot.withLock { if $0.maker === maker || $0.maker == nil { $0.maker = nil } }
    }
}

extension SharedObjectStore {
    /// Sets the component this process's allocations in this store ask for room (see
    /// `StoreRoomMaker`); nil: none (an allocation that does not fit fails at once).
    public func setRoomMaker(_ maker: (any StoreRoomMaker)?) { roomMakerSlot.set(maker) }

    /// Removes `maker` as this store's room maker, if it is the one set.
    public func clearRoomMaker(ifIs maker: any StoreRoomMaker) { roomMakerSlot.clear(ifIs: maker) }

    /// Whether a room maker is set for this store in this process.
    public var hasRoomMaker: Bool { roomMakerSlot.maker != nil }

    /// Runs `allocate`; when it fails with `.outOfMemory` (and `eviction` is `.none`), asks the
    /// room maker for room for `byteCount` bytes and tries again, as long as the maker frees
    /// something (at most 64 rounds: other threads may take what it frees).
    func withRoom<R>(
        forByteCount byteCount: Int, eviction: EvictionPolicy, _ allocate: () throws(ObjectStoreError) -> R
    ) throws(ObjectStoreError) -> R {
        var rounds = 0
        while true {
            do throws(ObjectStoreError) {
                return try allocate()
            } catch {
                guard error.code == .outOfMemory, eviction == .none, rounds < 64, let maker = roomMakerSlot.maker,
                    maker.makeRoom(forByteCount: byteCount, in: self)
                else { throw error }
                rounds += 1
            }
        }
    }
}
