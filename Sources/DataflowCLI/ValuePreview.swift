import ObjectStore

/// A short text of a stored value, for the summary a workflow program prints: scalars and
/// booleans as they are, strings quoted (at most 60 characters), a tensor's scalar type, shape
/// and first values, the start of a JSON-encoded value, a byte string's size and first bytes.
/// Nil for a type it does not know (a user's own `StoreValue` encoding).
///
/// - Note: Stateless; thread-safe. Reads the value through its handle (zero-copy for tensors).
enum _ValuePreview {
    /// How many scalars of a tensor it shows.
    static let tensorScalars = 6
    /// How many characters of a string or JSON text it shows.
    static let textCharacters = 60

    static func text(of handle: ObjectHandle) -> String? {
        let tag = handle.typeTag
        switch tag {
        case "int64": return (try? handle.decode(as: Int.self)).map { "\($0)" }
        case "float64": return (try? handle.decode(as: Double.self)).map { "\($0)" }
        case "float32": return (try? handle.decode(as: Float.self)).map { "\($0)" }
        case "bool": return (try? handle.decode(as: Bool.self)).map { "\($0)" }
        case "string": return (try? handle.decode(as: String.self)).map { quoted($0) }
        case "bytes":
            let bytes = handle.withUnsafeBytes { Array($0.prefix(8)) }
            return "\(handle.byteCount) bytes" + (bytes.isEmpty ? "" : ": " + bytes.map { String($0, radix: 16).leftPadded(2) }.joined(separator: " ")
                + (handle.byteCount > bytes.count ? " …" : ""))
        default:
            if tag.hasPrefix("json:") {
                let text = handle.withUnsafeBytes { String(decoding: $0.prefix(textCharacters * 4), as: UTF8.self) }
                return shortened(text)
            }
            if tag.hasPrefix("tensor<") { return tensor(handle) }
            return nil
        }
    }

    private static func tensor(_ handle: ObjectHandle) -> String? {
        switch handle.typeTag {
        case Tensor<Float>.typeTag: tensor(handle, of: Float.self)
        case Tensor<Double>.typeTag: tensor(handle, of: Double.self)
        case Tensor<Int8>.typeTag: tensor(handle, of: Int8.self)
        case Tensor<Int16>.typeTag: tensor(handle, of: Int16.self)
        case Tensor<Int32>.typeTag: tensor(handle, of: Int32.self)
        case Tensor<Int64>.typeTag: tensor(handle, of: Int64.self)
        case Tensor<UInt8>.typeTag: tensor(handle, of: UInt8.self)
        case Tensor<UInt16>.typeTag: tensor(handle, of: UInt16.self)
        case Tensor<UInt32>.typeTag: tensor(handle, of: UInt32.self)
        default: nil
        }
    }

    private static func tensor<Scalar: TensorScalar>(_ handle: ObjectHandle, of type: Scalar.Type) -> String? {
        guard let tensor = try? handle.decode(as: Tensor<Scalar>.self) else { return nil }
        let shown = (0..<min(tensor.count, tensorScalars)).map { "\(tensor[$0])" }.joined(separator: ", ")
        return "tensor<\(Scalar.scalarTypeName)> shape [\(tensor.shape.map(String.init).joined(separator: ", "))]: "
            + "[\(shown)\(tensor.count > tensorScalars ? ", …" : "")]"
    }

    private static func quoted(_ text: String) -> String {
        let short = text.count > textCharacters ? String(text.prefix(textCharacters)) + "…" : text
        return "\"" + short.replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    private static func shortened(_ text: String) -> String {
        let line = text.replacingOccurrences(of: "\n", with: " ")
        return line.count > textCharacters ? String(line.prefix(textCharacters)) + "…" : line
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
