import CLZ4
import Foundation

/// `baseline/memcpy`: one copy of the value between two faulted-in buffers (per copy).
struct MemcpyBaseline: BenchCase {
    let name = "baseline/memcpy"
    let unit = BenchUnit.operation

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let source = BenchBuffer(bytes: bytes), target = BenchBuffer(bytes: bytes)
        StageWork.fillRandom(source.floats, count: source.floatCount, seed: 1)
        let repetitions = Stopwatch.repetitions(forBytes: bytes, bytesPerSecond: 10e9)
        return (0..<settings.runs).map { _ in
            Stopwatch.time { for _ in 0..<repetitions { memcpy(target.raw, source.raw, bytes) } } / Double(repetitions)
        }
    }
}

/// `baseline/memcpy-parallel`: the same copy split over every core, each thread a `memcpy` of
/// its part at once (what `ParallelCopy` does; the floor for the store's large copies).
struct ParallelMemcpyBaseline: BenchCase {
    let name = "baseline/memcpy-parallel"
    let unit = BenchUnit.operation

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let source = BenchBuffer(bytes: bytes), target = BenchBuffer(bytes: bytes)
        StageWork.fillRandom(source.floats, count: source.floatCount, seed: 1)
        let repetitions = Stopwatch.repetitions(forBytes: bytes, bytesPerSecond: 10e9)
        let threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
        // Safe: disjoint ranges of buffers that outlive the copies.
        nonisolated(unsafe) let to = target.raw, from = UnsafeRawPointer(source.raw)
        let part = bytes / threads
        return (0..<settings.runs).map { _ in
            Stopwatch.time {
                for _ in 0..<repetitions {
                    DispatchQueue.concurrentPerform(iterations: threads) { index in
                        let offset = index * part
                        memcpy(to + offset, from + offset, index == threads - 1 ? bytes - offset : part)
                    }
                }
            } / Double(repetitions)
        }
    }
}

/// `baseline/file-write-fsync-read`: write the value to a file, fsync it, read it back (from
/// the page cache, as the next stage of a pipeline on the same machine would).
struct FileWriteFsyncReadBaseline: BenchCase {
    let name = "baseline/file-write-fsync-read"
    let unit = BenchUnit.run

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let source = BenchBuffer(bytes: bytes), target = BenchBuffer(bytes: bytes)
        StageWork.fillRandom(source.floats, count: source.floatCount, seed: 2)
        let path = "\(settings.scratchDirectory)/baseline-file.bin"
        defer { BenchIO.remove(path) }
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            samples.append(try Stopwatch.time {
                try BenchIO.writeAndSync(source.raw, count: bytes, to: path)
                try BenchIO.read(path, into: target.raw, count: bytes)
            })
            BenchIO.remove(path)
        }
        return samples
    }
}

/// `baseline/lz4-frame`: liblz4 frame compression then decompression of quantised float32
/// (compressible: see `StageWork.fillQuantised`), one sample per round trip. The speed `SpillFile` builds on.
struct LZ4FrameBaseline: BenchCase {
    let name = "baseline/lz4-frame"
    let unit = BenchUnit.run

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let source = BenchBuffer(bytes: bytes), restored = BenchBuffer(bytes: bytes)
        StageWork.fillQuantised(source.floats, count: source.floatCount)
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.blockSizeID = LZ4F_max4MB
        preferences.frameInfo.blockMode = LZ4F_blockIndependent
        let bound = LZ4F_compressFrameBound(bytes, &preferences)
        let compressed = BenchBuffer(bytes: bound)
        var context: OpaquePointer?
        guard LZ4F_isError(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))) == 0, let context else {
            throw CommandError.benchFailed(benchCase: name, bytes: bytes, reason: "LZ4F_createDecompressionContext failed")
        }
        defer { LZ4F_freeDecompressionContext(context) }
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            var failure: String?
            let seconds = Stopwatch.time {
                let written = LZ4F_compressFrame(compressed.raw, bound, source.raw, bytes, &preferences)
                guard LZ4F_isError(written) == 0 else { failure = String(cString: LZ4F_getErrorName(written)); return }
                var sourceOffset = 0, targetOffset = 0
                while sourceOffset < written {
                    var sourceSize = written - sourceOffset, targetSize = bytes - targetOffset
                    let hint = LZ4F_decompress(context, restored.raw + targetOffset, &targetSize, compressed.raw + sourceOffset, &sourceSize, nil)
                    guard LZ4F_isError(hint) == 0 else { failure = String(cString: LZ4F_getErrorName(hint)); return }
                    sourceOffset += sourceSize
                    targetOffset += targetSize
                    if hint == 0 { break }
                }
                if targetOffset != bytes { failure = "decompressed \(targetOffset) bytes, expected \(bytes)" }
            }
            if let failure { throw CommandError.benchFailed(benchCase: name, bytes: bytes, reason: failure) }
            samples.append(seconds)
        }
        guard memcmp(source.raw, restored.raw, bytes) == 0 else {
            throw CommandError.benchFailed(benchCase: name, bytes: bytes, reason: "the round trip changed the bytes")
        }
        return samples
    }
}

/// `baseline/stage-work`: the work of the `pass/*` chain alone — the source's fill and K-1
/// transforms between two buffers of ordinary memory, with no file and no store. The floor of
/// both pass cases: what is left after it is the cost of passing the values.
struct StageWorkBaseline: BenchCase {
    let name = "baseline/stage-work"
    let unit = BenchUnit.run

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let first = BenchBuffer(bytes: bytes), second = BenchBuffer(bytes: bytes)
        let count = bytes / 4
        return (0..<settings.runs).map { _ in
            Stopwatch.time {
                var (input, output) = (first, second)
                StageWork.fillSource(output.floats, count: count)
                for _ in 1..<max(settings.stages, 1) {
                    swap(&input, &output)
                    StageWork.transform(input.floats, output.floats, count: count)
                }
            }
        }
    }
}
