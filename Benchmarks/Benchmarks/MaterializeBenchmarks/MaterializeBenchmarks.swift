// Benchmarks of spill files. Each target of the Materialize issue is a paired benchmark: in
// every iteration the baseline and the candidate run back to back on the same bytes, so machine
// noise hits both, and the ratio is reported (plus both speeds in MB/s).
//
//   spill/incompressible/512MiB  spill (sample, write, fsync) vs write+fsync of the same bytes   ≥ 80%
//   spill/compressible/512MiB    spill (LZ4) vs min(liblz4 frame compression, write+fsync)       ≥ 80%
//   restore/cold/512MiB-*        restore of a cold spill file into the store vs a cold read      ≥ 80%
import Benchmark
import BenchLZ4
import Foundation
import Synchronization
import Glibc
import Materialize
import ObjectStore

let valueBytes = 512 << 20

extension BenchmarkMetric {
    static let candidateMBps = BenchmarkMetric.custom("candidate MB/s", polarity: .prefersLarger, useScalingFactor: false)
    static let baselineMBps = BenchmarkMetric.custom("baseline MB/s", polarity: .prefersLarger, useScalingFactor: false)
    static let lz4MBps = BenchmarkMetric.custom("liblz4 frame MB/s", polarity: .prefersLarger, useScalingFactor: false)
    static let percentOfBaseline = BenchmarkMetric.custom("% of baseline", polarity: .prefersLarger, useScalingFactor: false)
}

/// Seconds taken by `body`.
func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func megabytesPerSecond(_ bytes: Int, _ seconds: Double) -> Int { Int(Double(bytes) / seconds / 1e6) }

/// The plain baseline: write `bytes` to a new file with write(2) and fsync it.
func writeAndSync(_ bytes: UnsafeRawBufferPointer, to path: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    var offset = 0
    while offset < bytes.count {
        let written = write(fd, bytes.baseAddress! + offset, min(8 << 20, bytes.count - offset))
        precondition(written > 0)
        offset += written
    }
    fsync(fd)
    close(fd)
}

/// Drops a file's pages from the page cache, so the next read comes from disk.
func dropCache(_ path: String) {
    let fd = open(path, O_RDONLY)
    fdatasync(fd)
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    close(fd)
}

/// The plain baseline: read a whole file into `buffer` with read(2).
func readFile(_ path: String, into buffer: UnsafeMutableRawBufferPointer) -> Int {
    let fd = open(path, O_RDONLY)
    var offset = 0
    while true {
        let count = read(fd, buffer.baseAddress! + offset, min(8 << 20, buffer.count - offset))
        if count <= 0 { break }
        offset += count
    }
    close(fd)
    return offset
}

/// liblz4 frame compression of `bytes` in memory (same preferences as spill files), seconds.
func lz4FrameSeconds(_ bytes: UnsafeRawBufferPointer, scratch: UnsafeMutableRawBufferPointer) -> Double {
    var preferences = LZ4F_preferences_t()
    preferences.frameInfo.blockSizeID = LZ4F_max4MB
    preferences.frameInfo.blockMode = LZ4F_blockIndependent
    return seconds {
        let written = LZ4F_compressFrame(scratch.baseAddress, scratch.count, bytes.baseAddress, bytes.count, &preferences)
        precondition(LZ4F_isError(written) == 0)
    }
}

/// Scratch directories of the spill states, removed when the benchmark process exits.
let directoriesToRemove = Mutex<[String]>([])
/// Registers that removal, once.
let removeDirectoriesAtExit: Void = {
    atexit { directoriesToRemove.withLock { paths in for path in paths { try? FileManager.default.removeItem(atPath: path) } } }
}()

final class SpillState: @unchecked Sendable {
    let store: SharedObjectStore
    let directory: String
    let handle: ObjectHandle
    let scratch: UnsafeMutableRawBufferPointer
    var round = 0

    init(label: String, compressible: Bool) {
        let name = "bench-spill-\(label)-\(getpid())"
        store = try! SharedObjectStore.create(named: name, capacityBytes: 2 * valueBytes + (64 << 20), options: StoreOptions(prefault: true))
        try? SharedObjectStore.remove(named: name)
        let directory = NSTemporaryDirectory() + "dataflow-bench-\(getpid())-\(label)"
        self.directory = directory
        try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // The harness gives setup state no teardown: the scratch files (up to 512 MiB each) go at exit.
        directoriesToRemove.withLock { $0.append(directory) }
        _ = removeDirectoriesAtExit
        var state: UInt64 = 1
        let tensor = try! store.makeTensor(ObjectID(deriving: "value-\(label)"), shape: [valueBytes / 4], of: Float.self) { scalars in
            for index in scalars.indices {
                if compressible {
                    scalars[index] = Float((index / 256) % 16) / 16  // quantised: LZ4 compresses it well
                } else {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    scalars[index] = Float(state >> 40) / Float(1 << 24)  // random float32: it does not
                }
            }
        }
        handle = tensor.handle!
        scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: valueBytes + (8 << 20), alignment: 64)
        scratch.initializeMemory(as: UInt8.self, repeating: 0)
    }

}

let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.candidateMBps, .baselineMBps, .percentOfBaseline], warmupIterations: 1,
        maxDuration: .seconds(120), maxIterations: 12)

    Benchmark("spill/incompressible/512MiB", configuration: configuration) { (benchmark: Benchmark, state: SpillState) in
        let baselinePath = "\(state.directory)/baseline", spillPath = "\(state.directory)/spill"
        // Alternate which runs first, so that neither always meets the other's writeback.
        state.round += 1
        var baseline = 0.0, spill = 0.0
        if state.round % 2 == 0 { baseline = state.handle.withUnsafeBytes { bytes in seconds { writeAndSync(bytes, to: baselinePath) } } }
        spill = try! seconds { try SpillFile.write(state.handle, to: spillPath) }
        if state.round % 2 == 1 { baseline = state.handle.withUnsafeBytes { bytes in seconds { writeAndSync(bytes, to: baselinePath) } } }
        precondition(try! SpillFile.readHeader(at: spillPath).codec == .raw)
        try? FileManager.default.removeItem(atPath: baselinePath)
        try? FileManager.default.removeItem(atPath: spillPath)
        benchmark.measurement(.candidateMBps, megabytesPerSecond(valueBytes, spill))
        benchmark.measurement(.baselineMBps, megabytesPerSecond(valueBytes, baseline))
        benchmark.measurement(.percentOfBaseline, Int((baseline / spill * 100).rounded()))
    } setup: {
        SpillState(label: "random", compressible: false)
    }

    Benchmark("spill/compressible/512MiB", configuration: .init(
        metrics: [.candidateMBps, .baselineMBps, .lz4MBps, .percentOfBaseline], warmupIterations: 1,
        maxDuration: .seconds(120), maxIterations: 12)
    ) { (benchmark: Benchmark, state: SpillState) in
        let baselinePath = "\(state.directory)/baseline", spillPath = "\(state.directory)/spill"
        let disk = state.handle.withUnsafeBytes { bytes in seconds { writeAndSync(bytes, to: baselinePath) } }
        let lz4 = state.handle.withUnsafeBytes { bytes in lz4FrameSeconds(bytes, scratch: state.scratch) }
        let spill = try! seconds { try SpillFile.write(state.handle, to: spillPath) }
        precondition(try! SpillFile.readHeader(at: spillPath).codec == .lz4Frame)
        try? FileManager.default.removeItem(atPath: baselinePath)
        try? FileManager.default.removeItem(atPath: spillPath)
        let slowerBaseline = max(disk, lz4)  // the lower of the two speeds
        benchmark.measurement(.candidateMBps, megabytesPerSecond(valueBytes, spill))
        benchmark.measurement(.baselineMBps, megabytesPerSecond(valueBytes, disk))
        benchmark.measurement(.lz4MBps, megabytesPerSecond(valueBytes, lz4))
        benchmark.measurement(.percentOfBaseline, Int((slowerBaseline / spill * 100).rounded()))
    } setup: {
        SpillState(label: "quantised", compressible: true)
    }

    for compressible in [false, true] {
        let label = compressible ? "compressible" : "incompressible"
        Benchmark("restore/cold/512MiB-\(label)", configuration: configuration) { (benchmark: Benchmark, state: SpillState) in
            let path = "\(state.directory)/spill"
            if !FileManager.default.fileExists(atPath: path) { try! SpillFile.write(state.handle, to: path) }
            let fileBytes = try! SpillFile.readHeader(at: path).storedByteCount + 256
            dropCache(path)
            let baseline = seconds { precondition(readFile(path, into: state.scratch) == fileBytes) }
            dropCache(path)
            let id = ObjectID.random()
            let restore = try! seconds { _ = try SpillFile.restore(from: path, into: state.store, as: id) }
            try! state.store.delete(id)
            // Throughputs: the restore delivers the value's bytes, the plain read the file's bytes
            // (the same count for a raw file; for a compressed one the file is far smaller).
            let restoreSpeed = Double(valueBytes) / restore, readSpeed = Double(fileBytes) / baseline
            benchmark.measurement(.candidateMBps, Int(restoreSpeed / 1e6))
            benchmark.measurement(.baselineMBps, Int(readSpeed / 1e6))
            benchmark.measurement(.percentOfBaseline, Int((restoreSpeed / readSpeed * 100).rounded()))
        } setup: {
            SpillState(label: "restore-\(label)", compressible: compressible)
        }
    }
}
