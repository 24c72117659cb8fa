import Dataflow
import Foundation
import Materialize
import ObjectStore
import Synchronization

/// Runs a workflow on one executor: what the `pass/memory-<executor>` cases vary.
///
/// Extension point: a case family per executor. `BenchCases.memoryRunners` lists the runners;
/// each one gets `pass/memory-<name>` (chain, under every `--policies` policy) and
/// `pass/memory-<name>-fanout`.
protocol WorkflowRunner: Sendable {
    /// The executor's name in case names (`local` → `pass/memory-local`).
    var name: String { get }
    /// Gets ready before the timed runs on `store` (e.g. starts worker processes and has them
    /// attach the store, as the bench's own mapping of it is prefaulted).
    func prepare(store: SharedObjectStore, scratch: String) async throws
    func run(_ workflow: Workflow, options: RunOptions) async throws -> WorkflowRun
}

extension WorkflowRunner {
    func prepare(store: SharedObjectStore, scratch: String) async throws {}
}

/// The process executor: warm worker processes (this very program, started again in worker
/// mode) attached to the store. One pool for the whole `dataflow bench`, started before the
/// first timed run.
struct ProcessesRunner: WorkflowRunner {
    let name = "processes"

    /// The worker program: this one, unless `useWorkerExecutable` named another (the tests run
    /// the command's code inside a test runner, which cannot serve as a worker).
    private static let executable = Mutex<String?>(nil)
    private static let poolStorage = Mutex<ProcessExecutor?>(nil)

    static func useWorkerExecutable(_ path: String) {
        executable.withLock { $0 = path }
    }

    private static var pool: Result<ProcessExecutor, any Error> {
        Result {
            try poolStorage.withLock { pool in
                if let pool { return pool }
                let made = try ProcessExecutor(.init(workerCount: ProcessInfo.processInfo.activeProcessorCount, executable: executable.withLock { $0 }))
                pool = made
                return made
            }
        }
    }

    /// The bench's one pool.
    static func sharedPool() throws -> ProcessExecutor { try pool.get() }

    func prepare(store: SharedObjectStore, scratch: String) async throws {
        // The workers map the store and prefault it before the first timed run, as the bench
        // prefaults its own mapping (`BenchStore`): otherwise the first run alone pays for the
        // workers' page tables.
        try await Self.pool.get().attachWorkers(to: store, spillRoot: RunDirectory.spillRoot(workdir: scratch))
    }

    func run(_ workflow: Workflow, options: RunOptions) async throws -> WorkflowRun {
        var options = options
        options.executor = .processes(try Self.pool.get())
        return try await workflow.run(options)
    }
}

/// The local executor: threads of this process (`Workflow.run`).
struct LocalRunner: WorkflowRunner {
    let name = "local"
    func run(_ workflow: Workflow, options: RunOptions) async throws -> WorkflowRun {
        try await workflow.run(options)
    }
}

/// A store for the memory-passing cases: prefaulted (so that tasks write at memory speed, as a
/// long-lived store's warm pages do), with room for every value live at once, well under the
/// spilling watermark. Removed afterwards.
struct BenchStore {
    let store: SharedObjectStore

    init(valueBytes: Int, liveValues: Int, maxObjects: Int? = nil) throws {
        let name = "dataflow-bench-\(getpid())-\(ObjectID.random().description.prefix(8))"
        let capacity = (liveValues + 1) * (valueBytes + 4096) + (16 << 20)
        store = try SharedObjectStore.create(named: name, capacityBytes: capacity, options: StoreOptions(maxObjects: maxObjects, prefault: true))
    }

    func remove() { try? SharedObjectStore.remove(named: store.name) }
}

extension WorkflowRunner {
    /// Runs `workflow` on `store`, timed; then deletes its results from the store and removes
    /// its run directory (untimed).
    func timedRun(_ workflow: Workflow, store: SharedObjectStore, scratch: String, results: [String]) async throws -> Double {
        var options = RunOptions(workdir: scratch, store: store, results: results)
        options.progress = .never
        var finished: WorkflowRun?
        let seconds = try await Stopwatch.time { finished = try await run(workflow, options: options) }
        if let run = finished {
            for name in results { if let id = try? run.handle(named: name).id { _ = try? store.delete(id) } }
            try? FileManager.default.removeItem(atPath: run.directory)
        }
        return seconds
    }
}

/// `pass/memory-<executor>[<policy>]`: the chain of `pass/disk`, as a workflow whose tasks
/// write their values in place in the store and read their inputs as views. Under `auto`
/// (named without a suffix) nothing touches a file; `[always]` also writes every value
/// through to the run directory.
struct MemoryChain: BenchCase {
    let runner: any WorkflowRunner
    let policy: MaterializationPolicy
    var name: String { "pass/memory-\(runner.name)" + (policy == .auto ? "" : "[\(policy)]") }
    let unit = BenchUnit.run

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let bench = try BenchStore(valueBytes: bytes, liveValues: 3)
        defer { bench.remove() }
        try await runner.prepare(store: bench.store, scratch: settings.scratchDirectory)
        let count = bytes / 4
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            let workflow = BenchWorkflows.chain(count: count, stages: settings.stages, policy: policy)
            samples.append(try await runner.timedRun(workflow, store: bench.store, scratch: settings.scratchDirectory, results: [BenchWorkflows.chainResult(stages: settings.stages)]))
        }
        return samples
    }
}

/// `pass/memory-<executor>-fanout`: the graph of `pass/disk-fanout` as a workflow: a source,
/// K branches (`map`) that each transform their slice of the source's tensor (a view), and a
/// gather that copies the K slices into one tensor.
struct MemoryFanout: BenchCase {
    let runner: any WorkflowRunner
    var name: String { "pass/memory-\(runner.name)-fanout" }
    let unit = BenchUnit.run

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let bench = try BenchStore(valueBytes: bytes, liveValues: 4)
        defer { bench.remove() }
        try await runner.prepare(store: bench.store, scratch: settings.scratchDirectory)
        let count = bytes / 4, branches = max(settings.stages, 1)
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            let workflow = BenchWorkflows.fanout(count: count, branches: branches)
            samples.append(try await runner.timedRun(workflow, store: bench.store, scratch: settings.scratchDirectory, results: ["gather"]))
        }
        return samples
    }
}
