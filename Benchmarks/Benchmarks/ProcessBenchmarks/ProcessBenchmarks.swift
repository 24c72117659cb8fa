// Benchmarks of the process executor (issue 5's targets), with warm workers (DataflowBenchWorker)
// started once in setup and kept across iterations, as a program that keeps an executor does
// (they exit when this process ends and their request pipes close):
//   processes/chain-1000            a 1,000-long chain of trivial tasks across workers, per hop  (target ≤ 100 µs)
//   local/chain-1000                the same chain on the local executor (baseline, same run)
//   baseline/worker-pingpong-1000   1,000 round trips to a warm worker through the same channel
//                                   with an empty request (ProcessExecutor.measureRoundTrips): the
//                                   floor under a hop, per round trip (issue 15's goal: a hop ≤ 20 µs)
//   processes/tensor-256MiB         a 256 MiB float32 tensor made in one worker, summed in another, end to end (target ≤ 35 ms)
//   local/tensor-256MiB             the same pipeline on the local executor (baseline)
//   baseline/fill+sum-256MiB        the same fill and sum in this process, no framework (the floor)
// The fill and the sum use every core (DispatchQueue.concurrentPerform), in the tasks and in the
// baseline alike.
import BenchWorkflows
import Benchmark
import Dataflow
import Foundation
import ObjectStore
import Synchronization

let workdir = NSTemporaryDirectory() + "dataflow-bench-proc-\(getpid())"
let storesToRemove = Mutex<[String]>([])

extension BenchmarkMetric {
    static let nanosecondsPerHop = BenchmarkMetric.custom("ns per hop", polarity: .prefersSmaller, useScalingFactor: false)
}

/// A warm pool and a store, made once for a benchmark.
struct Setup {
    let store: SharedObjectStore
    let pool: ProcessExecutor?
}

func makeSetup(_ label: String, capacity: Int, processes: Bool) -> Setup {
    let store = try! SharedObjectStore.create(named: "bench-proc-\(label)-\(getpid())", capacityBytes: capacity, options: StoreOptions(prefault: true))
    guard processes else {
        try? SharedObjectStore.remove(named: store.name)  // the name goes now; the mapping stays
        return Setup(store: store, pool: nil)
    }
    // Workers attach by name: it stays until this process exits.
    storesToRemove.withLock { $0.append(store.name) }
    atexit { storesToRemove.withLock { names in for name in names { try? SharedObjectStore.remove(named: name) } } }
    let worker = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("DataflowBenchWorker").path
    let pool = try! ProcessExecutor(.init(workerCount: 2, executable: worker))
    try! pool.start()
    return Setup(store: store, pool: pool)
}

func options(_ setup: Setup, results: [String]) -> RunOptions {
    var options = RunOptions(workdir: workdir, store: setup.store, results: results)
    options.progress = .never
    if let pool = setup.pool { options.executor = .processes(pool) }
    return options
}

func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try await body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

let benchmarks: @Sendable () -> Void = {
    atexit { try? FileManager.default.removeItem(atPath: workdir) }  // the runs' directories
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock], timeUnits: .milliseconds, warmupIterations: 2, maxDuration: .seconds(30), maxIterations: 20)

    for processes in [true, false] {
        let executor = processes ? "processes" : "local"
        Benchmark("\(executor)/chain-1000", configuration: .init(metrics: [.wallClock, .nanosecondsPerHop])) { (benchmark: Benchmark, setup: Setup) in
            let workflow = BenchWorkflows.chain(length: 1_000)
            benchmark.startMeasurement()
            let elapsed = try! await seconds { _ = try await workflow.run(options(setup, results: ["t999"])) }
            benchmark.stopMeasurement()
            benchmark.measurement(.nanosecondsPerHop, Int(elapsed / 1_000 * 1e9))
        } setup: {
            makeSetup("chain-\(executor)", capacity: 64 << 20, processes: processes)
        }

        Benchmark("\(executor)/tensor-256MiB") { (benchmark: Benchmark, setup: Setup) in
            let workflow = BenchWorkflows.tensorPipeline(scalars: 64 << 20)
            benchmark.startMeasurement()
            let run = try! await workflow.run(options(setup, results: ["reduce"]))
            benchmark.stopMeasurement()
            precondition(try! run.result(named: "reduce", as: Double.self) == Double(64 << 20))
        } setup: {
            makeSetup("tensor-\(executor)", capacity: 600 << 20, processes: processes)
        }
    }

    Benchmark("baseline/worker-pingpong-1000", configuration: .init(metrics: [.wallClock, .nanosecondsPerHop])) { (benchmark: Benchmark, setup: Setup) in
        benchmark.startMeasurement()
        let seconds = try! await setup.pool!.measureRoundTrips(1_000)
        benchmark.stopMeasurement()
        benchmark.measurement(.nanosecondsPerHop, Int(seconds * 1e9))
    } setup: {
        makeSetup("pingpong", capacity: 16 << 20, processes: true)
    }

    Benchmark("baseline/fill+sum-256MiB") { (benchmark: Benchmark, store: SharedObjectStore) in
        let id = ObjectID.random()
        let tensor = try! store.makeTensor(id, shape: [64 << 20], of: Float.self) { out in
            out.withUnsafeMutableBufferPointer { BenchWorkflows.fill($0, with: 1) }
        }
        precondition(BenchWorkflows.sum(tensor) == Double(64 << 20))
        try! store.delete(id)
    } setup: {
        makeSetup("baseline", capacity: 300 << 20, processes: false).store
    }
}
