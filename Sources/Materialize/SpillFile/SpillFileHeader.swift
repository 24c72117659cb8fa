import ObjectStore

/// The header of a spill file: everything needed to read the value back from the path alone.
///
/// Format, version 1 (all integers little-endian; see README "Spill-file format"):
///
///     offset size  field
///       0     8    magic "DFSPILL1"
///       8     2    format version (1)
///      10     1    codec: 0 = raw, 1 = LZ4 frame (liblz4's frame format, one frame)
///      11     1    zero
///      12     4    header size in bytes (256): the payload starts here
///      16     8    raw byte count (the value's bytes, uncompressed)
///      24     8    stored byte count (the payload's bytes; the file is header + this long)
///      32     8    XXH3-64 (seed 0) of the stored payload
///      40     8    XXH3-64 (seed 0) of the raw bytes (equal to the above for raw)
///      48    16    object id: high 64 bits, then low 64 bits
///      64     1    type-tag length n (1...64)
///      65     n    type tag, UTF-8 (e.g. "tensor<float32>"); zero-padded to offset 232
///     232     8    the object's generation in its store (0: unknown); tells a file written for
///                  an earlier object of the same id from one for the current object
///     240     8    zero
///     248     8    XXH3-64 (seed 0) of header bytes 0..<248
///     256          payload
///
/// - Note: A value type; thread-safe.
public struct SpillFileHeader: Sendable, Equatable {
    /// How the payload is stored.
    public enum Codec: UInt8, Sendable, CustomStringConvertible {
        case raw = 0
        case lz4Frame = 1
        public var description: String { self == .raw ? "raw" : "lz4-frame" }
    }

    public var codec: Codec
    public var rawByteCount: Int
    public var storedByteCount: Int
    public var payloadChecksum: UInt64
    public var rawChecksum: UInt64
    public var objectID: ObjectID
    public var typeTag: String
    /// The object's generation in the store it was spilled from (0 if unknown).
    public var objectGeneration: UInt64 = 0

    static let magic: [UInt8] = Array("DFSPILL1".utf8)
    /// The format this library writes, and the newest it reads.
    public static let formatVersion: UInt16 = 1
    public static let byteCount = 256
    static let maximumTypeTagByteCount = 64
    static let headerChecksumOffset = 248

    /// The encoded header.
    func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.byteCount)
        bytes.replaceSubrange(0..<8, with: Self.magic)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: $0) }
        }
        put(Self.formatVersion, at: 8)
        bytes[10] = codec.rawValue
        put(UInt32(Self.byteCount), at: 12)
        put(UInt64(rawByteCount), at: 16)
        put(UInt64(storedByteCount), at: 24)
        put(payloadChecksum, at: 32)
        put(rawChecksum, at: 40)
        put(objectID.high, at: 48)
        put(objectID.low, at: 56)
        let tag = Array(typeTag.utf8.prefix(Self.maximumTypeTagByteCount))
        bytes[64] = UInt8(tag.count)
        bytes.replaceSubrange(65..<65 + tag.count, with: tag)
        put(objectGeneration, at: 232)
        let checksum = bytes.withUnsafeBytes { _Checksum.of(UnsafeRawBufferPointer(rebasing: $0[0..<Self.headerChecksumOffset])) }
        put(checksum, at: Self.headerChecksumOffset)
        return bytes
    }

    /// Decodes and checks a header. `fileByteCount` is the whole file's size; `path` names the
    /// file in errors.
    /// - Throws: `.truncatedFile`, `.foreignFile`, `.newerFormat`, `.corruptedFile`, each naming
    ///   the file and what is wrong.
    static func decode(_ bytes: UnsafeRawBufferPointer, fileByteCount: Int, path: String) throws(MaterializeError) -> SpillFileHeader {
        func fail(_ code: MaterializeError.Code, _ what: String) -> MaterializeError {
            MaterializeError(code, "spill file '\(path)' \(what)", path: path)
        }
        guard bytes.count >= 8, fileByteCount >= 8 else { throw fail(.truncatedFile, "is \(fileByteCount) bytes: too short for a spill-file header") }
        guard Array(bytes[0..<8]) == magic else { throw fail(.foreignFile, "is not a swift-dataflow spill file (bad magic)") }
        guard bytes.count >= byteCount, fileByteCount >= byteCount else {
            throw fail(.truncatedFile, "is \(fileByteCount) bytes: its \(byteCount)-byte header is cut off")
        }
        func get<T: FixedWidthInteger>(_ offset: Int, as type: T.Type) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        let version = get(8, as: UInt16.self)
        guard version <= formatVersion else {
            throw fail(.newerFormat, "has format version \(version); this library reads up to version \(formatVersion)")
        }
        let expectedChecksum = _Checksum.of(UnsafeRawBufferPointer(rebasing: bytes[0..<headerChecksumOffset]))
        guard get(headerChecksumOffset, as: UInt64.self) == expectedChecksum else {
            throw fail(.corruptedFile, "has a corrupted header (header checksum mismatch)")
        }
        guard version >= 1 else { throw fail(.corruptedFile, "has format version 0") }
        guard let codec = Codec(rawValue: bytes[10]) else { throw fail(.corruptedFile, "names unknown codec \(bytes[10])") }
        guard get(12, as: UInt32.self) == UInt32(byteCount) else { throw fail(.corruptedFile, "has header size \(get(12, as: UInt32.self)), expected \(byteCount)") }
        let raw = get(16, as: UInt64.self), stored = get(24, as: UInt64.self)
        guard raw <= UInt64(Int.max), stored <= UInt64(Int.max - byteCount) else {
            throw fail(.corruptedFile, "has impossible sizes (raw \(raw), stored \(stored))")
        }
        guard codec != .raw || raw == stored else { throw fail(.corruptedFile, "is raw but stores \(stored) bytes for \(raw)") }
        // LZ4 expands a byte into at most 255 (plus a frame's fixed overhead): a larger claim is
        // damage, and believing it would allocate unbounded memory before the payload is checked.
        guard codec != .lz4Frame || raw <= stored &* 255 &+ 65_536 else {
            throw fail(.corruptedFile, "claims \(raw) raw bytes from \(stored) stored bytes: more than LZ4 can expand")
        }
        let expectedSize = byteCount + Int(stored)
        guard fileByteCount >= expectedSize else {
            throw fail(.truncatedFile, "is \(fileByteCount) bytes; its header promises \(expectedSize)")
        }
        guard fileByteCount == expectedSize else {
            throw fail(.corruptedFile, "is \(fileByteCount) bytes; its header promises \(expectedSize) (trailing bytes)")
        }
        let tagLength = Int(bytes[64])
        guard tagLength >= 1, tagLength <= maximumTypeTagByteCount,
            let tag = String(validating: UnsafeRawBufferPointer(rebasing: bytes[65..<65 + tagLength]), as: UTF8.self)
        else { throw fail(.corruptedFile, "has an invalid type tag") }
        return SpillFileHeader(
            codec: codec, rawByteCount: Int(raw), storedByteCount: Int(stored),
            payloadChecksum: get(32, as: UInt64.self), rawChecksum: get(40, as: UInt64.self),
            objectID: ObjectID(high: get(48, as: UInt64.self), low: get(56, as: UInt64.self)), typeTag: tag,
            objectGeneration: get(232, as: UInt64.self))
    }
}
