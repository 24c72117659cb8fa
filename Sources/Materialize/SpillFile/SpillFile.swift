import Dispatch
import ObjectStore

/// Writing and reading spill files: one self-describing record per value (`SpillFileHeader`
/// documents the format), readable from its path alone by any process or language.
///
/// Writes are safe: the file is written under a temporary name in the same directory, fsynced,
/// renamed into place, and the directory fsynced, so a crash leaves either no file or a complete
/// one (plus, at worst, a temporary file that `SpillManager` sweeps). Files are mode 0600.
///
/// Reads verify everything: header checksum, sizes against the file's length, payload checksum,
/// decompressed length and the checksum of the decompressed bytes. Anything off is a typed
/// `MaterializeError` naming the file and what is wrong.
public enum SpillFile {
    /// How to store the payload.
    public enum Compression: Sendable {
        /// LZ4 unless the value is small or a sample shows LZ4 does not pay (see below).
        case adaptive
        /// Always LZ4 frame.
        case lz4
        /// Never compress.
        case raw
    }

    /// Values smaller than this are stored raw under `.adaptive`.
    public static let minimumCompressedByteCount = 10 * 1024
    /// Under `.adaptive`, values whose sampled chunks compress to more than this fraction of
    /// their size are stored raw (random or smooth float data does not compress with LZ4).
    public static let worthwhileCompressionRatio = 0.9

    static let ioChunkByteCount = 8 << 20
    static let sampleChunkByteCount = 64 * 1024
    static let sampleChunkCount = 8

    // MARK: Writing

    /// Writes the object behind `handle` to `path` (replacing any file there) and returns the
    /// header written. The object's bytes go from shared memory to the file without a copy.
    ///
    /// - Throws: `.ioFailed` naming the path and syscall; `.compressionFailed`.
    @discardableResult
    public static func write(_ handle: ObjectHandle, to path: String, compression: Compression = .adaptive) throws(MaterializeError) -> SpillFileHeader {
        let codec = chooseCodec(for: handle, compression)
        var written: SpillFileHeader?
        try writeSafely(to: path, what: "spill file") { fd, temporaryPath throws(MaterializeError) in
            let header = try handle.withUnsafeBytes { bytes throws(MaterializeError) -> SpillFileHeader in
                let payload: (stored: Int, payloadChecksum: UInt64, rawChecksum: UInt64)
                switch codec {
                case .raw: payload = try writeRaw(bytes, fd: fd, path: temporaryPath)
                case .lz4Frame: payload = try writeLZ4(bytes, fd: fd, path: temporaryPath)
                }
                return SpillFileHeader(
                    codec: codec, rawByteCount: bytes.count, storedByteCount: payload.stored,
                    payloadChecksum: payload.payloadChecksum, rawChecksum: payload.rawChecksum,
                    objectID: handle.id, typeTag: handle.typeTag, objectGeneration: handle.generation)
            }
            let encoded = header.encoded()
            try check(encoded.withUnsafeBytes { _FileSyscall.writeAll(fd, $0, at: 0) }, "pwrite", temporaryPath, "writing spill-file header")
            written = header
        }
        return written!
    }

    /// Writes a file safely: `body` fills a new temporary file (mode 0600) in the same
    /// directory, which is then fsynced and renamed over `path`, and the directory fsynced; a
    /// crash leaves either the old state or the complete file. On an error the temporary file
    /// is removed. `what` names the file in errors ("spill file").
    static func writeSafely(to path: String, what: String, _ body: (_ fd: Int32, _ temporaryPath: String) throws(MaterializeError) -> Void) throws(MaterializeError) {
        let temporaryPath = "\(path).tmp-\(_FileSyscall.processID())-\(ObjectID.random().description.prefix(8))"
        let fd: Int32
        switch _FileSyscall.createExclusive(temporaryPath) {
        case .success(let value): fd = value
        case .failure(let errno): throw .io("open", errno, path: temporaryPath, while: "creating \(what)")
        }
        var renamed = false
        defer {
            _FileSyscall.close(fd)
            if !renamed { _ = _FileSyscall.unlink(temporaryPath) }
        }
        try body(fd, temporaryPath)
        try check(_FileSyscall.sync(fd), "fsync", temporaryPath, "flushing \(what)")
        try check(_FileSyscall.rename(temporaryPath, path), "rename", path, "moving \(what) into place")
        renamed = true
        try syncDirectory(containing: path)
    }

    /// Which codec `write` uses for this value.
    static func chooseCodec(for handle: ObjectHandle, _ compression: Compression) -> SpillFileHeader.Codec {
        switch compression {
        case .raw: return .raw
        case .lz4: return .lz4Frame
        case .adaptive:
            guard handle.byteCount >= minimumCompressedByteCount else { return .raw }
            return handle.withUnsafeBytes { bytes in sampledRatio(bytes) <= worthwhileCompressionRatio ? .lz4Frame : .raw }
        }
    }

    /// Compressed size ÷ size of up to 8 evenly spaced 64 KiB chunks.
    static func sampledRatio(_ bytes: UnsafeRawBufferPointer) -> Double {
        let chunk = min(sampleChunkByteCount, bytes.count)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: _LZ4.blockBound(chunk), alignment: 16)
        defer { scratch.deallocate() }
        let chunks = min(sampleChunkCount, max(1, bytes.count / chunk))
        let stride = chunks > 1 ? (bytes.count - chunk) / (chunks - 1) : 0
        var original = 0, compressed = 0
        for index in 0..<chunks {
            let start = index * stride
            original += chunk
            compressed += _LZ4.compressedSize(of: UnsafeRawBufferPointer(rebasing: bytes[start..<start + chunk]), scratch: scratch)
        }
        return Double(compressed) / Double(original)
    }

    /// Values at least this large are checksummed on a second thread while the first writes.
    static let concurrentChecksumByteCount = 16 << 20

    private static func writeRaw(_ bytes: UnsafeRawBufferPointer, fd: Int32, path: String) throws(MaterializeError) -> (Int, UInt64, UInt64) {
        // The checksum (XXH3, ~10 GB/s) would add ~10% to a write that the page cache absorbs
        // at memcpy speed; on a large value it runs beside the writes instead.
        let checksum: _ConcurrentChecksum? = bytes.count >= concurrentChecksumByteCount ? _ConcurrentChecksum(bytes) : nil
        let inline = checksum == nil ? _Checksum() : nil
        var offset = 0
        while offset < bytes.count {
            let chunk = UnsafeRawBufferPointer(rebasing: bytes[offset..<min(bytes.count, offset + ioChunkByteCount)])
            inline?.update(chunk)
            if case .failure(let errno) = _FileSyscall.writeAll(fd, chunk, at: SpillFileHeader.byteCount + offset) {
                _ = checksum?.wait()
                throw .io("pwrite", errno, path: path, while: "writing spill file")
            }
            offset += chunk.count
        }
        let value = checksum?.wait() ?? inline!.value
        return (bytes.count, value, value)
    }

    private static func writeLZ4(_ bytes: UnsafeRawBufferPointer, fd: Int32, path: String) throws(MaterializeError) -> (Int, UInt64, UInt64) {
        let rawChecksum = _Checksum(), payloadChecksum = _Checksum()
        var position = SpillFileHeader.byteCount
        func emit(_ output: UnsafeRawBufferPointer) throws(MaterializeError) {
            guard !output.isEmpty else { return }
            payloadChecksum.update(output)
            try check(_FileSyscall.writeAll(fd, output, at: position), "pwrite", path, "writing spill file")
            position += output.count
        }
        do {
            let compressor = try _LZ4FrameCompressor(contentSize: bytes.count)
            try emit(try compressor.begin())
            var offset = 0
            while offset < bytes.count {
                let chunk = UnsafeRawBufferPointer(rebasing: bytes[offset..<min(bytes.count, offset + _LZ4.chunkByteCount)])
                rawChecksum.update(chunk)
                try emit(try compressor.update(chunk))
                offset += chunk.count
            }
            try emit(try compressor.end())
        } catch let failure as _LZ4Failure {
            throw MaterializeError(.compressionFailed, "compressing spill file '\(path)': \(failure.name)", path: path)
        } catch let error as MaterializeError {
            throw error
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        return (position - SpillFileHeader.byteCount, payloadChecksum.value, rawChecksum.value)
    }

    /// Rewrites the header of the spill file at `path` to record `generation` (after its value
    /// was restored into a store as a new object). Only the header changes; it stays checksummed.
    static func restampGeneration(at path: String, to generation: UInt64) throws(MaterializeError) {
        var header = try readHeader(at: path)
        header.objectGeneration = generation
        let encoded = header.encoded()
        let fd: Int32
        switch _FileSyscall.openForWriting(path) {
        case .success(let value): fd = value
        case .failure(let errno): throw .io("open", errno, path: path, while: "updating spill-file header")
        }
        defer { _FileSyscall.close(fd) }
        try check(encoded.withUnsafeBytes { _FileSyscall.writeAll(fd, $0, at: 0) }, "pwrite", path, "updating spill-file header")
    }

    // MARK: Reading

    /// Reads and checks the header of the spill file at `path` (and its size against it).
    /// - Throws: `.fileNotFound`, `.truncatedFile`, `.foreignFile`, `.newerFormat`, `.corruptedFile`, `.ioFailed`.
    public static func readHeader(at path: String) throws(MaterializeError) -> SpillFileHeader {
        let source = try _FileSource(path: path)
        return try source.header()
    }

    /// Restores the spill file at `path` into `store` as a sealed object (id `id`, or the id in
    /// the file), decompressing straight into the store's memory, and returns a handle on it.
    /// The object is only sealed once every check passed; on any error it is abandoned.
    ///
    /// - Throws: the reading errors of `readHeader(at:)`; `.corruptedFile` for a payload whose
    ///   checksum or decompression fails; `.store` if the store refuses the object.
    public static func restore(from path: String, into store: SharedObjectStore, as id: ObjectID? = nil, eviction: SharedObjectStore.EvictionPolicy = .none) throws(MaterializeError) -> ObjectHandle {
        let source = try _FileSource(path: path)
        let header = try source.header()
        var builder: ObjectBuilder
        do {
            builder = try store.create(id ?? header.objectID, byteCount: header.rawByteCount, typeTag: header.typeTag, eviction: eviction, allowingEmpty: true)
        } catch {
            throw .store(error, while: "restoring spill file '\(path)'")
        }
        try narrowed { try builder.withUnsafeMutableBytes { try decodePayload(header, from: source, into: $0) } }
        do { return try builder.seal() } catch { throw .store(error, while: "sealing the object restored from '\(path)'") }
    }

    /// Reads a whole spill file held in memory (for tools, tests and the fuzzer): its header
    /// and a copy of its value's bytes, after every check.
    public static func read(fileBytes: [UInt8], path: String = "<memory>") throws(MaterializeError) -> (header: SpillFileHeader, value: [UInt8]) {
        let source = _MemorySource(bytes: fileBytes, path: path)
        let header = try source.header()
        var value = [UInt8](repeating: 0, count: header.rawByteCount)
        try narrowed { try value.withUnsafeMutableBytes { try decodePayload(header, from: source, into: $0) } }
        return (header, value)
    }

    /// Reads a whole spill file from disk into memory (a copy): header and value bytes.
    public static func read(at path: String) throws(MaterializeError) -> (header: SpillFileHeader, value: [UInt8]) {
        let source = try _FileSource(path: path)
        let header = try source.header()
        var value = [UInt8](repeating: 0, count: header.rawByteCount)
        try narrowed { try value.withUnsafeMutableBytes { try decodePayload(header, from: source, into: $0) } }
        return (header, value)
    }

    /// Reads a raw payload of `byteCount` bytes into `destination` in `parts` ranges at once
    /// (Dispatch's threads); the first error, if any, is thrown.
    static func readInParts(_ parts: Int, _ byteCount: Int, from source: some _SpillSource, into destination: UnsafeMutableRawBufferPointer) throws(MaterializeError) {
        let part = (byteCount / parts) & ~4095
        // Each part writes its own slot and its own range of `destination`.
        let failures = UnsafeMutableBufferPointer<MaterializeError?>.allocate(capacity: parts)
        failures.initialize(repeating: nil)
        defer { failures.deinitialize(); failures.deallocate() }
        nonisolated(unsafe) let slots = failures
        nonisolated(unsafe) let target = destination
        DispatchQueue.concurrentPerform(iterations: parts) { index in
            let start = index * part
            let end = index == parts - 1 ? byteCount : start + part
            var offset = start
            while offset < end {
                let chunk = UnsafeMutableRawBufferPointer(rebasing: target[offset..<min(end, offset + ioChunkByteCount)])
                do throws(MaterializeError) { try source.readExactly(into: chunk, at: SpillFileHeader.byteCount + offset) } catch {
                    slots[index] = error
                    return
                }
                offset += chunk.count
            }
        }
        if let failure = failures.compactMap({ $0 }).first { throw failure }
    }

    /// Decodes the payload into `destination` (exactly `rawByteCount` bytes), verifying both
    /// checksums and the decompressed length.
    static func decodePayload(_ header: SpillFileHeader, from source: some _SpillSource, into destination: UnsafeMutableRawBufferPointer) throws(MaterializeError) {
        precondition(destination.count == header.rawByteCount)
        func corrupted(_ what: String) -> MaterializeError {
            MaterializeError(.corruptedFile, "spill file '\(source.path)' \(what)", path: source.path, object: header.objectID)
        }
        let payloadChecksum = _Checksum()
        switch header.codec {
        case .raw:
            let parts = ParallelCopy.parts(forByteCount: header.rawByteCount)
            if parts > 1 {
                // A large raw payload: its parts are read at the same time (copies out of the
                // page cache, one per core), then checksummed in one pass.
                try readInParts(parts, header.rawByteCount, from: source, into: destination)
                payloadChecksum.update(UnsafeRawBufferPointer(destination))
            } else {
                var offset = 0
                while offset < header.rawByteCount {
                    let chunk = UnsafeMutableRawBufferPointer(rebasing: destination[offset..<min(header.rawByteCount, offset + ioChunkByteCount)])
                    try source.readExactly(into: chunk, at: SpillFileHeader.byteCount + offset)
                    payloadChecksum.update(UnsafeRawBufferPointer(chunk))
                    offset += chunk.count
                }
            }
            guard payloadChecksum.value == header.payloadChecksum else { throw corrupted("has a corrupted payload (checksum mismatch)") }
        case .lz4Frame:
            let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: min(ioChunkByteCount, max(header.storedByteCount, 1)), alignment: 64)
            defer { staging.deallocate() }
            let decompressor: _LZ4FrameDecompressor
            do { decompressor = try _LZ4FrameDecompressor() } catch {
                throw MaterializeError(.compressionFailed, "liblz4: \(error.name)", path: source.path)
            }
            var readOffset = 0, produced = 0
            while readOffset < header.storedByteCount {
                let count = min(staging.count, header.storedByteCount - readOffset)
                let input = UnsafeMutableRawBufferPointer(rebasing: staging[0..<count])
                try source.readExactly(into: input, at: SpillFileHeader.byteCount + readOffset)
                payloadChecksum.update(UnsafeRawBufferPointer(input))
                readOffset += count
                var consumed = 0
                while consumed < count {
                    guard !decompressor.finished else { throw corrupted("has a corrupted payload: bytes after the end of its LZ4 frame") }
                    let step: (consumed: Int, produced: Int)
                    do {
                        step = try decompressor.decompress(
                            UnsafeRawBufferPointer(rebasing: input[consumed..<count]),
                            into: UnsafeMutableRawBufferPointer(rebasing: destination[produced...]))
                    } catch {
                        throw corrupted("has a corrupted payload: it does not decompress (liblz4: \(error.name))")
                    }
                    consumed += step.consumed
                    produced += step.produced
                    if step.consumed == 0 && step.produced == 0 {
                        throw corrupted("has a corrupted payload: it decompresses to more than its \(header.rawByteCount) raw bytes")
                    }
                }
            }
            guard payloadChecksum.value == header.payloadChecksum else { throw corrupted("has a corrupted payload (checksum mismatch)") }
            guard decompressor.finished, produced == header.rawByteCount else {
                throw corrupted("has a corrupted payload: it decompresses to \(produced) bytes, its header says \(header.rawByteCount)")
            }
            guard _Checksum.of(UnsafeRawBufferPointer(destination)) == header.rawChecksum else {
                throw corrupted("has a corrupted payload: it decompresses to bytes whose checksum does not match")
            }
        }
    }

    // MARK: Helpers

    /// Runs `body`, whose only errors are `MaterializeError`s thrown through untyped `rethrows`
    /// APIs (`withUnsafeBytes` and friends), and rethrows them typed.
    static func narrowed<R>(_ body: () throws -> R) throws(MaterializeError) -> R {
        do { return try body() } catch let error as MaterializeError { throw error } catch {
            preconditionFailure("only MaterializeError is thrown here, got \(error)")
        }
    }

    static func check(_ result: Result<Void, SystemPackage.Errno>, _ function: String, _ path: String, _ doing: String) throws(MaterializeError) {
        if case .failure(let errno) = result { throw .io(function, errno, path: path, while: doing) }
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// fsyncs the directory holding `path`, so that a rename into it is durable.
    static func syncDirectory(containing path: String) throws(MaterializeError) {
        let directory = directory(of: path)
        switch _FileSyscall.openDirectory(directory) {
        case .success(let fd):
            defer { _FileSyscall.close(fd) }
            try check(_FileSyscall.sync(fd), "fsync", directory, "flushing directory")
        case .failure(let errno):
            throw .io("open", errno, path: directory, while: "flushing directory")
        }
    }
}

import SystemPackage

/// Where a spill file's bytes come from.
protocol _SpillSource: Sendable {
    var path: String { get }
    var byteCount: Int { get }
    /// Reads exactly `buffer.count` bytes at `offset`, or throws `.truncatedFile`.
    func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(MaterializeError)
}

extension _SpillSource {
    func header() throws(MaterializeError) -> SpillFileHeader {
        var bytes = [UInt8](repeating: 0, count: SpillFileHeader.byteCount)
        let available = min(byteCount, SpillFileHeader.byteCount)
        try SpillFile.narrowed { try bytes.withUnsafeMutableBytes { try readExactly(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<available]), at: 0) } }
        return try SpillFile.narrowed {
            try bytes.withUnsafeBytes { try SpillFileHeader.decode(UnsafeRawBufferPointer(rebasing: $0[0..<available]), fileByteCount: byteCount, path: path) }
        }
    }
}

/// A spill file on disk, open for reading. Closes its descriptor in `deinit`.
final class _FileSource: _SpillSource {
    let path: String
    let fd: Int32
    let byteCount: Int

    init(path: String) throws(MaterializeError) {
        self.path = path
        switch _FileSyscall.openForReading(path) {
        case .success(let value): fd = value
        case .failure(.noSuchFileOrDirectory):
            throw MaterializeError(.fileNotFound, "no spill file at '\(path)'", path: path)
        case .failure(let errno): throw .io("open", errno, path: path, while: "opening spill file")
        }
        switch _FileSyscall.size(fd) {
        case .success(let value): byteCount = value
        case .failure(let errno):
            _FileSyscall.close(fd)
            throw .io("fstat", errno, path: path, while: "reading spill file")
        }
    }

    deinit { _FileSyscall.close(fd) }

    func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(MaterializeError) {
        switch _FileSyscall.readFully(fd, into: buffer, at: offset) {
        case .success(let count) where count == buffer.count: return
        case .success:
            throw MaterializeError(.truncatedFile, "spill file '\(path)' ends early (it shrank while being read?)", path: path)
        case .failure(let errno): throw .io("pread", errno, path: path, while: "reading spill file")
        }
    }
}

/// A spill file held in memory (tests, the fuzzer).
struct _MemorySource: _SpillSource {
    let bytes: [UInt8]
    let path: String
    var byteCount: Int { bytes.count }

    func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(MaterializeError) {
        guard offset >= 0, offset <= bytes.count, buffer.count <= bytes.count - offset else {
            throw MaterializeError(.truncatedFile, "spill file '\(path)' ends early", path: path)
        }
        bytes.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<offset + buffer.count]))
        }
    }
}
