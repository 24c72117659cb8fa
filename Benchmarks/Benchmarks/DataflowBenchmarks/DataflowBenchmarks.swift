// Benchmarks of the Dataflow scheduler on the local executor (issue 4's targets):
//   workflow/fanout-100k        100,000 independent trivial tasks, per task   (target ≤ 5 µs)
//   workflow/chain-10k          a 10,000-long chain of trivial tasks, per hop  (target ≤ 10 µs)
//   workflow/build-validate-100k  building and validating 100,000 tasks          (target < 0.5 s)
//   workflow/handoff/1KiB, /1GiB  one task hands a tensor to the next            (same cost)
// and, measured in the same run as a floor to compare with (this VM's speed drifts by 1.5x):
//   baseline/taskgroup-100k     100,000 bare Swift child tasks returning an Int, per task
//   baseline/task-chain-10k     10,000 bare Swift tasks, each awaited before the next, per hop
import Benchmark
import Dataflow
import Foundation
import ObjectStore

let workdir = NSTemporaryDirectory() + "dataflow-bench-wf-\(getpid())"

extension BenchmarkMetric {
    /// Wall-clock time of the run divided by its tasks (fan-out) or hops (chain).
    static let nanosecondsPerTask = BenchmarkMetric.custom("ns per task", polarity: .prefersSmaller, useScalingFactor: false)
}

func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try await body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func runOptions(_ store: SharedObjectStore) -> RunOptions {
    RunOptions(workdir: workdir, store: store)
}

let benchmarks: @Sendable () -> Void = {
    atexit { try? FileManager.default.removeItem(atPath: workdir) }  // run directories of the hand-off runs
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock], timeUnits: .milliseconds, warmupIterations: 1, maxDuration: .seconds(60), maxIterations: 5)

    Benchmark("workflow/fanout-100k", configuration: .init(metrics: [.wallClock, .nanosecondsPerTask], warmupIterations: 0, maxDuration: .seconds(120), maxIterations: 7)) { benchmark in
        let store = try! SharedObjectStore.create(named: "bench-fanout-\(getpid())-\(UInt16.random(in: 0...UInt16.max))", capacityBytes: 256 << 20, options: StoreOptions(maxObjects: 300_000))
        try? SharedObjectStore.remove(named: store.name)
        let workflow = Workflow("fanout")
        let count = 100_000
        for index in 0..<count { workflow.task("t\(index)") { index } }
        benchmark.startMeasurement()
        let elapsed = try! await seconds { _ = try await workflow.run(runOptions(store)) }
        benchmark.stopMeasurement()
        benchmark.measurement(.nanosecondsPerTask, Int(elapsed / Double(count) * 1e9))
        try? FileManager.default.removeItem(atPath: workdir)
    }

    Benchmark("workflow/chain-10k", configuration: .init(metrics: [.wallClock, .nanosecondsPerTask], warmupIterations: 0, maxDuration: .seconds(120), maxIterations: 15)) { benchmark in
        let store = try! SharedObjectStore.create(named: "bench-chain-\(getpid())-\(UInt16.random(in: 0...UInt16.max))", capacityBytes: 64 << 20)
        try? SharedObjectStore.remove(named: store.name)
        let workflow = Workflow("chain")
        let count = 10_000
        var previous = workflow.task("t0") { 0 }
        for index in 1..<count { previous = workflow.task("t\(index)", previous) { $0 + 1 } }
        benchmark.startMeasurement()
        let elapsed = try! await seconds { _ = try await workflow.run(runOptions(store)) }
        benchmark.stopMeasurement()
        benchmark.measurement(.nanosecondsPerTask, Int(elapsed / Double(count) * 1e9))
        try? FileManager.default.removeItem(atPath: workdir)
    }

    Benchmark("baseline/taskgroup-100k", configuration: .init(metrics: [.wallClock, .nanosecondsPerTask], warmupIterations: 0, maxDuration: .seconds(60), maxIterations: 7)) { benchmark in
        let count = 100_000
        benchmark.startMeasurement()
        let elapsed = await seconds {
            let sum = await withTaskGroup(of: Int.self) { group in
                for index in 0..<count { group.addTask { index } }
                return await group.reduce(0, +)
            }
            blackHole(sum)
        }
        benchmark.stopMeasurement()
        benchmark.measurement(.nanosecondsPerTask, Int(elapsed / Double(count) * 1e9))
    }

    Benchmark("baseline/task-chain-10k", configuration: .init(metrics: [.wallClock, .nanosecondsPerTask], warmupIterations: 0, maxDuration: .seconds(60), maxIterations: 15)) { benchmark in
        let count = 10_000
        benchmark.startMeasurement()
        let elapsed = await seconds {
            var value = 0
            for _ in 0..<count {
                let previous = value
                value = await Task { previous + 1 }.value
            }
            blackHole(value)
        }
        benchmark.stopMeasurement()
        benchmark.measurement(.nanosecondsPerTask, Int(elapsed / Double(count) * 1e9))
    }

    Benchmark("workflow/build-validate-100k") { benchmark in
        let workflow = Workflow("big")
        var previous = workflow.task("t0") { 0 }
        for index in 1..<100_000 {
            previous = index % 2 == 0 ? workflow.task("t\(index)", previous) { $0 + 1 } : workflow.task("t\(index)") { index }
        }
        try! workflow.validate(capacity: Resources(cpu: 2))
        blackHole(workflow)
    }

    for bytes in [1 << 10, 1 << 30] {
        let label = bytes == 1 << 10 ? "1KiB" : "1GiB"
        Benchmark("workflow/handoff/\(label)", configuration: .init(metrics: [.wallClock], timeUnits: .microseconds, warmupIterations: 1, maxDuration: .seconds(60), maxIterations: 10)) { (benchmark: Benchmark, store: SharedObjectStore) in
            // The tensor is made once, in setup; the measured run hands it from task to task.
            let id = ObjectID(deriving: "handoff-\(label)")
            let workflow = Workflow("handoff")
            let source = workflow.task("source") { () throws -> Tensor<Float> in try store.get(id, as: Tensor<Float>.self) }
            let next = workflow.task("next", source) { (x: Tensor<Float>) in x }
            workflow.task("last", next) { (x: Tensor<Float>) in x.count }
            var options = runOptions(store)
            options.results = ["source", "last"]  // keeps the shared tensor (a result) for the next iteration
            benchmark.startMeasurement()
            _ = try! await workflow.run(options)
            benchmark.stopMeasurement()
        } setup: {
            let store = try! SharedObjectStore.create(named: "bench-handoff-\(label)-\(getpid())", capacityBytes: bytes + (64 << 20))
            try? SharedObjectStore.remove(named: store.name)
            _ = try! store.makeTensor(ObjectID(deriving: "handoff-\(label)"), shape: [bytes / 4], of: Float.self) { span in
                for index in stride(from: 0, to: span.count, by: 1024) { span[index] = 1 }
            }
            return store
        }
    }
}
