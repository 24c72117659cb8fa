/// A value type that can go into a `SharedObjectStore` and come back out.
///
/// A conforming type names itself with a stable `typeTag` (stored with every object, so reading
/// an object as another type is a typed error, never garbage), says how to encode itself into a
/// byte region of known size, and how to decode from a handle.
///
/// Conformances shipped here: `Tensor` (decoding is a zero-copy view), `[UInt8]` and `String`
/// (decoding copies), and any `Codable` type that declares `extension MyType: StoreValue {}`
/// (JSON-encoded; encoding and decoding copy).
public protocol StoreValue: Sendable {
    /// A stable name for the stored representation, at most 63 UTF-8 bytes. Two types may share
    /// a tag only if each can decode the other's bytes.
    static var typeTag: String { get }

    /// How this value encodes: its byte count and a function that writes exactly those bytes.
    func makeEncoding() throws -> StoreEncoding

    /// Decodes a value from an object whose type tag equals `typeTag` (already checked).
    /// Throw `ObjectStoreError.malformed(...)` (or any error) for bytes that do not decode.
    static func decode(from handle: ObjectHandle) throws -> Self

    /// The store object that already holds this value, if any (a `Tensor` made in a store or
    /// read from one): a pipeline passes such a value on without copying it. Default: nil.
    var storeHandle: ObjectHandle? { get }
}

extension StoreValue {
    public var storeHandle: ObjectHandle? { nil }
}

/// The encoded form of a value: how many bytes, and how to write them in place.
public struct StoreEncoding {
    /// Exactly the number of bytes `write` fills.
    public var byteCount: Int
    /// Fills the object's bytes (a span of `byteCount` bytes inside the store).
    public var write: (inout MutableRawSpan) throws -> Void

    public init(byteCount: Int, write: @escaping (inout MutableRawSpan) throws -> Void) {
        self.byteCount = byteCount
        self.write = write
    }

    /// An encoding that copies `bytes`.
    public static func copying(_ bytes: [UInt8]) -> StoreEncoding {
        StoreEncoding(byteCount: bytes.count) { span in
            bytes.withUnsafeBytes { source in
                span.withUnsafeMutableBytes { ParallelCopy.copy(to: $0, from: source) }
            }
        }
    }
}

extension ObjectStoreError {
    /// An error for bytes of object `handle` that do not decode as `type`: say what is wrong.
    public static func malformed(_ handle: ObjectHandle, as type: String, _ reason: String) -> ObjectStoreError {
        ObjectStoreError(.malformedValue, "object \(handle.id) in store '\(handle.store.name)' is not a valid \(type): \(reason)", store: handle.store.name, object: handle.id)
    }
}

extension SharedObjectStore {
    /// Encodes `value` into a new sealed object `id` (a copy of the value's bytes) and returns a
    /// handle on it.
    /// - Throws: the errors of `create(_:byteCount:typeTag:eviction:)`; `.malformedValue` when
    ///   the value fails to encode or writes another byte count than it announced.
    @discardableResult
    public func put<V: StoreValue>(_ value: V, id: ObjectID, eviction: EvictionPolicy = .none) throws(ObjectStoreError) -> ObjectHandle {
        let encoding: StoreEncoding
        do { encoding = try value.makeEncoding() } catch {
            throw ObjectStoreError(.malformedValue, "cannot encode \(V.typeTag) for object \(id): \(error)", store: name, object: id)
        }
        var builder = try create(id, byteCount: encoding.byteCount, typeTag: V.typeTag, eviction: eviction, allowingEmpty: true)
        do {
            try builder.withMutableBytes { span in try encoding.write(&span) }
        } catch let error as ObjectStoreError {
            throw error
        } catch {
            throw ObjectStoreError(.malformedValue, "cannot encode \(V.typeTag) for object \(id): \(error)", store: name, object: id)
        }
        return try builder.seal()
    }

    /// Reads object `id` as a `V`. Zero-copy for `Tensor`; see each type for others.
    /// - Throws: `.objectNotFound`, `.objectNotSealed`; `.typeMismatch` naming the stored and
    ///   requested types; `.malformedValue` when the bytes do not decode.
    public func get<V: StoreValue>(_ id: ObjectID, as type: V.Type = V.self) throws(ObjectStoreError) -> V {
        try get(id).decode(as: type)
    }
}

extension ObjectHandle {
    /// Decodes this object as a `V`, after checking its type tag.
    /// - Throws: `.typeMismatch` naming the stored and requested types; `.malformedValue`.
    public func decode<V: StoreValue>(as type: V.Type = V.self) throws(ObjectStoreError) -> V {
        guard typeTag == V.typeTag else {
            var error = ObjectStoreError(.typeMismatch, "object \(id) in store '\(store.name)' holds \(typeTag), not the requested \(V.typeTag)", store: store.name, object: id)
            error.storedType = typeTag
            error.requestedType = V.typeTag
            throw error
        }
        do {
            return try V.decode(from: self)
        } catch let error as ObjectStoreError {
            throw error
        } catch {
            throw .malformed(self, as: V.typeTag, "\(error)")
        }
    }
}
