/// An immutable n-dimensional array of `Scalar`s in row-major order, contiguous in memory.
///
/// A tensor read from a store (`store.get(id, as: Tensor<Float>.self)`) is a *view* of the
/// store's bytes: no copy is made, and the view keeps the object alive (it holds a handle).
/// A tensor made with `store.makeTensor(...)` is written in place and is such a view too.
/// A tensor made from an array (`Tensor(shape:scalars:)`) lives in ordinary memory; putting it in
/// a store copies it once.
///
/// Stored form (tag `tensor<SCALAR>`, e.g. `tensor<float32>`), little-endian:
///
///     0 magic "TNSR" (UInt32 0x524e_534e)   4 rank (UInt32)   8 scalar byte size (UInt32)
///     12 zero (UInt32)   16 shape (rank × Int64)   then zero padding to a multiple of 64
///     then the scalars (product of shape × scalar size bytes), 64-byte aligned.
///
/// - Note: Thread-safe: immutable, and its storage is immutable.
public struct Tensor<Scalar: TensorScalar>: RandomAccessCollection, CustomStringConvertible {
    /// The size of each dimension; empty for a scalar (one element).
    public let shape: [Int]
    /// Keeps the scalars alive: an `_ObjectReference` (store-backed) or `_TensorHeapStorage`.
    let owner: AnyObject & Sendable
    /// The first scalar. Safe to keep: `owner` keeps the memory alive and nobody writes it.
    let base: UnsafePointer<Scalar>
    /// Number of scalars: the product of `shape`.
    public let count: Int

    /// The largest supported rank.
    public static var maximumRank: Int { 32 }

    /// The tag of tensors of this scalar type, e.g. `tensor<float32>`.
    public static var typeTag: String { "tensor<\(Scalar.scalarTypeName)>" }

    // MARK: Making tensors in ordinary memory

    /// A tensor holding a copy of `scalars`.
    /// - Throws: `.invalidSize` if `scalars.count` is not the product of `shape`, or a
    ///   dimension is negative.
    public init(shape: [Int], scalars: [Scalar]) throws(ObjectStoreError) {
        let count = try Self.scalarCount(of: shape)
        guard count == scalars.count else {
            throw ObjectStoreError(.invalidSize, "tensor of shape \(shape) needs \(count) scalars, got \(scalars.count)")
        }
        let storage = _TensorHeapStorage<Scalar>(count: count)
        scalars.withUnsafeBufferPointer { source in
            _ = storage.buffer.initialize(from: source)
        }
        self.init(shape: shape, owner: storage, base: UnsafePointer(storage.buffer.baseAddress!), count: count)
    }

    /// A one-dimensional tensor holding a copy of `scalars`.
    public init(_ scalars: [Scalar]) {
        // A 1-D shape always matches its own count.
        try! self.init(shape: [scalars.count], scalars: scalars)
    }

    init(shape: [Int], owner: AnyObject & Sendable, base: UnsafePointer<Scalar>, count: Int) {
        self.shape = shape
        self.owner = owner
        self.base = base
        self.count = count
    }

    // MARK: Reading

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    /// The scalar at flat (row-major) position `position`.
    public subscript(position: Int) -> Scalar {
        precondition(position >= 0 && position < count, "tensor index \(position) out of range 0..<\(count)")
        return base[position]
    }

    /// Calls `body` with the scalars in place. Do not escape the pointer.
    public func withUnsafeBufferPointer<R, E: Error>(_ body: (UnsafeBufferPointer<Scalar>) throws(E) -> R) throws(E) -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    /// Calls `body` with the scalars as a `Span` (bounds-checked, in place).
    public func withSpan<R, E: Error>(_ body: (Span<Scalar>) throws(E) -> R) throws(E) -> R {
        try body(UnsafeBufferPointer(start: base, count: count).span)
    }

    /// A copy of the scalars in an array.
    public var scalars: [Scalar] { Array(UnsafeBufferPointer(start: base, count: count)) }

    /// The store object this tensor is a view of, or nil for a tensor in ordinary memory.
    public var handle: ObjectHandle? {
        (owner as? _ObjectReference).map(ObjectHandle.init(reference:))
    }

    /// The store object this tensor is a view of (`StoreValue`'s name for `handle`).
    public var storeHandle: ObjectHandle? { handle }

    /// Bytes of scalar data.
    public var scalarByteCount: Int { count * MemoryLayout<Scalar>.stride }

    public var description: String {
        "Tensor<\(Scalar.scalarTypeName)>(shape: \(shape)\(handle.map { ", in store '\($0.store.name)' as \($0.id)" } ?? ""))"
    }

    // MARK: Layout

    static var magic: UInt32 { 0x524e_534e }

    /// Byte offset of the scalars: the header rounded up to 64 bytes.
    static func dataOffset(rank: Int) -> Int { _Layout.roundUp(16 + 8 * rank, to: 64) }

    /// The product of `shape`, checked for negative dimensions and overflow.
    static func scalarCount(of shape: [Int]) throws(ObjectStoreError) -> Int {
        guard shape.count <= maximumRank else {
            throw ObjectStoreError(.invalidSize, "tensor rank \(shape.count) exceeds the maximum \(maximumRank)")
        }
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else { throw ObjectStoreError(.invalidSize, "tensor shape \(shape) has a negative dimension") }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw ObjectStoreError(.valueTooLarge, "tensor shape \(shape) has too many elements") }
            count = product
        }
        return count
    }

    /// Total stored bytes for `shape`: header, padding and scalars (at least 1 byte of object).
    static func storedByteCount(shape: [Int]) throws(ObjectStoreError) -> (total: Int, dataOffset: Int, count: Int) {
        let count = try scalarCount(of: shape)
        let offset = dataOffset(rank: shape.count)
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Scalar>.stride)
        guard !overflow, bytes <= Int.max - offset else {
            throw ObjectStoreError(.valueTooLarge, "tensor shape \(shape) of \(Scalar.scalarTypeName) is too large to store")
        }
        return (offset + bytes, offset, count)
    }

    /// Writes the header for `shape` at the start of `bytes` (which has room for it).
    static func writeHeader(shape: [Int], into bytes: UnsafeMutableRawBufferPointer) {
        let offset = dataOffset(rank: shape.count)
        bytes.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: offset)
        bytes.storeBytes(of: magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        bytes.storeBytes(of: UInt32(shape.count).littleEndian, toByteOffset: 4, as: UInt32.self)
        bytes.storeBytes(of: UInt32(MemoryLayout<Scalar>.stride).littleEndian, toByteOffset: 8, as: UInt32.self)
        for (index, dimension) in shape.enumerated() {
            bytes.storeBytes(of: Int64(dimension).littleEndian, toByteOffset: 16 + 8 * index, as: Int64.self)
        }
    }
}

// Safe: `base` points at immutable scalars that `owner` (itself Sendable) keeps alive.
extension Tensor: @unchecked Sendable {}

extension Tensor: StoreValue {
    public func makeEncoding() throws -> StoreEncoding {
        let layout = try Self.storedByteCount(shape: shape)
        return StoreEncoding(byteCount: layout.total) { span in
            span.withUnsafeMutableBytes { bytes in
                Self.writeHeader(shape: shape, into: bytes)
                ParallelCopy.copy(to: bytes.baseAddress! + layout.dataOffset, from: base, byteCount: scalarByteCount)
            }
        }
    }

    /// A zero-copy view of the object's scalars, after checking the header against the object's
    /// size (a mismatch is `.malformedValue`, never a read out of bounds).
    public static func decode(from handle: ObjectHandle) throws -> Tensor<Scalar> {
        try handle.withUnsafeBytes { bytes throws(ObjectStoreError) -> Tensor<Scalar> in
            guard bytes.count >= 16, UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == magic else {
                throw .malformed(handle, as: typeTag, "no tensor header")
            }
            let rank = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
            let scalarSize = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
            guard rank <= maximumRank, bytes.count >= dataOffset(rank: rank) else {
                throw .malformed(handle, as: typeTag, "rank \(rank) does not fit in \(bytes.count) bytes")
            }
            guard scalarSize == MemoryLayout<Scalar>.stride else {
                throw .malformed(handle, as: typeTag, "scalars are \(scalarSize) bytes, expected \(MemoryLayout<Scalar>.stride)")
            }
            let shape = (0..<rank).map { Int(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16 + 8 * $0, as: Int64.self))) }
            let layout: (total: Int, dataOffset: Int, count: Int)
            do throws(ObjectStoreError) { layout = try storedByteCount(shape: shape) } catch { throw .malformed(handle, as: typeTag, error.message) }
            guard layout.total == bytes.count else {
                throw .malformed(handle, as: typeTag, "shape \(shape) needs \(layout.total) bytes, the object has \(bytes.count)")
            }
            // Safe: the scalars are 64-byte aligned inside the object, BitwiseCopyable, and
            // immutable after seal; the handle (kept as owner) keeps them mapped.
            let base = (bytes.baseAddress! + layout.dataOffset).bindMemory(to: Scalar.self, capacity: layout.count)
            return Tensor(shape: shape, owner: handle.reference, base: base, count: layout.count)
        }
    }
}

extension SharedObjectStore {
    /// Creates tensor object `id` of `shape` and lets `fill` write its scalars *in place* in the
    /// store (no staging copy), then seals it and returns the tensor (a view of the store).
    /// If `fill` throws, the object is abandoned and the error rethrown.
    ///
    /// - Throws: the errors of `create(_:byteCount:typeTag:eviction:)`, `.invalidSize` /
    ///   `.valueTooLarge` for a bad shape, or whatever `fill` throws.
    public func makeTensor<Scalar: TensorScalar>(
        _ id: ObjectID, shape: [Int], of scalarType: Scalar.Type = Scalar.self, eviction: EvictionPolicy = .none,
        fill: (inout MutableSpan<Scalar>) throws -> Void
    ) throws -> Tensor<Scalar> {
        let layout = try Tensor<Scalar>.storedByteCount(shape: shape)
        var builder = try create(id, byteCount: max(layout.total, 1), typeTag: Tensor<Scalar>.typeTag, eviction: eviction)
        try builder.withUnsafeMutableBytes { bytes in
            Tensor<Scalar>.writeHeader(shape: shape, into: bytes)
            // Safe: 64-byte aligned, exactly `count` scalars, owned by this builder until seal.
            let scalars = (bytes.baseAddress! + layout.dataOffset).bindMemory(to: Scalar.self, capacity: layout.count)
            var span = UnsafeMutableBufferPointer(start: scalars, count: layout.count).mutableSpan
            try fill(&span)
        }
        let handle = try builder.seal()
        return try Tensor<Scalar>.decode(from: handle)
    }
}

/// Scalars of a tensor in ordinary memory. Immutable after initialisation; freed in `deinit`.
final class _TensorHeapStorage<Scalar: TensorScalar>: @unchecked Sendable {  // written once, before sharing
    let buffer: UnsafeMutableBufferPointer<Scalar>
    init(count: Int) {
        buffer = UnsafeMutableBufferPointer<Scalar>.allocate(capacity: max(count, 1))
    }
    deinit { buffer.deallocate() }
}
