/// The producer's side of an object being created: a writable region *inside* the shared
/// segment. Write the bytes in place, then `seal()`.
///
/// Ownership: a builder is the only owner of its object until it is sealed. Dropping an
/// unsealed builder (or calling `abort()`) frees the object; if the process dies first, the
/// store reclaims it. After `seal()` the object is immutable: every write throws `.objectSealed`.
///
/// - Note: `~Copyable`, so exactly one owner writes. Not thread-safe: write from one thread at
///   a time, or hand disjoint ranges of `withUnsafeMutableBytes` to threads yourself.
public struct ObjectBuilder: ~Copyable {
    let store: SharedObjectStore
    let key: ObjectKey
    /// Safe to keep: the store (retained above) keeps the segment mapped, and the block belongs
    /// to this builder until it is sealed or aborted.
    let address: UnsafeMutableRawPointer
    /// The object's size in bytes.
    public let byteCount: Int
    let payloadOffset: Int
    /// The stored type's tag.
    public let typeTag: String
    private var isSealed = false

    init(store: SharedObjectStore, key: ObjectKey, address: UnsafeMutableRawPointer, byteCount: Int, payloadOffset: Int, typeTag: String) {
        self.store = store
        self.key = key
        self.address = address
        self.byteCount = byteCount
        self.payloadOffset = payloadOffset
        self.typeTag = typeTag
    }

    deinit {
        if !isSealed { store.abort(key) }
    }

    /// The object's id.
    public var id: ObjectID { key.id }

    /// Whether `seal()` has run.
    public var sealed: Bool { isSealed }

    /// A descriptor another process can use to find this object once it is sealed.
    public var descriptor: ObjectDescriptor {
        ObjectDescriptor(storeName: store.name, id: key.id, generation: key.generation, payloadOffset: payloadOffset, byteCount: byteCount, typeTag: typeTag)
    }

    /// Calls `body` with the object's bytes, writable in place. The bytes start uninitialised
    /// (whatever the block held before); every byte the readers need must be written.
    /// Do not escape the pointer.
    /// - Throws: `.objectSealed` after `seal()`; whatever `body` throws.
    @discardableResult
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        try checkWritable()
        return try body(UnsafeMutableRawBufferPointer(start: address, count: byteCount))
    }

    /// Calls `body` with the object's bytes as a `MutableRawSpan` (bounds-checked, in place).
    /// - Throws: `.objectSealed` after `seal()`; whatever `body` throws.
    @discardableResult
    public func withMutableBytes<R>(_ body: (inout MutableRawSpan) throws -> R) throws -> R {
        try checkWritable()
        var span = UnsafeMutableRawBufferPointer(start: address, count: byteCount).mutableBytes
        return try body(&span)
    }

    /// Copies `bytes` into the object at `offset`.
    /// - Throws: `.objectSealed` after `seal()`; `.invalidSize` if the range leaves the object.
    public func write(_ bytes: UnsafeRawBufferPointer, atByteOffset offset: Int) throws(ObjectStoreError) {
        try checkWritable()
        guard offset >= 0, bytes.count <= byteCount - offset else {
            throw ObjectStoreError(.invalidSize, "writing \(bytes.count) bytes at offset \(offset) leaves object \(key.id) of \(byteCount) bytes", store: store.name, object: key.id)
        }
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        ParallelCopy.copy(to: address + offset, from: source, byteCount: bytes.count)
    }

    /// Copies `bytes` into the object at `offset`.
    /// - Throws: `.objectSealed` after `seal()`; `.invalidSize` if the range leaves the object.
    public func write(_ bytes: [UInt8], atByteOffset offset: Int = 0) throws(ObjectStoreError) {
        let result = bytes.withUnsafeBytes { buffer in Result { () throws(ObjectStoreError) in try write(buffer, atByteOffset: offset) } }
        try result.get()
    }

    /// Makes the object immutable and visible to `get` in every process, and returns a handle on
    /// it (which counts a reference; drop it if you do not need it).
    /// - Throws: `.alreadySealed` the second time; `.objectNotFound` if the store reclaimed it.
    @discardableResult
    public mutating func seal() throws(ObjectStoreError) -> ObjectHandle {
        guard !isSealed else {
            throw ObjectStoreError(.alreadySealed, "object \(key.id) in store '\(store.name)' is already sealed", store: store.name, object: key.id)
        }
        let handle = try store.seal(key, typeTag: typeTag)
        isSealed = true
        return handle
    }

    /// Abandons the object: its bytes are freed now, and its id is free again.
    public consuming func abort() {
        // deinit frees the unsealed object.
    }

    private func checkWritable() throws(ObjectStoreError) {
        guard !isSealed else {
            throw ObjectStoreError(.objectSealed, "object \(key.id) in store '\(store.name)' is sealed and can no longer be written", store: store.name, object: key.id)
        }
    }
}
