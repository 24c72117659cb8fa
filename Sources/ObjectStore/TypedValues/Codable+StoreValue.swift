import Foundation

/// Any `Codable` type becomes storable with an empty conformance:
///
///     struct RunConfig: Codable, Sendable { var learningRate: Double }
///     extension RunConfig: StoreValue {}
///
/// The value is JSON-encoded (readable by any language), which copies on the way in and out;
/// use `Tensor` for large numeric data. The default tag is "json:" and the type's qualified name
/// (shortened with a hash when over 63 bytes); override `typeTag` to keep it stable across renames.
extension StoreValue where Self: Codable {
    public static var typeTag: String { _jsonTypeTag(String(reflecting: Self.self)) }

    public func makeEncoding() throws -> StoreEncoding {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return .copying(Array(try encoder.encode(self)))
    }

    public static func decode(from handle: ObjectHandle) throws -> Self {
        let data = handle.withUnsafeBytes { Data($0) }
        return try JSONDecoder().decode(Self.self, from: data)
    }
}

/// "json:<name>", or for long names its first 40 bytes, '#', and a 64-bit hash.
func _jsonTypeTag(_ qualifiedName: String) -> String {
    let tag = "json:" + qualifiedName
    if tag.utf8.count <= 63 { return tag }
    let id = ObjectID(deriving: qualifiedName)
    return String(decoding: Array(tag.utf8.prefix(40)), as: UTF8.self) + "#" + String(id.description.prefix(16))
}
