/// Raw bytes, tagged `bytes`. Decoding copies; for zero-copy access use the `ObjectHandle`
/// itself (`withBytes`, `withUnsafeBytes`).
extension Array: StoreValue where Element == UInt8 {
    public static var typeTag: String { "bytes" }
    public func makeEncoding() throws -> StoreEncoding { .copying(self) }
    public static func decode(from handle: ObjectHandle) throws -> [UInt8] { handle.copyBytes() }
}

/// Text, stored as UTF-8 and tagged `string`. Encoding and decoding copy; decoding rejects bytes
/// that are not valid UTF-8 (`.malformedValue`) rather than repairing them.
extension String: StoreValue {
    public static var typeTag: String { "string" }
    public func makeEncoding() throws -> StoreEncoding { .copying(Array(utf8)) }
    public static func decode(from handle: ObjectHandle) throws -> String {
        let decoded = handle.withUnsafeBytes { String(validating: $0, as: UTF8.self) }
        guard let decoded else { throw ObjectStoreError.malformed(handle, as: typeTag, "invalid UTF-8") }
        return decoded
    }
}
