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

    /// The hash of a string's UTF-8 bytes.
    public static func of(_ text: String) -> UInt64 {
        var text = text
        return text.withUTF8 { _Checksum.of(UnsafeRawBufferPointer($0)) }
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
}
