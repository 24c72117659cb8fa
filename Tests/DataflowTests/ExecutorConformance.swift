import Dataflow
import DataflowTestWorkflows
import FreshProcessExecutor
import Foundation
import ObjectStore
import Testing

/// The executor conformance suite: the same graphs on any executor (the workflows of
/// `TestWorkflows.conformance()` and `conformanceCancel()`, which a worker program builds too).
/// It checks the results, the run log's outcome sequence per task, and the store's integrity.
/// Every executor of the library passes it, and so must a custom one (SLURM and Ray reuse it).
/// The executor is the run's default; the run log names it by its kind.
func checkExecutorConformance(_ executor: any Executor, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    try await withWorkdir { workdir in
        try FileManager.default.createDirectory(atPath: TestWorkflows.markerDirectory, withIntermediateDirectories: true)
        let store = try SharedObjectStore.create(named: "conformance-\(getpid())-\(ObjectID.random().description.prefix(6))", capacityBytes: 64 << 20)
        defer { try? SharedObjectStore.remove(named: store.name) }

        // 1. The graph: results, outcomes, store integrity.
        var options = RunOptions(workdir: workdir, onFailure: .keepGoing, store: store, executor: executor)
        options.results = ["sum", "add", "echo", "double"]
        options.runID = "conformance-\(executor.kind)"
        let error = await expectDataflowError(.taskFailed, sourceLocation: sourceLocation) {
            try await TestWorkflows.conformance().run(options)
        }
        #expect(Set(error?.failures.map(\.task) ?? []) == ["fails", "preempted", "slow"], sourceLocation: sourceLocation)
        let failures = Dictionary(uniqueKeysWithValues: (error?.failures ?? []).map { ($0.task, $0) })
        #expect(failures["fails"]?.outcome == .failed && failures["fails"]?.message.contains("broken on purpose") == true, "\(failures)", sourceLocation: sourceLocation)
        #expect(failures["preempted"]?.outcome == .preempted, "\(failures)", sourceLocation: sourceLocation)
        #expect(failures["slow"]?.outcome == .failed && failures["slow"]?.message.contains("timed out") == true, "\(failures)", sourceLocation: sourceLocation)

        let log = "\(workdir)/runs/\(options.runID!)/run.jsonl"
        let events = try RunLog.read(at: log).filter { $0.kind == .attempt }
        func outcomes(_ task: String) -> [AttemptOutcome] { events.filter { $0.task == task }.compactMap(\.outcome) }
        for task in ["source", "double", "sum", "count", "add", "echo"] {
            #expect(outcomes(task) == [.succeeded], "\(task): \(outcomes(task))", sourceLocation: sourceLocation)
        }
        #expect(outcomes("fails") == [.failed] && outcomes("preempted") == [.preempted] && outcomes("slow") == [.failed], sourceLocation: sourceLocation)
        // Each attempt's start and end are its own: the one that ran to its 0.5 s timeout took that long.
        if let slow = events.first(where: { $0.task == "slow" }), let start = slow.start, let end = slow.end {
            #expect(end.timeIntervalSince(start) >= 0.45, "slow took \(end.timeIntervalSince(start)) s", sourceLocation: sourceLocation)
        } else {
            Issue.record("no start and end for 'slow'", sourceLocation: sourceLocation)
        }
        #expect(events.filter { $0.task != "echo" }.allSatisfy { $0.executor == executor.kind }, "\(events.map { $0.executor ?? "-" })", sourceLocation: sourceLocation)
        // The edge into the shell task went through a file; the values kept as results are readable.
        let addEvent = events.first { $0.task == "add" }
        #expect(addEvent?.value?.reason.contains("auto") == true, sourceLocation: sourceLocation)
        if !executor.capabilities.reachesStore {
            // Every consumer is off the store: each value it reads got an exchange file.
            let sourceEvent = events.first { $0.task == "source" }
            #expect(sourceEvent?.value?.reason.contains("cannot reach the store") == true, "\(String(describing: sourceEvent?.value))", sourceLocation: sourceLocation)
        }
        _ = try store.reclaimDeadProcesses()
        #expect(try store.statistics().creatingCount == 0, sourceLocation: sourceLocation)
        try store.verifyIntegrity()

        // The results, read back after a run of the part that succeeds.
        var good = RunOptions(workdir: workdir, store: store, results: ["sum", "echo", "double"], executor: executor)
        good.runID = "conformance-good-\(executor.kind)"
        let run = try await TestWorkflows.conformance(failingTasks: false).run(good)
        #expect(try run.result(named: "sum", as: Double.self) == 2 * Double((0..<(1 << 18)).reduce(0) { $0 + $1 % 5 }), sourceLocation: sourceLocation)
        #expect(try run.result(named: "echo", as: String.self) == "got 82", sourceLocation: sourceLocation)
        let doubled = try run.result(named: "double", as: Tensor<Float>.self)
        #expect(doubled[0...5].elementsEqual([0, 2, 4, 6, 8, 0]), sourceLocation: sourceLocation)

        // 2. A cancelled run: the attempt is stopped and recorded as cancelled.
        var cancelOptions = RunOptions(workdir: workdir, store: store, executor: executor)
        cancelOptions.runID = "conformance-cancel-\(executor.kind)-\(ObjectID.random().description.prefix(8))"
        let marker = TestWorkflows.cancelMarkerPath(runID: cancelOptions.runID!, attempt: 1)
        let running = Task { try await TestWorkflows.conformanceCancel().run(cancelOptions) }
        for _ in 0..<400 where !FileManager.default.fileExists(atPath: marker) { try await Task.sleep(nanoseconds: 25_000_000) }
        #expect(FileManager.default.fileExists(atPath: marker), "the task never started", sourceLocation: sourceLocation)
        running.cancel()
        await expectDataflowError(.runCancelled, sourceLocation: sourceLocation) { try await running.value }
        let cancelEvents = try RunLog.read(at: "\(workdir)/runs/\(cancelOptions.runID!)/run.jsonl").filter { $0.kind == .attempt }
        #expect(cancelEvents.compactMap(\.outcome) == [.cancelled], "\(cancelEvents)", sourceLocation: sourceLocation)
        _ = try store.reclaimDeadProcesses()
        try store.verifyIntegrity()
    }
}

/// Every executor of the library, and the example custom executor, pass the conformance suite.
@Suite(.serialized) struct ExecutorConformanceTests {
    @Test func theLocalExecutorConforms() async throws {
        try await checkExecutorConformance(LocalExecutor())
    }

    @Test func theProcessExecutorConforms() async throws {
        let pool = try ProcessExecutor(.init(workerCount: 2, executable: ProcessExecutorTests.workerPath, prefaultStore: false))
        defer { pool.shutdown() }
        try await checkExecutorConformance(pool)
    }

    /// The example custom executor (Examples/FreshProcessExecutor, public API only), its
    /// workers attached to the store.
    @Test func theExampleFreshProcessExecutorConforms() async throws {
        try await checkExecutorConformance(FreshProcessExecutor(.init(executable: ProcessExecutorTests.workerPath)))
    }

    /// The same, its workers behaving as on another node: every edge into or out of them goes
    /// through a file in the run directory.
    @Test func theExampleExecutorWithoutTheStoreConformsThroughFiles() async throws {
        try await checkExecutorConformance(FreshProcessExecutor(.init(executable: ProcessExecutorTests.workerPath, reachesStore: false)))
    }
}
