import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Plain POSIX file I/O for the disk-passing cases: what a pipeline that passes files does.
enum BenchIO {
    static let chunk = 8 << 20

    /// Writes `count` bytes at `source` to `path` (created or truncated, mode 0600), then fsyncs it.
    static func writeAndSync(_ source: UnsafeRawPointer, count: Int, to path: String) throws(CommandError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: path, operation: "open", reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var done = 0
        while done < count {
            let written = write(fd, source + done, min(chunk, count - done))
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { throw .io(path: path, operation: "write", reason: String(cString: strerror(errno))) }
            done += written
        }
        guard fsync(fd) == 0 else { throw .io(path: path, operation: "fsync", reason: String(cString: strerror(errno))) }
    }

    /// Reads `count` bytes of `path` from `offset` into `target`.
    static func read(_ path: String, into target: UnsafeMutableRawPointer, count: Int, offset: Int = 0) throws(CommandError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: path, operation: "open", reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var done = 0
        while done < count {
            let got = pread(fd, target + done, min(chunk, count - done), off_t(offset + done))
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { throw .io(path: path, operation: "read", reason: got == 0 ? "file too short" : String(cString: strerror(errno))) }
            done += got
        }
    }

    static func remove(_ path: String) { unlink(path) }
}

/// A page-aligned buffer of ordinary memory, faulted in at creation (so that timings never
/// include first-touch page faults).
final class BenchBuffer: @unchecked Sendable {  // callers split access between threads themselves
    let count: Int
    let raw: UnsafeMutableRawPointer

    init(bytes: Int) {
        count = max(bytes, 1)
        raw = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 4096)
        memset(raw, 0, count)
    }
    deinit { raw.deallocate() }

    var floats: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }
    var floatCount: Int { count / 4 }
}

/// The work every stage of a passing case does, identical for files and for the store: the
/// source fills a ramp; each later stage reads its input and writes `x * 1.0001 + 0.5`. Large
/// values are split over every core (as a real stage would be), the same way in every case.
enum StageWork {
    /// Below this many scalars a stage runs on one thread.
    static let parallelThreshold = 1 << 18

    static func fillSource(_ out: UnsafeMutablePointer<Float>, count: Int) {
        let target = SharedPointer(base: out)
        split(count) { range in
            for index in range { target.base[index] = Float(index & 1023) * (1 / 1024) }
        }
    }

    static func transform(_ input: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int) {
        let source = SharedReadPointer(base: input), target = SharedPointer(base: out)
        split(count) { range in
            for index in range { target.base[index] = source.base[index] * 1.0001 + 0.5 }
        }
    }

    /// Runs `body` over `0..<count`, in one chunk per core for large counts.
    private static func split(_ count: Int, _ body: @Sendable (Range<Int>) -> Void) {
        let chunks = count < parallelThreshold ? 1 : ProcessInfo.processInfo.activeProcessorCount
        parallelFor(chunks: chunks) { body(chunkRange($0, of: chunks, count: count)) }
    }

    /// Pseudo-random float32 (does not compress: spill files store it raw).
    static func fillRandom(_ out: UnsafeMutablePointer<Float>, count: Int, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for index in 0..<count { out[index] = rng.nextSignedUnit() }
    }

    /// Quantised float32 (16 levels in runs of 256 scalars): LZ4 compresses it well, as it does
    /// quantised or sparse features (the data of the README's `spill/compressible` benchmark).
    static func fillQuantised(_ out: UnsafeMutablePointer<Float>, count: Int) {
        for index in 0..<count { out[index] = Float((index / 256) % 16) / 16 }
    }
}
