import Dataflow
import Foundation
import ObjectStore

/// `task/overhead-fanout`: N trivial independent tasks (each returns an `Int`) on the local
/// executor; a sample is the run's time divided by N (seconds per task). Building the graph is
/// not timed.
struct TaskOverheadFanout: BenchCase {
    let name = "task/overhead-fanout"
    let unit = BenchUnit.operation
    func sizes(_ settings: BenchSettings) -> [Int] { [MemoryLayout<Int>.size] }

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let count = settings.fanoutTasks
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            let workflow = Workflow("bench-fanout-\(count)")
            for index in 0..<count { workflow.task("t\(index)") { index } }
            let bench = try BenchStore(valueBytes: count * 256, liveValues: 1, maxObjects: min(StoreOptions.maximumMaxObjects, 2 * count + 1024))
            defer { bench.remove() }
            // No result is kept: each value is freed as it is made (it has no consumer).
            let seconds = try await LocalRunner().timedRun(workflow, store: bench.store, scratch: settings.scratchDirectory, results: [])
            samples.append(seconds / Double(count))
        }
        return samples
    }
}

/// `task/overhead-chain`: a chain of N tasks, each adding one to its input; a sample is the
/// run's time divided by N (seconds per hop).
struct TaskOverheadChain: BenchCase {
    let name = "task/overhead-chain"
    let unit = BenchUnit.operation
    func sizes(_ settings: BenchSettings) -> [Int] { [MemoryLayout<Int>.size] }

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let count = settings.chainTasks
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            let workflow = Workflow("bench-chain-\(count)")
            var previous = workflow.task("hop-0") { 0 }
            for index in 1..<max(count, 1) { previous = workflow.task("hop-\(index)", previous) { (x: Int) in x + 1 } }
            let bench = try BenchStore(valueBytes: 1 << 20, liveValues: 1, maxObjects: 4096)
            defer { bench.remove() }
            let seconds = try await LocalRunner().timedRun(workflow, store: bench.store, scratch: settings.scratchDirectory, results: [previous.name])
            samples.append(seconds / Double(count))
        }
        return samples
    }
}

/// `baseline/taskgroup`: the floor under `task/overhead-fanout`: as many bare Swift child tasks
/// (a task group, each returning an `Int`) as that case has tasks, with no store, run log or
/// bookkeeping; seconds per task. Measured in the same run, because this machine's speed drifts.
struct TaskGroupBaseline: BenchCase {
    let name = "baseline/taskgroup"
    let unit = BenchUnit.operation
    func sizes(_ settings: BenchSettings) -> [Int] { [MemoryLayout<Int>.size] }

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let count = settings.fanoutTasks
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            let clock = ContinuousClock()
            let start = clock.now
            let sum = await withTaskGroup(of: Int.self) { group in
                for index in 0..<count { group.addTask { index } }
                return await group.reduce(0, +)
            }
            let elapsed = clock.now - start
            precondition(sum == count * (count - 1) / 2, "the task group lost a child")
            samples.append(elapsed.seconds / Double(count))
        }
        return samples
    }
}

/// `baseline/task-chain`: the floor under `task/overhead-chain`: as many bare Swift tasks as that
/// case has hops, each made and awaited before the next (adding one to the last one's value);
/// seconds per hop.
struct TaskChainBaseline: BenchCase {
    let name = "baseline/task-chain"
    let unit = BenchUnit.operation
    func sizes(_ settings: BenchSettings) -> [Int] { [MemoryLayout<Int>.size] }

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let count = max(settings.chainTasks, 1)
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            let clock = ContinuousClock()
            let start = clock.now
            var value = 0
            for _ in 0..<count {
                let previous = value
                value = await Task { previous + 1 }.value
            }
            let elapsed = clock.now - start
            precondition(value == count, "the chain lost a hop")
            samples.append(elapsed.seconds / Double(count))
        }
        return samples
    }
}

/// `task/overhead-chain-processes`: the chain of `task/overhead-chain` on the process executor
/// (warm workers, attached to the store before the timed runs), so that every hop goes from the
/// scheduler to a worker process and back; seconds per hop. Up to 2,000 hops
/// (`BenchSettings.chainTasks` caps it).
struct TaskOverheadChainProcesses: BenchCase {
    let name = "task/overhead-chain-processes"
    let unit = BenchUnit.operation
    func sizes(_ settings: BenchSettings) -> [Int] { [MemoryLayout<Int>.size] }

    static func hopCount(_ settings: BenchSettings) -> Int { max(1, min(settings.chainTasks, 2_000)) }

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let count = Self.hopCount(settings)
        let workflow = BenchWorkflows.hops(count: count)
        let bench = try BenchStore(valueBytes: 1 << 20, liveValues: 1, maxObjects: 4096)
        defer { bench.remove() }
        let runner = ProcessesRunner()
        try await runner.prepare(store: bench.store, scratch: settings.scratchDirectory)
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            let seconds = try await runner.timedRun(workflow, store: bench.store, scratch: settings.scratchDirectory, results: ["hop-\(count - 1)"])
            samples.append(seconds / Double(count))
        }
        return samples
    }
}

/// `baseline/worker-pingpong`: the floor under `task/overhead-chain-processes`: round trips
/// between this process and one warm worker of the same pool through the same channel, with an
/// empty request the worker answers at once (`ProcessExecutor.measureRoundTrips`); seconds per
/// round trip, as many as that case has hops.
struct WorkerPingPongBaseline: BenchCase {
    let name = "baseline/worker-pingpong"
    let unit = BenchUnit.operation
    func sizes(_ settings: BenchSettings) -> [Int] { [MemoryLayout<Int>.size] }

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let pool = try ProcessesRunner.sharedPool()
        try pool.start()
        _ = try await pool.measureRoundTrips(100)  // warm
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            samples.append(try await pool.measureRoundTrips(TaskOverheadChainProcesses.hopCount(settings)))
        }
        return samples
    }
}
