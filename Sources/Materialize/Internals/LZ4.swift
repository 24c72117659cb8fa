import CLZ4

/// liblz4 wrappers: block compression for sampling, and the frame format for spill payloads.
enum _LZ4 {
    /// Bytes of input per frame-compression step; one LZ4 frame block.
    static let chunkByteCount = 4 << 20

    /// Compressed size of `bytes` with the fast block compressor, for sampling compressibility.
    static func compressedSize(of bytes: UnsafeRawBufferPointer, scratch: UnsafeMutableRawBufferPointer) -> Int {
        let written = LZ4_compress_default(
            bytes.baseAddress!.assumingMemoryBound(to: CChar.self), scratch.baseAddress!.assumingMemoryBound(to: CChar.self),
            Int32(bytes.count), Int32(scratch.count))
        return written > 0 ? Int(written) : bytes.count  // 0: did not fit, i.e. does not compress
    }

    static func blockBound(_ count: Int) -> Int { Int(LZ4_compressBound(Int32(count))) }

    /// The frame preferences of spill files: 4 MiB independent blocks, content size recorded,
    /// no LZ4 checksums (the spill file has its own XXH3 checksums), fastest level.
    static func preferences(contentSize: Int) -> LZ4F_preferences_t {
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.blockSizeID = LZ4F_max4MB
        preferences.frameInfo.blockMode = LZ4F_blockIndependent
        preferences.frameInfo.contentSize = UInt64(contentSize)
        preferences.compressionLevel = 0
        return preferences
    }

    /// The name of a frame-API error code, or nil if `code` is not an error.
    static func errorName(_ code: Int) -> String? {
        LZ4F_isError(code) != 0 ? String(cString: LZ4F_getErrorName(code)) : nil
    }
}

/// A streaming LZ4 frame compressor over caller-provided output space.
/// - Note: Owns its C context (freed in `deinit`); not thread-safe.
final class _LZ4FrameCompressor {
    private var context: OpaquePointer?
    private var preferences: LZ4F_preferences_t
    /// Output space large enough for the header, one chunk, or the end mark.
    let output: UnsafeMutableRawBufferPointer

    init(contentSize: Int) throws(_LZ4Failure) {
        preferences = _LZ4.preferences(contentSize: contentSize)
        let code = LZ4F_createCompressionContext(&context, UInt32(LZ4F_VERSION))
        if let name = _LZ4.errorName(code) { throw _LZ4Failure(name) }
        let bound = LZ4F_compressBound(_LZ4.chunkByteCount, &preferences) + 64  // + header / end mark
        output = UnsafeMutableRawBufferPointer.allocate(byteCount: bound, alignment: 64)
    }

    deinit {
        LZ4F_freeCompressionContext(context)
        output.deallocate()
    }

    /// Starts the frame; returns the header bytes (a prefix of `output`).
    func begin() throws(_LZ4Failure) -> UnsafeRawBufferPointer {
        let written = LZ4F_compressBegin(context, output.baseAddress, output.count, &preferences)
        if let name = _LZ4.errorName(written) { throw _LZ4Failure(name) }
        return UnsafeRawBufferPointer(rebasing: output[0..<written])
    }

    /// Compresses at most `chunkByteCount` bytes; returns the output (possibly empty).
    func update(_ input: UnsafeRawBufferPointer) throws(_LZ4Failure) -> UnsafeRawBufferPointer {
        precondition(input.count <= _LZ4.chunkByteCount)
        let written = LZ4F_compressUpdate(context, output.baseAddress, output.count, input.baseAddress, input.count, nil)
        if let name = _LZ4.errorName(written) { throw _LZ4Failure(name) }
        return UnsafeRawBufferPointer(rebasing: output[0..<written])
    }

    /// Ends the frame; returns the last bytes.
    func end() throws(_LZ4Failure) -> UnsafeRawBufferPointer {
        let written = LZ4F_compressEnd(context, output.baseAddress, output.count, nil)
        if let name = _LZ4.errorName(written) { throw _LZ4Failure(name) }
        return UnsafeRawBufferPointer(rebasing: output[0..<written])
    }
}

/// A streaming LZ4 frame decompressor.
/// - Note: Owns its C context (freed in `deinit`); not thread-safe.
final class _LZ4FrameDecompressor {
    private var context: OpaquePointer?
    /// True once the frame's end mark was consumed.
    private(set) var finished = false

    init() throws(_LZ4Failure) {
        let code = LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))
        if let name = _LZ4.errorName(code) { throw _LZ4Failure(name) }
    }

    deinit { LZ4F_freeDecompressionContext(context) }

    /// Feeds `input` and writes decompressed bytes into `output`; returns (consumed, produced).
    /// Call again with the rest of the input while it is not all consumed or output is full.
    func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(_LZ4Failure) -> (consumed: Int, produced: Int) {
        var sourceSize = input.count
        var destinationSize = output.count
        let hint = LZ4F_decompress(context, output.baseAddress, &destinationSize, input.baseAddress, &sourceSize, nil)
        if let name = _LZ4.errorName(hint) { throw _LZ4Failure(name) }
        if hint == 0 { finished = true }
        return (sourceSize, destinationSize)
    }
}

struct _LZ4Failure: Error {
    let name: String
    init(_ name: String) { self.name = name }
}
