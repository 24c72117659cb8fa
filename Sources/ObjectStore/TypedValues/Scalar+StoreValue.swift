/// Single numbers, stored as their little-endian bytes (8 or 4 bytes; no JSON), so that small
/// task outputs cost one tiny object. Tags: `int64`, `float64`, `float32`, `bool`. Decoding copies
/// (a few bytes) and checks the size.
extension Int: StoreValue {
    public static var typeTag: String { "int64" }
    public func makeEncoding() throws -> StoreEncoding { _fixedWidthEncoding(Int64(self).littleEndian) }
    public static func decode(from handle: ObjectHandle) throws -> Int {
        Int(Int64(littleEndian: try _decodeFixedWidth(handle, as: Int64.self, typeTag)))
    }
}

extension Double: StoreValue {
    public static var typeTag: String { "float64" }
    public func makeEncoding() throws -> StoreEncoding { _fixedWidthEncoding(bitPattern.littleEndian) }
    public static func decode(from handle: ObjectHandle) throws -> Double {
        Double(bitPattern: UInt64(littleEndian: try _decodeFixedWidth(handle, as: UInt64.self, typeTag)))
    }
}

extension Float: StoreValue {
    public static var typeTag: String { "float32" }
    public func makeEncoding() throws -> StoreEncoding { _fixedWidthEncoding(bitPattern.littleEndian) }
    public static func decode(from handle: ObjectHandle) throws -> Float {
        Float(bitPattern: UInt32(littleEndian: try _decodeFixedWidth(handle, as: UInt32.self, typeTag)))
    }
}

extension Bool: StoreValue {
    public static var typeTag: String { "bool" }
    public func makeEncoding() throws -> StoreEncoding { _fixedWidthEncoding(UInt8(self ? 1 : 0)) }
    public static func decode(from handle: ObjectHandle) throws -> Bool {
        switch try _decodeFixedWidth(handle, as: UInt8.self, typeTag) {
        case 0: return false
        case 1: return true
        case let other: throw ObjectStoreError.malformed(handle, as: typeTag, "byte \(other) is neither 0 nor 1")
        }
    }
}

func _fixedWidthEncoding<T: FixedWidthInteger>(_ value: T) -> StoreEncoding {
    StoreEncoding(byteCount: MemoryLayout<T>.size) { span in
        span.withUnsafeMutableBytes { $0.storeBytes(of: value, as: T.self) }
    }
}

func _decodeFixedWidth<T: FixedWidthInteger>(_ handle: ObjectHandle, as type: T.Type, _ tag: String) throws -> T {
    guard handle.byteCount == MemoryLayout<T>.size else {
        throw ObjectStoreError.malformed(handle, as: tag, "\(handle.byteCount) bytes, expected \(MemoryLayout<T>.size)")
    }
    return handle.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
}
