/// Checksums for tools and tests that build or repair spill files by hand (e.g. to stage a
/// file of a newer format version). XXH3-64, seed 0: the checksum of the spill-file format.
public enum SpillFileTesting {
    /// The XXH3-64 (seed 0) of `bytes`, as used for every checksum field of a spill file.
    public static func headerChecksum(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { _Checksum.of($0) }
    }
}
