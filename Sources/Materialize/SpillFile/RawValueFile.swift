import ObjectStore

/// A value's stored bytes as a plain file, for consumers that are not this library (a shell
/// command): UTF-8 for strings, the JSON for `json:` values, the bytes themselves for `bytes`,
/// 8 little-endian bytes for `int64`/`float64`, and for tensors the tensor record (see `Tensor`).
/// Written safely like spill files: temporary name, fsync, rename, directory fsync; mode 0600.
public enum RawValueFile {
    /// Writes the object's bytes to `path`.
    /// - Throws: `.ioFailed` naming the path.
    public static func write(_ handle: ObjectHandle, to path: String) throws(MaterializeError) {
        try SpillFile.writeSafely(to: path, what: "value file") { fd, temporaryPath throws(MaterializeError) in
            try SpillFile.check(handle.withUnsafeBytes { _FileSyscall.writeAll(fd, $0, at: 0) }, "pwrite", temporaryPath, "writing value file")
        }
    }
}
