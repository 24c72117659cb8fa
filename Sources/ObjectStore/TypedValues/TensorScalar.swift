/// A scalar type a `Tensor` can hold: plain bits, fixed size, a stable name.
public protocol TensorScalar: BitwiseCopyable, Sendable {
    /// The stable name used in the tensor's type tag, e.g. "float32".
    static var scalarTypeName: String { get }
}

extension Float: TensorScalar { public static var scalarTypeName: String { "float32" } }
extension Double: TensorScalar { public static var scalarTypeName: String { "float64" } }
extension Int8: TensorScalar { public static var scalarTypeName: String { "int8" } }
extension Int16: TensorScalar { public static var scalarTypeName: String { "int16" } }
extension Int32: TensorScalar { public static var scalarTypeName: String { "int32" } }
extension Int64: TensorScalar { public static var scalarTypeName: String { "int64" } }
extension UInt8: TensorScalar { public static var scalarTypeName: String { "uint8" } }
extension UInt16: TensorScalar { public static var scalarTypeName: String { "uint16" } }
extension UInt32: TensorScalar { public static var scalarTypeName: String { "uint32" } }
extension UInt64: TensorScalar { public static var scalarTypeName: String { "uint64" } }
/// `Int` is 64 bits on every platform this library supports, so it shares `Int64`'s name.
extension Int: TensorScalar { public static var scalarTypeName: String { "int64" } }
