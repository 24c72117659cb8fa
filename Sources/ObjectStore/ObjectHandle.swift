/// A read-only, zero-copy handle on a sealed object.
///
/// The handle's bytes are the store's bytes: nothing is copied. Copies of a handle share one
/// reference; the object cannot be freed while any copy exists (a `delete` meanwhile waits for
/// the last one). Handles are cheap to copy and may cross threads and tasks.
///
/// - Note: Thread-safe: the bytes are immutable once sealed.
public struct ObjectHandle: Sendable, Hashable, CustomStringConvertible {
    let reference: _ObjectReference

    init(reference: _ObjectReference) {
        self.reference = reference
    }

    /// The object's id.
    public var id: ObjectID { reference.key.id }
    /// The object's size in bytes.
    public var byteCount: Int { reference.byteCount }
    /// The stored type's tag.
    public var typeTag: String { reference.typeTag }
    /// The store the object lives in.
    public var store: SharedObjectStore { reference.store }
    /// This incarnation of the id (ids may be reused after deletion, generations never).
    public var generation: UInt64 { reference.key.generation }
    var payloadOffset: Int { reference.payloadOffset }

    /// Plain data that lets another process attached to the same store get this object.
    public var descriptor: ObjectDescriptor {
        ObjectDescriptor(storeName: store.name, id: id, generation: generation, payloadOffset: payloadOffset, byteCount: byteCount, typeTag: typeTag)
    }

    /// Calls `body` with the object's bytes, in place. Do not escape the pointer: it is valid
    /// only while this handle (or a copy) exists, and the bytes must not be written.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: reference.address, count: reference.byteCount))
    }

    /// Calls `body` with the object's bytes as a `RawSpan` (bounds-checked, in place).
    public func withBytes<R, E: Error>(_ body: (RawSpan) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: reference.address, count: reference.byteCount).bytes)
    }

    /// A copy of the object's bytes.
    public func copyBytes() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    public var description: String { "ObjectHandle(\(id), \(byteCount) bytes, \(typeTag), store '\(store.name)')" }

    public static func == (lhs: ObjectHandle, rhs: ObjectHandle) -> Bool {
        lhs.reference.store === rhs.reference.store && lhs.reference.key == rhs.reference.key
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(reference.key)
    }
}

/// One counted reference of this process on a sealed object; released in `deinit`.
///
/// - Note: Immutable; `@unchecked Sendable` because `address` points into the shared mapping,
///   which the retained `store` keeps mapped, and the bytes there are immutable once sealed.
final class _ObjectReference: @unchecked Sendable {
    let store: SharedObjectStore
    let key: ObjectKey
    let address: UnsafeRawPointer
    let byteCount: Int
    let payloadOffset: Int
    let typeTag: String

    init(store: SharedObjectStore, key: ObjectKey, address: UnsafeRawPointer, byteCount: Int, payloadOffset: Int, typeTag: String) {
        self.store = store
        self.key = key
        self.address = address
        self.byteCount = byteCount
        self.payloadOffset = payloadOffset
        self.typeTag = typeTag
    }

    deinit {
        store.release(key)
    }
}

/// Plain data naming one object of one store: what crosses a pipe, a file or the network so
/// that another process attached to the same store can `get` the object itself. Never a pointer.
///
/// - Note: A value type; thread-safe.
public struct ObjectDescriptor: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The store's name (as given to `SharedObjectStore.create(named:)`).
    public var storeName: String
    public var id: ObjectID
    /// This incarnation of the id: a descriptor of a deleted object is refused as stale.
    public var generation: UInt64
    /// Byte offset of the payload within the store's heap.
    public var payloadOffset: Int
    public var byteCount: Int
    public var typeTag: String

    public init(storeName: String, id: ObjectID, generation: UInt64, payloadOffset: Int, byteCount: Int, typeTag: String) {
        self.storeName = storeName
        self.id = id
        self.generation = generation
        self.payloadOffset = payloadOffset
        self.byteCount = byteCount
        self.typeTag = typeTag
    }

    public var description: String { "\(storeName)/\(id)@\(generation) (\(byteCount) bytes at \(payloadOffset), \(typeTag))" }
}
