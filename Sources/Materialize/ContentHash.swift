import CXXHash
import Foundation

/// XXH3-64 (seed 0, libxxhash) of bytes, strings and files: the content hash that decides
/// whether a kept result is still current (the same function as spill files' checksums, so a
/// value's hash is its spill file's raw checksum).
///
/// - Note: Stateless; thread-safe.
public enum ContentHash {
    /// The hash of `bytes`.
    public static func of(_ bytes: UnsafeRawBufferPointer) -> UInt64 { _Checksum.of(bytes) }

    /// The hash of 64-bit words (their little-endian bytes), with `seed`.
    public static func of(words: [UInt64], seed: UInt64) -> UInt64 {
        #if _endian(little)
        words.withUnsafeBytes { XXH3_64bits_withSeed($0.baseAddress, $0.count, seed) }
        #else
        words.map(\.littleEndian).withUnsafeBytes { XXH3_64bits_withSeed($0.baseAddress, $0.count, seed) }
        #endif
    }

    /// The hash of a string's UTF-8 bytes, with `seed` (XXH3-64 seeded: a chain of seeded
    /// hashes combines several strings without building one).
    public static func of(_ text: String, seed: UInt64 = 0) -> UInt64 {
        var text = text
        return text.withUTF8 { XXH3_64bits_withSeed($0.baseAddress, $0.count, seed) }
    }

    /// The hash of a sequence of 64-bit words (little-endian bytes).
    public static func of(words: [UInt64]) -> UInt64 {
        words.map(\.littleEndian).withUnsafeBytes { _Checksum.of($0) }
    }

    /// The hash of a file's content, read in 1 MiB chunks; nil when it cannot be read.
    public static func ofFile(at path: String) -> UInt64? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let checksum = _Checksum()
        while true {
            let chunk: Data?
            do { chunk = try handle.read(upToCount: 1 << 20) } catch { return nil }
            guard let chunk, !chunk.isEmpty else { break }  // end of file
            chunk.withUnsafeBytes { checksum.update($0) }
        }
        return checksum.value
    }

    /// 16 lower-case hex digits.
    public static func hex(_ hash: UInt64) -> String {
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The hash that `hex` wrote (exactly 16 hex digits), or nil.
    public static func parse(hex text: String) -> UInt64? {
        text.utf8.count == 16 ? UInt64(text, radix: 16) : nil
    }
}
