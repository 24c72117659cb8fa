import Foundation

/// `pass/disk`: a chain of K stages that pass their values through files, as a file-based
/// pipeline does. Stage 0 makes the value and writes it to a file (write + fsync); each later
/// stage reads the previous file, does the stage's work (`StageWork.transform`) and writes its
/// own file (write + fsync). One sample is the whole chain. Buffers are reused and faulted in
/// beforehand, which favours this case.
struct DiskChain: BenchCase {
    let name = "pass/disk"
    let unit = BenchUnit.run

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let input = BenchBuffer(bytes: bytes), output = BenchBuffer(bytes: bytes)
        let count = bytes / 4, stages = settings.stages
        let paths = (0..<stages).map { "\(settings.scratchDirectory)/chain-stage-\($0).bin" }
        defer { paths.forEach(BenchIO.remove) }
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            samples.append(try Stopwatch.time {
                StageWork.fillSource(output.floats, count: count)
                try BenchIO.writeAndSync(output.raw, count: bytes, to: paths[0])
                for stage in 1..<max(stages, 1) {
                    try BenchIO.read(paths[stage - 1], into: input.raw, count: bytes)
                    StageWork.transform(input.floats, output.floats, count: count)
                    try BenchIO.writeAndSync(output.raw, count: bytes, to: paths[stage])
                }
            })
            paths.forEach(BenchIO.remove)
        }
        return samples
    }
}

/// `pass/disk-fanout`: fan-out/fan-in through files. A source writes the value; K branches
/// (concurrently, on every core) each read their 1/K slice of it, transform it and write their
/// own file; a gather stage reads the K files back into one value and writes it. One sample is
/// the whole graph.
struct DiskFanout: BenchCase {
    let name = "pass/disk-fanout"
    let unit = BenchUnit.run

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let input = BenchBuffer(bytes: bytes), output = BenchBuffer(bytes: bytes)
        let count = bytes / 4, branches = max(settings.stages, 1)
        let sourcePath = "\(settings.scratchDirectory)/fanout-source.bin", resultPath = "\(settings.scratchDirectory)/fanout-result.bin"
        let branchPaths = (0..<branches).map { "\(settings.scratchDirectory)/fanout-branch-\($0).bin" }
        let allPaths = [sourcePath, resultPath] + branchPaths
        defer { allPaths.forEach(BenchIO.remove) }
        let inputPointer = SharedPointer(base: input.floats), outputPointer = SharedPointer(base: output.floats)
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            samples.append(try Stopwatch.time {
                StageWork.fillSource(output.floats, count: count)
                try BenchIO.writeAndSync(output.raw, count: count * 4, to: sourcePath)
                let failures = FailureBox()
                parallelFor(chunks: branches) { branch in
                    let range = chunkRange(branch, of: branches, count: count)
                    do throws(CommandError) {
                        try BenchIO.read(sourcePath, into: inputPointer.base + range.lowerBound, count: range.count * 4, offset: range.lowerBound * 4)
                        StageWork.transform(inputPointer.base + range.lowerBound, outputPointer.base + range.lowerBound, count: range.count)
                        try BenchIO.writeAndSync(outputPointer.base + range.lowerBound, count: range.count * 4, to: branchPaths[branch])
                    } catch {
                        failures.record(error)
                    }
                }
                if let error = failures.first { throw error }
                for branch in 0..<branches {
                    let range = chunkRange(branch, of: branches, count: count)
                    try BenchIO.read(branchPaths[branch], into: input.floats + range.lowerBound, count: range.count * 4)
                }
                try BenchIO.writeAndSync(input.raw, count: count * 4, to: resultPath)
            })
            allPaths.forEach(BenchIO.remove)
        }
        return samples
    }
}

/// The first error of several threads.
final class FailureBox: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var error: CommandError?
    func record(_ error: CommandError) { lock.withLock { if self.error == nil { self.error = error } } }
    var first: CommandError? { lock.withLock { error } }
}
