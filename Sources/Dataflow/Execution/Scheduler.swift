import Foundation
import Logging
import Materialize
import ObjectStore

/// The state of one run: which tasks wait, run, succeeded or failed.
///
/// Attempts run on *lanes*: `options.concurrency` child tasks that each take a ready task, run
/// it, record how it ended and take the next one, with no hand-off to a coordinator in between
/// (a chain runs on one lane without a task switch per hop). A lane with nothing to run parks
/// until a finishing attempt, a due retry or cancellation wakes it; the last lane to find the run
/// finished wakes the others and they all return.
///
/// - Note: Thread-safe: every mutable field is touched only under `lock`. Registering an output
///   with the materializer (which may write a file) runs outside it.
final class _Scheduler: @unchecked Sendable {  // mutable state is guarded by `lock`
    enum State { case waiting, ready, running, succeeded, failed, skipped }

    /// What a lane does next.
    enum Step {
        /// Run these attempts, in order (more than one only for trivial tasks: see `lane`).
        case run([_AttemptContext])
        case park
        case exit
    }

    /// Lanes of this run (set before they start).
    var laneCount = 1
    /// The most attempts a lane takes at once, while its tasks are trivial.
    static let batchLimit = 32
    /// A task that took less than this is trivial: its lane takes batches (one lock round trip
    /// for many tasks); a longer one makes it take one task at a time again.
    static let trivialTaskNanoseconds: UInt64 = 20_000

    let workflow: Workflow
    let nodes: [_TaskNode]
    let options: RunOptions
    let runID: String
    /// By task index: the caller asked for this task's result.
    let isRequested: [Bool]
    let store: SharedObjectStore
    let spill: SpillManager
    let materializer: Materializer
    let log: RunLog
    /// Each task's executor, and what each executor can do. Immutable.
    let plan: _ExecutorPlan
    /// By task index: the index of its executor in `plan.entries` (a copy, read per launch).
    let executorOfTask: [Int]
    /// By executor: the most attempts in flight at once. Immutable.
    let executorLimits: [Int]
    /// By executor: the executor, its name in the run, and whether it runs attempts with
    /// `runHere` on the lane (then the lane calls the runner itself). Immutable; arrays of their
    /// own, so that a launch reads what it needs without copying a plan entry.
    let executors: [any Executor]
    let executorNames: [String]
    let executorReachesStore: [Bool]
    let executorRunsAttemptsHere: [Bool]
    /// By executor: its engine places attempts by resources itself (not charged to `available`).
    let executorSchedulesResources: [Bool]
    /// By task index: every consumer of its output reaches the store. Immutable.
    let everyConsumerReachesStore: [Bool]
    /// By executor: attempts in flight now (riders of a batch not counted).
    var executorInFlight: [Int]
    /// Dependents of each task (data and ordering edges). Immutable.
    let dependents: _Adjacency
    /// How many tasks read each task's output. Immutable.
    let dataConsumers: [Int]
    /// Values read by a shell task (they need a file). Immutable.
    let readByShell: [Bool]

    let lock = _AdaptiveLock()
    var state: [State]
    var waitingOn: [Int]
    var outputs: [ObjectID?]
    /// The task's output was freed after its last consumer (so clean-up can skip it).
    var outputFreed: [Bool]
    var attempts: [Int]
    var failureRetries: [Int]
    var preemptionRetries: [Int]
    /// By task: times it ran again to recompute a lost value of its.
    var recomputations: [Int]
    /// By task: it runs again now to recompute its lost value, for the consumer named in
    /// `recomputingFor`; `rearmed` lists the consumers that wait for that value.
    var recomputing: [Bool]
    var recomputingFor: [Int]
    var rearmed: [[Int]]
    /// By task: its definition, hashed once (see `TaskLineage`). Immutable.
    let definitions: [_TaskDefinition]
    /// By task: the token its consumers record for its value (see `TaskLineage`).
    var tokens: [UInt64]
    /// Tasks not run because of `RunOptions.resume`.
    var reusedCount = 0
    /// By task: for a result reused by `RunOptions.resume`, the run and file it came from.
    var reusedFrom: [Int: (run: String?, file: String?)] = [:]
    /// By executor: it ran an attempt of this run.
    var executorUsed: [Bool]
    /// The run-finished event, once the run ended.
    var summary: RunLogEvent?
    /// `<values directory>/`: files under it are kept by policy.
    let valuesPrefix: String
    var ready: [Int] = []
    var readyHead = 0
    var available: Resources
    var running = 0
    var stopping = false
    /// No lane will start anything again: parked lanes return.
    var finished = false
    var cancelledFlag = false
    var failureList: [DataflowError.TaskFailure] = []
    var succeeded = 0
    /// Lanes waiting for work.
    var parked: [CheckedContinuation<Void, Never>] = []
    /// Retries waiting for their backoff, by timer.
    var retryTimers: [Int: Task<Void, Never>] = [:]
    var nextTimerKey = 0
    /// Run-log events recorded under `lock`, appended to the log by the lane after it lets go.
    var unloggedEvents: [RunLogEvent] = []
    /// The log is flushed once those events are appended (a task failed for good).
    var flushAfterLogging = false
    let progress: _ProgressLine
    /// What every attempt shares.
    let environment: _RunEnvironment

    init(workflow: Workflow, options: RunOptions, plan: _ExecutorPlan, runID: String, isRequested: [Bool], store: SharedObjectStore,
         spill: SpillManager, materializer: Materializer, log: RunLog, definitions: [_TaskDefinition], resumed: [Int: _ResumedTask]) {
        self.plan = plan
        self.definitions = definitions
        self.valuesPrefix = materializer.valuesDirectory + "/"
        self.executorOfTask = plan.executorOfTask
        self.executorLimits = plan.entries.map(\.limit)
        self.executors = plan.entries.map(\.executor)
        self.executorNames = plan.entries.map(\.name)
        self.executorReachesStore = plan.entries.map(\.capabilities.reachesStore)
        self.executorRunsAttemptsHere = plan.entries.map(\.capabilities.runsAttemptsHere)
        self.executorSchedulesResources = plan.entries.map(\.capabilities.schedulesResources)
        self.everyConsumerReachesStore = plan.everyConsumerReachesStore
        self.executorInFlight = [Int](repeating: 0, count: plan.entries.count)
        self.executorUsed = [Bool](repeating: false, count: plan.entries.count)
        self.workflow = workflow
        self.nodes = workflow.nodes
        self.options = options
        self.runID = runID
        self.isRequested = isRequested
        self.store = store
        self.spill = spill
        self.materializer = materializer
        self.log = log
        self.environment = _RunEnvironment(
            nodes: workflow.nodes, runID: runID, store: store, spill: spill, materializer: materializer,
            runDirectory: log.runDirectory, workflowName: workflow.name,
            defaultPolicy: workflow.defaultPolicy, memoryWaitSeconds: options.memoryWaitSeconds)
        self.progress = _ProgressLine(runID: runID, taskCount: workflow.nodes.count, mode: options.progress, writer: options.progressWriter)
        let count = workflow.nodes.count
        var dataConsumers = [Int](repeating: 0, count: count)
        var readByShell = [Bool](repeating: false, count: count)
        let dependents = _Adjacency(reversing: workflow.nodes.map(\.dependencies))
        for node in workflow.nodes {
            for input in node.inputs {
                dataConsumers[input] += 1
                if node.isShell { readByShell[input] = true }
            }
        }
        self.dependents = dependents
        self.dataConsumers = dataConsumers
        self.readByShell = readByShell
        state = [State](repeating: .waiting, count: count)
        waitingOn = workflow.nodes.map { $0.dependencies.count }
        outputs = [ObjectID?](repeating: nil, count: count)
        outputFreed = [Bool](repeating: false, count: count)
        attempts = [Int](repeating: 0, count: count)
        failureRetries = [Int](repeating: 0, count: count)
        preemptionRetries = [Int](repeating: 0, count: count)
        recomputations = [Int](repeating: 0, count: count)
        recomputing = [Bool](repeating: false, count: count)
        recomputingFor = [Int](repeating: -1, count: count)
        rearmed = [[Int]](repeating: [], count: count)
        tokens = [UInt64](repeating: 0, count: count)
        available = options.capacity
        ready.reserveCapacity(count)
        materializer.reserveCapacity(count)
        for (index, task) in resumed.sorted(by: { $0.key < $1.key }) { applyResumed(task, at: index, resumed: resumed) }
        for index in nodes.indices where waitingOn[index] == 0 && state[index] == .waiting { markReady(index) }
    }

    /// A task `RunOptions.resume` does not run (in `init`): it counts as done, its restored
    /// value (if something reads it) is registered for the consumers that run, and the run log
    /// says where it came from.
    func applyResumed(_ task: _ResumedTask, at index: Int, resumed: [Int: _ResumedTask]) {
        var event = RunLogEvent(kind: .reused, runID: runID)
        event.task = nodes[index].name
        event.lineage = task.lineage
        event.message = task.decision.action == .reuse
            ? "current: reused the result of run '\(task.decision.fromRun ?? "?")' from '\(task.decision.keptFile ?? "?")'"
            : "\(task.decision.reason) (run '\(task.decision.fromRun ?? "?")' made it)"
        if let handle = task.handle {
            var readers = 0
            for dependent in dependents[index] where resumed[dependent] == nil {
                readers += nodes[dependent].inputs.reduce(0) { $0 + ($1 == index ? 1 : 0) }
            }
            let facts = ValueFacts(
                isLeaf: dataConsumers[index] == 0, consumerNeedsFile: readByShell[index],
                everyConsumerReachesStore: everyConsumerReachesStore[index], remainingConsumers: readers, isRequestedResult: isRequested[index])
            let policy: MaterializationPolicy = (nodes[index].options.policy ?? workflow.defaultPolicy) == .never ? .never : .auto
            do {
                event.value = try materializer.register(handle, name: nodes[index].name, policy: policy, facts: facts)
            } catch {
                event.kind = .attempt
                event.outcome = .error
                event.message = "restoring the kept result from '\(task.decision.keptFile ?? "?")': \(error.message)"
                unloggedEvents.append(event)
                failForGood(index, outcome: .error, message: event.message ?? "")
                return
            }
            outputs[index] = handle.id
            reusedFrom[index] = (task.decision.fromRun, task.decision.keptFile)
        }
        unloggedEvents.append(event)
        state[index] = .succeeded
        tokens[index] = task.token
        reusedCount += 1
        for dependent in dependents[index] { waitingOn[dependent] -= 1 }
    }

    /// Whether the run was cancelled. Read after `execute` returns.
    var cancelled: Bool { lock.withLock { cancelledFlag } }
    /// Tasks that failed for good. Read after `execute` returns.
    var failures: [DataflowError.TaskFailure] { lock.withLock { failureList } }

    /// The run-finished event with the run's summary. Read after `execute` returns.
    var finishedSummary: RunLogEvent? { lock.withLock { summary } }

    /// Runs the workflow to the end. Returns an infrastructure error, if one ended the run.
    func execute() async -> DataflowError? {
        var started = RunLogEvent(kind: .runStarted, runID: runID)
        started.taskCount = nodes.count
        started.node = _hostName
        started.workflow = workflow.name
        let executorList = plan.entries.map { "\($0.name) (\($0.executor.kind), up to \($0.limit) at once)" }.joined(separator: ", ")
        started.message = "workflow '\(workflow.name)', store '\(store.name)', concurrency \(options.concurrency), capacity \(options.capacity), executors \(executorList)"
        log.append(started)

        // As many lanes as attempts may be in flight at once, over every executor the run uses.
        let inFlightLimit = plan.entries.reduce(0) { $0 + $1.limit }
        let laneCount = max(1, min(inFlightLimit, nodes.count))
        lock.withLock { self.laneCount = laneCount }
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<laneCount { group.addTask { await self.lane() } }
            }
        } onCancel: {
            self.cancelFromOutside()
        }
        let timers = lock.withLock { () -> [Task<Void, Never>] in
            defer { retryTimers.removeAll() }
            return Array(retryTimers.values)
        }
        for timer in timers { timer.cancel() }

        lock.withLock { showProgress(final: true) }
        let (succeededCount, failedCount, skippedCount, wasCancelled, reusedCount) = lock.withLock {
            (succeeded, failureList.count, state.filter { $0 == .skipped || $0 == .waiting || $0 == .ready }.count, cancelledFlag, self.reusedCount)
        }
        // A run that throws (cancelled, or a task failed) hands no result to its caller: its
        // results go too (files a policy keeps stay).
        cleanUp(includingResults: wasCancelled || failedCount > 0)
        var finishedEvent = RunLogEvent(kind: .runFinished, runID: runID)
        finishedEvent.taskCount = nodes.count
        finishedEvent.succeeded = succeededCount
        finishedEvent.failed = failedCount
        finishedEvent.skipped = skippedCount
        finishedEvent.reused = reusedCount > 0 ? reusedCount : nil
        finishedEvent.message = wasCancelled ? "cancelled" : (failedCount == 0 ? "succeeded" : "failed")
        addSummary(to: &finishedEvent, startedAt: started.time, includingResults: !(wasCancelled || failedCount > 0))
        log.append(finishedEvent)
        log.flush()
        lock.withLock { summary = finishedEvent }
        return nil
    }

    /// The requested results that succeeded. Read after `execute` returns.
    func results() -> _RunResults {
        _RunResults(workflow: workflow, outputs: lock.withLock { outputs }, isRequested: isRequested)
    }
}
