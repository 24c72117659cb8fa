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
