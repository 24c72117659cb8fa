import Foundation
import Logging
import Materialize
import ObjectStore

extension Workflow {
    /// Runs the workflow on the local executor (threads of this process) and returns its
    /// results. Tasks start as soon as their inputs are ready, at most `options.concurrency` at a
    /// time and never over `options.capacity`. Outputs pass to consumers through the store
    /// without a copy; each value is freed or kept by its policy once its last consumer is done.
    /// Every attempt is recorded in `<workdir>/runs/<run id>/run.jsonl`.
    ///
    /// Cancelling the calling task stops the run: no new task starts, running ones are
    /// cancelled, unfinished objects are abandoned, and `.runCancelled` is thrown.
    ///
    /// - Throws: the validation errors of `validate(capacity:)`; `.taskFailed` listing every
    ///   task that failed for good; `.runCancelled`; `.store` / `.runDirectory` for
    ///   infrastructure failures.
    public func run(_ options: RunOptions = RunOptions()) async throws(DataflowError) -> WorkflowRun {
        try options.validate()
        try validateGraph()
        // The executors the run uses connect first (a cluster says what its nodes offer), then
        // the plan is made again with what they now say they can do.
        var plan = try _ExecutorPlan(workflow: self, options: options)
        for entry in plan.entries { try await entry.executor.connect() }
        plan = try _ExecutorPlan(workflow: self, options: options)
        let isRequested = try requestedResults(options.results)
        _ = try checkedRerun(options.rerun)
        let runID = options.runID ?? RunOptions.makeRunID(workflow: name)
        let ownsStore = options.store == nil
        let definitions = nodes.map(_TaskDefinition.init)
        // A resumed run that runs nothing needs room for the results it restores only (making
        // a store costs time in proportion to its capacity: tmpfs pages are reserved up front).
        var capacity = options.storeCapacityBytes
        let planner = options.resume
            ? resumePlanner(runID: runID, workdir: options.workdir, rerun: options.rerun, definitions: definitions, isRequested: isRequested)
            : nil
        if let planner, ownsStore, let needed = bytesToRestoreIfNothingRuns(planner) {
            capacity = min(capacity, needed + needed / 4 + (16 << 20))
        }
        let store: SharedObjectStore
        do throws(ObjectStoreError) {
            if let given = options.store {
                store = given
            } else {
                let objects = options.maxObjects ?? RunOptions.objectsNeeded(taskCount: nodes.count, capacityBytes: capacity)
                store = try SharedObjectStore.create(
                    named: RunOptions.storeName(runID: runID), capacityBytes: capacity, options: StoreOptions(maxObjects: objects))
            }
        } catch {
            var failure = DataflowError(.store, "cannot create the run's store: \(error.message)")
            failure.underlying = error
            throw failure
        }
        defer { if ownsStore { try? SharedObjectStore.remove(named: store.name) } }
        let runDirectory = RunDirectory(workdir: options.workdir, runID: runID)
        let directory = runDirectory.path
        let log = try RunLog(runDirectory)  // creates <workdir>/runs/<run id>/ first
        let spill: SpillManager
        let materializer: Materializer
        do {
            spill = try SpillManager(store: store, rootDirectory: RunDirectory.spillRoot(workdir: options.workdir), watermarks: options.watermarks)
            materializer = try Materializer(
                spill: spill, runDirectory: directory, valuesDirectory: runDirectory.valuesDirectory,
                exchangeDirectory: runDirectory.exchangeDirectory)
        } catch {
            var failure = DataflowError(.runDirectory, "cannot prepare run directory '\(directory)': \(error.message)")
            failure.underlying = error
            throw failure
        }
        spill.startBackgroundSpilling()
        defer { spill.stopBackgroundSpilling() }
        // Sparse: a run that resumes nothing pays nothing per task for it.
        let resumed = planner.map { resumedTasks($0, runID: runID, store: store) } ?? [:]
        // Each executor the run uses hears that it starts, and that it ended (then, if the
        // store ends with the run, no worker may keep its memory mapped).
        var started: [_ExecutorPlan.Entry] = []
        func executorRun(_ entry: _ExecutorPlan.Entry) -> ExecutorRun {
            ExecutorRun(runID: runID, directory: runDirectory, store: store, storeEndsWithRun: ownsStore, executorName: entry.name)
        }
        for entry in plan.entries {
            do {
                try await entry.executor.runStarted(executorRun(entry))
                started.append(entry)
            } catch {
                for earlier in started { await earlier.executor.runEnded(executorRun(earlier)) }
                throw error
            }
        }
        let scheduler = _Scheduler(
            workflow: self, options: options, plan: plan, runID: runID, isRequested: isRequested, store: store,
            spill: spill, materializer: materializer, log: log, definitions: definitions, resumed: resumed)
        let outcome = await scheduler.execute()
        // Not in the caller's task: a cancelled run must still end cleanly on every executor
        // (a cancelled task would, e.g., kill the warm workers it asks to detach).
        let entries = plan.entries
        let runs = entries.map(executorRun)
        await Task {
            for (entry, run) in zip(entries, runs) { await entry.executor.runEnded(run) }
        }.value
        let run = WorkflowRun(
            runID: runID, directory: directory, store: store, spill: spill, ownsStore: ownsStore,
            results: scheduler.results(), materializer: materializer, failures: scheduler.failures,
            summary: scheduler.finishedSummary ?? RunLogEvent(kind: .runFinished, runID: runID))
        if scheduler.cancelled {
            throw DataflowError(.runCancelled, "run '\(runID)' of workflow '\(name)' was cancelled")
        }
        if let infrastructure = outcome {
            throw infrastructure
        }
        if !scheduler.failures.isEmpty {
            var failure = DataflowError(
                .taskFailed, _FailureSummary.message(runID: runID, failures: scheduler.failures, logPath: runDirectory.logPath),
                task: scheduler.failures.first?.task)
            failure.failures = scheduler.failures
            throw failure
        }
        return run
    }
}

extension Workflow {
    /// By task index: the caller asked for this task's result (`names`; nil: every leaf).
    /// - Throws: `.unknownTask` for a name that is no task.
    func requestedResults(_ names: [String]?) throws(DataflowError) -> [Bool] {
        var isRequested = [Bool](repeating: false, count: nodes.count)
        if let names {
            for name in names {
                guard let index = index(of: name) else {
                    throw DataflowError(.unknownTask, "result \(_quoted(name)) is no task of workflow '\(self.name)'", task: name)
                }
                isRequested[index] = true
            }
        } else {
            var consumed = [Bool](repeating: false, count: nodes.count)
            for node in nodes { for dependency in node.dependencies { consumed[dependency] = true } }
            for index in nodes.indices where !consumed[index] { isRequested[index] = true }
        }
        return isRequested
    }
}

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
    private enum Step {
        /// Run these attempts, in order (more than one only for trivial tasks: see `lane`).
        case run([_AttemptContext])
        case park
        case exit
    }

    /// Lanes of this run (set before they start).
    private var laneCount = 1
    /// The most attempts a lane takes at once, while its tasks are trivial.
    private static let batchLimit = 32
    /// A task that took less than this is trivial: its lane takes batches (one lock round trip
    /// for many tasks); a longer one makes it take one task at a time again.
    private static let trivialTaskNanoseconds: UInt64 = 20_000

    let workflow: Workflow
    let nodes: [_TaskNode]
    let options: RunOptions
    let runID: String
    /// By task index: the caller asked for this task's result.
    private let isRequested: [Bool]
    let store: SharedObjectStore
    let spill: SpillManager
    let materializer: Materializer
    let log: RunLog
    /// Each task's executor, and what each executor can do. Immutable.
    private let plan: _ExecutorPlan
    /// By task index: the index of its executor in `plan.entries` (a copy, read per launch).
    private let executorOfTask: [Int]
    /// By executor: the most attempts in flight at once. Immutable.
    private let executorLimits: [Int]
    /// By executor: the executor, its name in the run, and whether it runs attempts with
    /// `runHere` on the lane (then the lane calls the runner itself). Immutable; arrays of their
    /// own, so that a launch reads what it needs without copying a plan entry.
    private let executors: [any Executor]
    private let executorNames: [String]
    private let executorReachesStore: [Bool]
    private let executorRunsAttemptsHere: [Bool]
    /// By executor: its engine places attempts by resources itself (not charged to `available`).
    private let executorSchedulesResources: [Bool]
    /// By task index: every consumer of its output reaches the store. Immutable.
    private let everyConsumerReachesStore: [Bool]
    /// By executor: attempts in flight now (riders of a batch not counted).
    private var executorInFlight: [Int]
    /// Dependents of each task (data and ordering edges). Immutable.
    private let dependents: _Adjacency
    /// How many tasks read each task's output. Immutable.
    private let dataConsumers: [Int]
    /// Values read by a shell task (they need a file). Immutable.
    private let readByShell: [Bool]

    private let lock = _AdaptiveLock()
    private var state: [State]
    private var waitingOn: [Int]
    private var outputs: [ObjectID?]
    /// The task's output was freed after its last consumer (so clean-up can skip it).
    private var outputFreed: [Bool]
    private var attempts: [Int]
    private var failureRetries: [Int]
    private var preemptionRetries: [Int]
    /// By task: times it ran again to recompute a lost value of its.
    private var recomputations: [Int]
    /// By task: it runs again now to recompute its lost value, for the consumer named in
    /// `recomputingFor`; `rearmed` lists the consumers that wait for that value.
    private var recomputing: [Bool]
    private var recomputingFor: [Int]
    private var rearmed: [[Int]]
    /// By task: its definition, hashed once (see `TaskLineage`). Immutable.
    private let definitions: [_TaskDefinition]
    /// By task: the token its consumers record for its value (see `TaskLineage`).
    private var tokens: [UInt64]
    /// Tasks not run because of `RunOptions.resume`.
    private var reusedCount = 0
    /// By task: for a result reused by `RunOptions.resume`, the run and file it came from.
    private var reusedFrom: [Int: (run: String?, file: String?)] = [:]
    /// By executor: it ran an attempt of this run.
    private var executorUsed: [Bool]
    /// The run-finished event, once the run ended.
    private var summary: RunLogEvent?
    /// `<values directory>/`: files under it are kept by policy.
    private let valuesPrefix: String
    private var ready: [Int] = []
    private var readyHead = 0
    private var available: Resources
    private var running = 0
    private var stopping = false
    /// No lane will start anything again: parked lanes return.
    private var finished = false
    private var cancelledFlag = false
    private var failureList: [DataflowError.TaskFailure] = []
    private var succeeded = 0
    /// Lanes waiting for work.
    private var parked: [CheckedContinuation<Void, Never>] = []
    /// Retries waiting for their backoff, by timer.
    private var retryTimers: [Int: Task<Void, Never>] = [:]
    private var nextTimerKey = 0
    /// Run-log events recorded under `lock`, appended to the log by the lane after it lets go.
    private var unloggedEvents: [RunLogEvent] = []
    /// The log is flushed once those events are appended (a task failed for good).
    private var flushAfterLogging = false
    private let progress: _ProgressLine
    /// What every attempt shares.
    private let environment: _RunEnvironment

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
    private func applyResumed(_ task: _ResumedTask, at index: Int, resumed: [Int: _ResumedTask]) {
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

    /// The run-finished event's summary (see `RunLogEvent.results`): read after the lanes
    /// returned, so nothing changes under it.
    private func addSummary(to event: inout RunLogEvent, startedAt: Date, includingResults: Bool) {
        event.start = startedAt
        event.end = event.time
        let (outputs, executorUsed, failures, reusedFrom) = lock.withLock { (self.outputs, self.executorUsed, failureList, self.reusedFrom) }
        event.executors = executorNames.indices.filter { executorUsed[$0] }.map { executorNames[$0] }
        if includingResults {
            var results: [RunLogEvent.ResultEntry] = []
            var count = 0
            for index in nodes.indices where isRequested[index] {
                guard let id = outputs[index] else { continue }
                count += 1
                guard results.count < RunLogEvent.summaryLimit, let record = try? materializer.record(for: id) else { continue }
                let kept = record.files.filter { $0.hasPrefix(valuesPrefix) }
                results.append(RunLogEvent.ResultEntry(
                    task: nodes[index].name, byteCount: record.byteCount, files: kept.isEmpty ? nil : kept,
                    fromRun: reusedFrom[index]?.run, keptFile: reusedFrom[index]?.file))
            }
            event.results = results
            event.resultCount = count
        }
        if !failures.isEmpty {
            event.failures = failures.prefix(RunLogEvent.summaryLimit).map {
                RunLogEvent.FailureEntry(task: $0.task, outcome: $0.outcome, attempts: $0.attempts, message: $0.message)
            }
        }
        let counts = materializer.valueCounts()
        event.valueCounts = RunLogEvent.ValueCounts(inMemory: counts.inMemory, inFiles: counts.inFiles, freed: counts.freed)
    }

    /// The requested results that succeeded. Read after `execute` returns.
    func results() -> _RunResults {
        _RunResults(workflow: workflow, outputs: lock.withLock { outputs }, isRequested: isRequested)
    }

    // MARK: Lanes

    /// One lane: take a ready task, run it, record how it ended; repeat until the run is over.
    private func lane() async {
        // Attempts run since the last visit to the scheduler, with their registered outputs.
        var finishedAttempts: [(report: _AttemptReport, registration: Registration)] = []
        var batch = 1
        // This lane's batch of run-log events, swapped with `unloggedEvents` under the lock and
        // then moved into the log's queue (which hands back an emptied array, with its room,
        // when it has one).
        var events: [RunLogEvent] = []
        while true {
            var wake: [CheckedContinuation<Void, Never>] = []
            var flush = false
            let step = lock.withLock { () -> Step in
                for finished in finishedAttempts { handle(finished.report, finished.registration) }
                if Task.isCancelled && !cancelledFlag { noteCancellation() }
                let step = nextStep(batch: batch)
                // More work than this lane takes (or resources freed): wake parked lanes for it.
                if !parked.isEmpty && (finished || hasLaunchable()) {
                    let count = finished ? parked.count : min(parked.count, ready.count - readyHead)
                    wake = Array(parked.suffix(count))
                    parked.removeLast(count)
                }
                showProgress(final: false)
                swap(&events, &unloggedEvents)
                swap(&flush, &flushAfterLogging)
                return step
            }
            finishedAttempts.removeAll(keepingCapacity: true)
            for continuation in wake { continuation.resume() }
            log.append(moving: &events)
            if flush { log.flush() }
            switch step {
            case .run(let contexts):
                let started = DispatchTime.now().uptimeNanoseconds
                for context in contexts {
                    // Cancelled while the batch ran: the rest do not start.
                    let executor = executorOfTask[context.index]
                    var report: _AttemptReport
                    if Task.isCancelled {
                        report = context.cancelledReport()
                    } else if executorRunsAttemptsHere[executor] {
                        report = await context.runHere()
                    } else {
                        report = await executors[executor].run(AttemptLaunch(context, reachesStore: executorReachesStore[executor])).report
                    }
                    report.holdsResources = context.holdsResources
                    if report.outcome == .error { report.lostInput = lostInput(of: context) }
                    finishedAttempts.append((report, registerOutput(report)))
                }
                let perTask = (DispatchTime.now().uptimeNanoseconds - started) / UInt64(contexts.count)
                batch = perTask < Self.trivialTaskNanoseconds ? Self.batchLimit : 1
            case .park: await park()
            case .exit: return
            }
        }
    }

    /// The input an attempt that ended in an error found lost, if any: as noted where it was read
    /// (here, in `AttemptLaunch.prepare`, from a worker's record an executor handed over), else
    /// from the attempt record its worker wrote (an executor may report such a record's
    /// outcome and message without handing the record itself over).
    private func lostInput(of context: _AttemptContext) -> Int? {
        if let position = environment.lostInputs.take(index: context.index, attempt: context.attempt) { return position }
        let path = context.runDirectory.attemptRecordPath(task: context.node.name, attempt: context.attempt)
        guard let data = FileManager.default.contents(atPath: path), let record = try? JSONDecoder().decode(WorkerResult.self, from: data) else {
            return nil
        }
        return record.outcome == .succeeded ? nil : record.lostInput
    }

    /// Decides what a lane does next (under `lock`): up to `batch` attempts, but no more than its
    /// share of what is ready, so that other lanes get work too.
    private func nextStep(batch: Int) -> Step {
        if stopping {
            // Nothing new starts; running attempts finish on their own lanes.
            if running == 0 { finished = true }
            return .exit
        }
        if let first = takeLaunchable() {
            var contexts = [start(first, reservingResources: true)]
            // Riders: the next ready tasks that declare the same resources and executor run after
            // it on this lane, one at a time, under its reservation.
            let resources = nodes[first].options.resources
            let executor = executorOfTask[first]
            let share = min(batch, max(1, (ready.count - readyHead) / laneCount))
            while contexts.count < share, readyHead < ready.count, state[ready[readyHead]] == .ready, executorOfTask[ready[readyHead]] == executor,
                nodes[ready[readyHead]].options.resources == resources
            {
                contexts.append(start(takeAt(readyHead), reservingResources: false))
            }
            return .run(contexts)
        }
        if running == 0 && retryTimers.isEmpty {
            finished = true
            return .exit
        }
        return .park
    }

    /// Waits until there is something to launch, the run is over, or it is cancelled.
    private func park() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = lock.withLock { () -> Bool in
                if finished || stopping || hasLaunchable() { return true }
                parked.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Cancellation of the calling task: stop, and wake every parked lane so it returns.
    private func cancelFromOutside() {
        let wake = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            noteCancellation()
            defer { parked.removeAll() }
            return parked
        }
        for continuation in wake { continuation.resume() }
    }

    private func noteCancellation() {
        cancelledFlag = true
        stopping = true
    }

    private func showProgress(final: Bool) {
        progress.update(done: succeeded, running: running, failed: failureList.count, store: store, spilledBytes: spill.spilledByteCount, final: final)
    }

    // MARK: Launching (under `lock`)

    private func markReady(_ index: Int) {
        state[index] = .ready
        ready.append(index)
    }

    /// The position in `ready` of the first task that fits the free resources. A task that does
    /// not fit waits; later tasks that fit may pass it (at most 64 are looked at).
    private func launchablePosition() -> Int? {
        guard readyHead < ready.count else { return nil }
        for position in readyHead..<min(ready.count, readyHead + 64) {
            let task = ready[position]
            // A stale entry: the task waits again (for a recomputed input) or was taken already.
            guard state[task] == .ready else { continue }
            let executor = executorOfTask[task]
            if executorInFlight[executor] < executorLimits[executor]
                && (executorSchedulesResources[executor] || nodes[task].options.resources.fits(within: available))
            {
                return position
            }
        }
        return nil
    }

    private func hasLaunchable() -> Bool { launchablePosition() != nil }

    private func takeLaunchable() -> Int? {
        while readyHead < ready.count && state[ready[readyHead]] != .ready { readyHead += 1 }  // stale entries
        guard let position = launchablePosition() else { return nil }
        return takeAt(position)
    }

    /// Takes the ready task at `position` out of the queue.
    private func takeAt(_ position: Int) -> Int {
        let index = ready[position]
        ready.swapAt(position, readyHead)
        readyHead += 1
        if readyHead > 4096 && readyHead * 2 > ready.count {
            ready.removeFirst(readyHead)
            readyHead = 0
        }
        return index
    }

    private func start(_ index: Int, reservingResources: Bool) -> _AttemptContext {
        let node = nodes[index]
        state[index] = .running
        running += 1
        if reservingResources {
            if !executorSchedulesResources[executorOfTask[index]] { available = available - node.options.resources }
            executorInFlight[executorOfTask[index]] += 1
        }
        attempts[index] += 1
        let attempt = attempts[index]
        let inputs = node.inputs.isEmpty ? [] : node.inputs.map { outputs[$0]! }
        return _AttemptContext(environment: environment, index: index, attempt: attempt, inputs: inputs, holdsResources: reservingResources)
    }

    // MARK: Finishing

    /// A succeeded attempt's output registered with the materializer (outside `lock`: it may
    /// write a file), or why that failed.
    private typealias Registration = Result<Materializer.ValueRecord, MaterializeError>?

    private func registerOutput(_ report: _AttemptReport) -> Registration {
        guard report.outcome == .succeeded, let output = report.output else { return nil }
        let index = report.index
        let facts = ValueFacts(
            isLeaf: dataConsumers[index] == 0, consumerNeedsFile: readByShell[index],
            everyConsumerReachesStore: everyConsumerReachesStore[index],
            remainingConsumers: dataConsumers[index], isRequestedResult: isRequested[index])
        let name = nodes[index].name
        let policy = nodes[index].options.policy ?? workflow.defaultPolicy
        do {
            if let handle = output.handle {
                return .success(try materializer.register(handle, name: name, policy: policy, facts: facts))
            }
            return .success(try materializer.register(output.id, byteCount: output.byteCount, name: name, policy: policy, facts: facts))
        } catch {
            return .failure(error)
        }
    }

    /// Records how an attempt ended (under `lock`).
    private func handle(_ report: _AttemptReport, _ registration: Registration) {
        let index = report.index
        let node = nodes[index]
        running -= 1
        if report.holdsResources {
            if !executorSchedulesResources[executorOfTask[index]] { available = available + node.options.resources }
            executorInFlight[executorOfTask[index]] -= 1
        }
        var event = RunLogEvent(kind: .attempt, runID: runID, time: report.end)  // recorded as it ended
        event.task = node.name
        event.executor = executorNames[executorOfTask[index]]
        executorUsed[executorOfTask[index]] = true
        // (Attempts on this node say nothing: the run-started event names the node.)
        if report.hasCause {
            let cause = report.cause
            event.node = cause.node
            event.exitStatus = cause.exitStatus.map(Int.init)
            event.signal = cause.signal.map(Int.init)
            event.engineState = cause.engineState
        }
        event.attempt = report.attempt
        event.start = report.start
        event.end = report.end
        event.outcome = report.outcome
        event.message = report.message
        event.bytesIn = report.bytesIn
        event.logFile = report.logWritten ? report.logPath : nil

        if report.outcome == .succeeded, let output = report.output {
            event.bytesOut = output.byteCount
            switch registration {
            case .success(let record)?:
                event.value = record
                let kept = record.files.isEmpty ? nil : record.files.first { $0.hasPrefix(valuesPrefix) }
                let lineage = definitions[index].lineage(
                    inputTokens: node.inputs.isEmpty ? [] : node.inputs.map { tokens[$0] }, contentHash: record.contentHash, keptFile: kept)
                tokens[index] = lineage.token
                event.lineage = lineage
                outputs[index] = output.id
                state[index] = .succeeded
                succeeded += 1
                if recomputing[index] {
                    finishRecomputation(index, output.id, &event)
                    return
                }
                unloggedEvents.append(event)
                releaseInputs(of: index)
                for dependent in dependents[index] {
                    waitingOn[dependent] -= 1
                    if waitingOn[dependent] == 0 && state[dependent] == .waiting && !stopping { markReady(dependent) }
                }
            case .failure(let error)?:
                event.outcome = .error
                event.message = "materializing the output: \(error.message)"
                unloggedEvents.append(event)
                retryOrFail(index, outcome: .error, message: event.message ?? "")
            case nil:
                preconditionFailure("a succeeded attempt's output was not registered")
            }
            return
        }
        unloggedEvents.append(event)
        if report.outcome == .cancelled {
            state[index] = .waiting
            return
        }
        if let position = report.lostInput, !stopping {
            recompute(input: position, of: index, loss: report.message ?? "lost")
            return
        }
        retryOrFail(index, outcome: report.outcome, message: report.message ?? "")
    }

    // MARK: Recomputation (lineage)

    /// Consumer `index` found its input at `position` lost (under `lock`): the consumer waits
    /// again, and the input's producer runs again (unless it is running again already) to make
    /// the value anew; its other consumers that have not read the value yet wait for it too. The
    /// producer's own inputs, if they are gone as well, are recomputed the same way when it reads
    /// them. A non-deterministic producer, or one past `RunOptions.recomputeLimit`, fails the
    /// consumer, naming the chain.
    private func recompute(input position: Int, of index: Int, loss: String) {
        let producer = nodes[index].inputs[position]
        let lostWhat = "the value of '\(nodes[producer].name)', input \(position + 1) of '\(nodes[index].name)', was lost (\(loss))"
        guard nodes[producer].options.deterministic else {
            failForGood(index, outcome: .error, message: "\(lostWhat); '\(nodes[producer].name)' is marked non-deterministic (TaskOptions.deterministic), so it is not recomputed")
            return
        }
        if !recomputing[producer] && recomputations[producer] >= options.recomputeLimit {
            failForGood(index, outcome: .error, message: "\(lostWhat); '\(nodes[producer].name)' was recomputed \(recomputations[producer]) time(s) already (RunOptions.recomputeLimit)")
            return
        }
        state[index] = .waiting
        waitingOn[index] += 1
        rearmed[producer].append(index)
        if recomputing[producer] { return }  // on its way already
        recomputations[producer] += 1
        recomputing[producer] = true
        recomputingFor[producer] = index
        if let lost = outputs[producer] { materializer.forget(lost) }
        outputs[producer] = nil
        outputFreed[producer] = false
        if state[producer] == .succeeded {
            if attempts[producer] == 0 { reusedCount -= 1 } else { succeeded -= 1 }  // (reused by a resumed run: never ran)
        }
        // Its other consumers that have not read the value yet wait for the new one.
        for dependent in dependents[producer] where dependent != index && nodes[dependent].inputs.contains(producer)
            && (state[dependent] == .waiting || state[dependent] == .ready)
        {
            state[dependent] = .waiting  // a ready one leaves a stale entry in `ready`, skipped there
            waitingOn[dependent] += 1
            rearmed[producer].append(dependent)
        }
        // It reads its inputs again: those still around count it as a consumer once more.
        for input in nodes[producer].inputs { if let id = outputs[input] { materializer.consumerAdded(id) } }
        var event = RunLogEvent(kind: .recompute, runID: runID)
        event.task = nodes[producer].name
        event.attempt = attempts[producer] + 1
        event.message = "recomputing for \(describeChain(index)): \(lostWhat) (recomputation \(recomputations[producer]) of at most \(options.recomputeLimit))"
        unloggedEvents.append(event)
        state[producer] = .waiting
        // Inputs a resumed run never restored (nothing that ran read them) are made again too.
        for (position, input) in nodes[producer].inputs.enumerated() where outputs[input] == nil && state[input] == .succeeded {
            recompute(input: position, of: producer, loss: "a resumed run did not restore it")
            if state[producer] == .failed { return }
        }
        if waitingOn[producer] == 0 { markReady(producer) }
    }

    /// A recomputed value is in (under `lock`): the consumers that had not read the lost value
    /// read this one (they are its remaining consumers), and those waiting for it may start.
    private func finishRecomputation(_ index: Int, _ id: ObjectID, _ event: inout RunLogEvent) {
        recomputing[index] = false
        recomputingFor[index] = -1
        var readers = 0
        for dependent in dependents[index] where state[dependent] == .waiting || state[dependent] == .ready || state[dependent] == .running {
            readers += nodes[dependent].inputs.reduce(0) { $0 + ($1 == index ? 1 : 0) }
        }
        if let record = try? materializer.setRemainingConsumers(id, readers) { event.value = record }
        unloggedEvents.append(event)
        releaseInputs(of: index)
        let waiting = rearmed[index]
        rearmed[index] = []
        for dependent in waiting {
            waitingOn[dependent] -= 1
            if waitingOn[dependent] == 0 && state[dependent] == .waiting && !stopping { markReady(dependent) }
        }
    }

    /// "'task'", and for a task that runs again to recompute its value, for whom, up the chain.
    private func describeChain(_ index: Int) -> String {
        var text = "'\(nodes[index].name)'"
        var current = index
        var seen = Set<Int>()
        while recomputing[current], recomputingFor[current] >= 0, seen.insert(current).inserted {
            current = recomputingFor[current]
            text += " (recomputed for '\(nodes[current].name)'"
        }
        return text + String(repeating: ")", count: seen.count)
    }

    private func retryOrFail(_ index: Int, outcome: AttemptOutcome, message: String) {
        let retries = nodes[index].options.retries
        state[index] = .waiting
        if !stopping {
            if outcome == .preempted && preemptionRetries[index] < retries.preemptions {
                preemptionRetries[index] += 1
                scheduleRetry(index, after: retries.backoff(beforeRetry: preemptionRetries[index]))
                return
            }
            if outcome != .preempted && failureRetries[index] < retries.failures {
                failureRetries[index] += 1
                scheduleRetry(index, after: retries.backoff(beforeRetry: failureRetries[index]))
                return
            }
        }
        failForGood(index, outcome: outcome, message: message)
    }

    /// Task `index` failed and is not retried (under `lock`).
    private func failForGood(_ index: Int, outcome: AttemptOutcome, message: String) {
        state[index] = .failed
        let note = recomputing[index] ? " (while running again to recompute its lost value for \(describeChain(recomputingFor[index])))" : ""
        failureList.append(DataflowError.TaskFailure(task: nodes[index].name, attempts: attempts[index], outcome: outcome, message: message + note))
        flushAfterLogging = true
        releaseInputs(of: index)
        switch options.onFailure {
        case .stopScheduling: stopping = true
        case .keepGoing: skipDependents(of: index)
        }
    }

    /// Starts a timer that makes `index` ready again after `delay` seconds.
    private func scheduleRetry(_ index: Int, after delay: Double) {
        let key = nextTimerKey
        nextTimerKey += 1
        retryTimers[key] = Task {
            guard (try? await Task.sleep(nanoseconds: UInt64(max(0, delay) * 1e9))) != nil else { return }
            self.retryDue(index, timer: key)
        }
    }

    private func retryDue(_ index: Int, timer key: Int) {
        let wake = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            guard retryTimers.removeValue(forKey: key) != nil else { return [] }
            if !stopping && state[index] == .waiting { markReady(index) }
            // Wake every parked lane: one takes the retry; if the run is now over, all return.
            if !stopping && running == 0 && retryTimers.isEmpty && !hasLaunchable() { finished = true }
            defer { parked.removeAll() }
            return parked
        }
        for continuation in wake { continuation.resume() }
    }

    /// Marks every task that (transitively) depends on `index` as skipped, and releases the
    /// values they would have consumed.
    private func skipDependents(of index: Int) {
        var stack = Array(dependents[index])
        while let next = stack.popLast() {
            guard state[next] == .waiting || state[next] == .ready else { continue }
            state[next] = .skipped
            releaseInputs(of: next)
            var event = RunLogEvent(kind: .attempt, runID: runID)
            event.task = nodes[next].name
            event.outcome = .skipped
            event.message = "depends on failed task '\(nodes[index].name)'"
            unloggedEvents.append(event)
            stack.append(contentsOf: dependents[next])
        }
    }

    /// One consumer (`index`) is done with each of its inputs that exists.
    private func releaseInputs(of index: Int) {
        for input in nodes[index].inputs {
            guard let id = outputs[input] else { continue }
            if let record = try? materializer.consumerFinished(id), !record.inMemory {
                outputFreed[input] = true
                var event = RunLogEvent(kind: .valueFreed, runID: runID)
                event.task = nodes[input].name
                // The record only when files stay (a policy keeps them): the attempt's line has the rest.
                if !record.files.isEmpty { event.value = record }
                unloggedEvents.append(event)
            }
        }
    }

    /// Finishes every value that is no requested result and is still around (its consumers were
    /// skipped, or the run failed or was cancelled), as after its last consumer: freed from
    /// memory, its exchange file removed (files a policy keeps stay). Runs after every lane has
    /// returned. `includingResults`: the requested results too (the run throws).
    private func cleanUp(includingResults: Bool) {
        let (outputs, outputFreed) = lock.withLock { (self.outputs, self.outputFreed) }
        let candidates = nodes.indices.filter { (includingResults || !isRequested[$0]) && outputs[$0] != nil && !outputFreed[$0] }
        guard !candidates.isEmpty else { return }
        // A task that passed its input through shares the object with it: never free a result.
        let resultObjects = includingResults ? [] : Set(nodes.indices.compactMap { isRequested[$0] ? outputs[$0] : nil })
        for index in candidates {
            guard let id = outputs[index], !resultObjects.contains(id) else { continue }
            _ = try? materializer.setRemainingConsumers(id, 0)
            if let record = try? materializer.record(for: id), record.inMemory { try? spill.delete(id) }
        }
    }
}
