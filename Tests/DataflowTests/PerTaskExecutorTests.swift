import Dataflow
import DataflowTestWorkflows
import FreshProcessExecutor
import Foundation
import ObjectStore
import Testing

/// One graph, several executors: chosen per task by name or label, checked before anything runs.
@Suite(.serialized) struct PerTaskExecutorTests {
    /// "make" on a warm pool, "scale" on fresh processes without the store (by its label), "total"
    /// on the local default: the results are right, each attempt is recorded with its executor,
    /// and exactly the edge into the task without the store went through a file.
    @Test func oneGraphRunsOnThreeExecutors() async throws {
        try await withWorkdir { workdir in
            let pool = try ProcessExecutor(.init(workerCount: 1, executable: ProcessExecutorTests.workerPath, prefaultStore: false))
            defer { pool.shutdown() }
            let remote = FreshProcessExecutor(.init(executable: ProcessExecutorTests.workerPath, reachesStore: false))
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executors: ["pool": pool, "remote": remote])
            options.executorForLabel = ["remote": "remote"]
            options.runID = "mixed"
            let run = try await TestWorkflows.mixedExecutors().run(options)
            #expect(try run.result(named: "total", as: Double.self) == 10 * Double((0..<(1 << 16)).reduce(0) { $0 + $1 % 3 }))
            let events = try RunLog.read(at: run.logPath).filter { $0.kind == .attempt }
            let executorOf = Dictionary(uniqueKeysWithValues: events.compactMap { event in event.task.map { ($0, event.executor ?? "-") } })
            #expect(executorOf == ["make": "pool", "scale": "remote", "total": "local"])
            #expect(events.allSatisfy { $0.outcome == .succeeded })
            // The pool's attempts name their node; the run-started event names this one.
            #expect(events.first { $0.task == "make" }?.node == ProcessInfo.processInfo.hostName, "\(events.map(\.node))")
            #expect(try RunLog.read(at: run.logPath).first?.node == ProcessInfo.processInfo.hostName)
            let made = events.first { $0.task == "make" }?.value
            #expect(made?.reason.contains("cannot reach the store") == true, "\(String(describing: made))")
            let scaled = events.first { $0.task == "scale" }?.value
            #expect(scaled?.reason.contains("in memory only") == true, "\(String(describing: scaled))")
            let started = try RunLog.read(at: run.logPath).first { $0.kind == .runStarted }?.message ?? ""
            #expect(started.contains("pool (processes") && started.contains("remote (fresh-process"), "\(started)")
        }
    }

    @Test func anUnknownExecutorIsAnErrorBeforeAnythingRuns() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("unknown-executor")
            let ran = Counter()
            workflow.task("first") { ran.next() }
            workflow.task("gpu-task", options: TaskOptions(executor: "gpus")) { 1 }
            let error = await expectDataflowError(.unknownExecutor) {
                try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 1 << 20, executors: ["cpus": LocalExecutor()]))
            }
            #expect(error?.task == "gpu-task" && error?.message.contains("'gpus'") == true && error?.message.contains("cpus") == true)
            #expect(ran.current == 0)
        }
    }

    /// A task whose resources fit no node of its executor is refused before the run, naming
    /// the task, the executor and the resources.
    @Test func aTaskThatFitsNoNodeOfItsExecutorIsRefused() async throws {
        final class SmallNodes: Executor {
            var kind: String { "small-nodes" }
            var capabilities: ExecutorCapabilities { ExecutorCapabilities(reachesStore: true, nodeResources: Resources(cpu: 2, memoryBytes: 1 << 30)) }
            func run(_ attempt: AttemptLaunch) async -> AttemptEnding { await attempt.runHere() }
        }
        try await withWorkdir { workdir in
            let workflow = Workflow("too-big")
            workflow.task("big", options: TaskOptions(resources: Resources(cpu: 4), executor: "small")) { 1 }
            let error = await expectDataflowError(.resourcesExceedExecutor) {
                try await workflow.run(RunOptions(workdir: workdir, capacity: Resources(cpu: 64), storeCapacityBytes: 1 << 20, executors: ["small": SmallNodes()]))
            }
            #expect(error?.task == "big" && error?.message.contains("'small' (small-nodes)") == true && error?.message.contains("cpu 4.0 > 2.0") == true, "\(error?.message ?? "")")
        }
    }

    /// `never` on an edge to an executor without the store is refused before the run, naming the
    /// edge and both executors.
    @Test func neverAcrossExecutorsWithoutTheStoreIsRefused() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("never-across")
            let secret = workflow.task("secret", options: TaskOptions(policy: .never)) { 42 }
            workflow.task("remote-reader", secret, options: TaskOptions(executor: "remote")) { $0 + 1 }
            let remote = FreshProcessExecutor(.init(executable: ProcessExecutorTests.workerPath, reachesStore: false))
            let error = await expectDataflowError(.policyConflict) {
                try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 1 << 20, executors: ["remote": remote]))
            }
            let message = error?.message ?? ""
            #expect(message.contains("'secret' → 'remote-reader'") && message.contains("'local' (local)") && message.contains("'remote' (fresh-process)"), "\(message)")
        }
    }
}
