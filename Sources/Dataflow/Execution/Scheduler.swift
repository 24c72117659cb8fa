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
        try validate(capacity: options.capacity)
        guard options.concurrency >= 1 else {
            throw DataflowError(.invalidOption, "concurrency must be at least 1, not \(options.concurrency)")
        }
        var requested = Set<Int>()
        if let names = options.results {
            for name in names {
                guard let index = index(of: name) else {
                    throw DataflowError(.unknownTask, "result '\(name)' is no task of workflow '\(self.name)'", task: name)
                }
                requested.insert(index)
            }
        } else {
            var consumed = Set<Int>()
            for node in nodes { consumed.formUnion(node.dependencies) }
            requested = Set(nodes.indices).subtracting(consumed)
        }
        let runID = options.runID ?? RunOptions.makeRunID(workflow: name)
        let ownsStore = options.store == nil
        let store: SharedObjectStore
        do throws(ObjectStoreError) {
            if let given = options.store {
                store = given
            } else {
                store = try SharedObjectStore.create(named: "run-\(String(runID.prefix(190)))", capacityBytes: options.storeCapacityBytes)
            }
        } catch {
            var failure = DataflowError(.store, "cannot create the run's store: \(error.message)")
            failure.underlying = error
            throw failure
        }
        defer { if ownsStore { try? SharedObjectStore.remove(named: store.name) } }
        let directory = "\(options.workdir)/runs/\(runID)"
        let log = try RunLog(directory: directory)  // creates <workdir>/runs/<run id>/ first
        let spill: SpillManager
        let materializer: Materializer
        do {
            spill = try SpillManager(store: store, rootDirectory: "\(options.workdir)/spill", watermarks: options.watermarks)
            materializer = try Materializer(spill: spill, runDirectory: directory)
        } catch {
            var failure = DataflowError(.runDirectory, "cannot prepare run directory '\(directory)': \(error.message)")
            failure.underlying = error
            throw failure
        }
        spill.startBackgroundSpilling()
        defer { spill.stopBackgroundSpilling() }
        let scheduler = _Scheduler(
            workflow: self, options: options, runID: runID, requested: requested, store: store,
            spill: spill, materializer: materializer, log: log)
        let outcome = await scheduler.execute()
        let run = WorkflowRun(
            runID: runID, directory: directory, store: store, spill: spill, ownsStore: ownsStore,
            resultIDs: scheduler.resultIDs(), records: materializer.records(), failures: scheduler.failures)
        if scheduler.cancelled {
            throw DataflowError(.runCancelled, "run '\(runID)' of workflow '\(name)' was cancelled")
        }
        if let infrastructure = outcome {
            throw infrastructure
        }
        if !scheduler.failures.isEmpty {
            var failure = DataflowError(
                .taskFailed,
                "run '\(runID)': \(scheduler.failures.count) task(s) failed: " + scheduler.failures.map(\.description).joined(separator: "; "),
                task: scheduler.failures.first?.task)
            failure.failures = scheduler.failures
            throw failure
        }
        return run
    }
}

/// The state of one run: which tasks wait, run, succeeded or failed. Driven by one async
/// function (`execute`), which alone reads and writes it; attempts run in child tasks and report
/// back as events.
final class _Scheduler {
    enum State { case waiting, ready, running, succeeded, failed, skipped }

    /// What a child task reports.
    enum Event: Sendable {
        case finished(_AttemptReport)
        case retryDue(Int)
    }

    let workflow: Workflow
    let nodes: [_TaskNode]
    let options: RunOptions
    let runID: String
    let requested: Set<Int>
    let store: SharedObjectStore
    let spill: SpillManager
    let materializer: Materializer
    let log: RunLog

    private var state: [State]
    private var waitingOn: [Int]
    private var dependents: [[Int]]
    private var dataConsumers: [Int]
    /// Values read by a shell task (they need a file).
    private var readByShell: [Bool]
    private var outputs: [ObjectID?]
    private var attempts: [Int]
    private var failureRetries: [Int]
    private var preemptionRetries: [Int]
    private var ready: [Int] = []
    private var readyHead = 0
    private var available: Resources
    private var running = 0
    private var stopping = false
    private(set) var cancelled = false
    private(set) var failures: [DataflowError.TaskFailure] = []
    private var succeeded = 0
    private let progress: _ProgressLine
    /// Each task's name as a file-name stem, computed once (`RunLog.safeFileName` is not cheap).
    private let fileStems: [String]

    init(workflow: Workflow, options: RunOptions, runID: String, requested: Set<Int>, store: SharedObjectStore,
         spill: SpillManager, materializer: Materializer, log: RunLog) {
        self.workflow = workflow
        self.nodes = workflow.nodes
        self.options = options
        self.runID = runID
        self.requested = requested
        self.store = store
        self.spill = spill
        self.materializer = materializer
        self.log = log
        self.progress = _ProgressLine(runID: runID, taskCount: workflow.nodes.count, mode: options.progress, writer: options.progressWriter)
        self.fileStems = workflow.nodes.map { RunLog.safeFileName($0.name) }
        let count = nodes.count
        state = [State](repeating: .waiting, count: count)
        waitingOn = nodes.map { $0.dependencies.count }
        dependents = [[Int]](repeating: [], count: count)
        dataConsumers = [Int](repeating: 0, count: count)
        readByShell = [Bool](repeating: false, count: count)
        outputs = [ObjectID?](repeating: nil, count: count)
        attempts = [Int](repeating: 0, count: count)
        failureRetries = [Int](repeating: 0, count: count)
        preemptionRetries = [Int](repeating: 0, count: count)
        available = options.capacity
        for (index, node) in nodes.enumerated() {
            for dependency in node.dependencies { dependents[dependency].append(index) }
            for input in node.inputs {
                dataConsumers[input] += 1
                if node.isShell { readByShell[input] = true }
            }
        }
        ready.reserveCapacity(count)
        for index in nodes.indices where waitingOn[index] == 0 { markReady(index) }
    }

    /// Runs the workflow to the end. Returns an infrastructure error, if one ended the run.
    func execute() async -> DataflowError? {
        var started = RunLogEvent(kind: .runStarted, runID: runID)
        started.taskCount = nodes.count
        started.message = "workflow '\(workflow.name)', store '\(store.name)', concurrency \(options.concurrency), capacity \(options.capacity)"
        log.append(started)

        await withTaskGroup(of: Event.self) { group in
            launchReady(&group)
            while let event = await group.next() {
                switch event {
                case .finished(let report): handle(report)
                case .retryDue(let index):
                    if !stopping && state[index] == .waiting { markReady(index) }
                }
                flushRetries(&group)
                if Task.isCancelled && !cancelled {
                    cancelled = true
                    stopping = true
                    group.cancelAll()
                }
                if !stopping { launchReady(&group) }
                showProgress(final: false)
            }
        }
        showProgress(final: true)
        cleanUp()
        var finished = RunLogEvent(kind: .runFinished, runID: runID)
        finished.taskCount = nodes.count
        finished.succeeded = succeeded
        finished.failed = failures.count
        finished.skipped = state.filter { $0 == .skipped || $0 == .waiting || $0 == .ready }.count
        finished.message = cancelled ? "cancelled" : (failures.isEmpty ? "succeeded" : "failed")
        log.append(finished)
        log.flush()
        return nil
    }

    /// The object ids of the requested results that succeeded.
    func resultIDs() -> [String: ObjectID] {
        var ids: [String: ObjectID] = [:]
        for index in requested { if let id = outputs[index] { ids[nodes[index].name] = id } }
        return ids
    }

    private func showProgress(final: Bool) {
        progress.update(done: succeeded, running: running, failed: failures.count, store: store, spilledBytes: spill.spilledByteCount, final: final)
    }

    // MARK: Launching

    private func markReady(_ index: Int) {
        state[index] = .ready
        ready.append(index)
    }

    /// Starts ready tasks while slots and resources allow. A task that does not fit the free
    /// resources now waits; later tasks that fit may pass it (at most 64 are looked at).
    private func launchReady(_ group: inout TaskGroup<Event>) {
        while running < options.concurrency && readyHead < ready.count {
            var chosen: Int?
            for position in readyHead..<min(ready.count, readyHead + 64) where nodes[ready[position]].options.resources.fits(within: available) {
                chosen = position
                break
            }
            guard let position = chosen else { return }
            let index = ready[position]
            ready.swapAt(position, readyHead)
            readyHead += 1
            if readyHead > 4096 && readyHead * 2 > ready.count {
                ready.removeFirst(readyHead)
                readyHead = 0
            }
            start(index, &group)
        }
    }

    private func start(_ index: Int, _ group: inout TaskGroup<Event>) {
        let node = nodes[index]
        state[index] = .running
        running += 1
        available = available - node.options.resources
        attempts[index] += 1
        let attempt = attempts[index]
        let inputs = node.inputs.map { outputs[$0]! }
        let logPath = "\(log.logsDirectory)/\(fileStems[index]).\(attempt).log"
        let context = _AttemptContext(
            index: index, node: node, attempt: attempt, inputs: inputs, runID: runID, store: store, spill: spill,
            materializer: materializer, runDirectory: log.directory, logPath: logPath, fileStem: fileStems[index])
        group.addTask { await .finished(context.run()) }
    }

    // MARK: Finishing

    private func handle(_ report: _AttemptReport) {
        let index = report.index
        let node = nodes[index]
        running -= 1
        available = available + node.options.resources
        var event = RunLogEvent(kind: .attempt, runID: runID)
        event.task = node.name
        event.executor = "local"
        event.attempt = report.attempt
        event.start = report.start
        event.end = report.end
        event.outcome = report.outcome
        event.message = report.message
        event.bytesIn = report.bytesIn
        event.logFile = report.logWritten ? report.logPath : nil

        if report.outcome == .succeeded, let handle = report.output {
            event.bytesOut = handle.byteCount
            do {
                let facts = ValueFacts(
                    isLeaf: dataConsumers[index] == 0, consumerNeedsFile: readByShell[index], everyConsumerReachesStore: true,
                    remainingConsumers: dataConsumers[index], isRequestedResult: requested.contains(index))
                event.value = try materializer.register(
                    handle, name: node.name, policy: node.options.policy ?? workflow.defaultPolicy, facts: facts)
                outputs[index] = handle.id
                state[index] = .succeeded
                succeeded += 1
                log.append(event)
                releaseInputs(of: index)
                for dependent in dependents[index] {
                    waitingOn[dependent] -= 1
                    if waitingOn[dependent] == 0 && state[dependent] == .waiting && !stopping { markReady(dependent) }
                }
            } catch {
                event.outcome = .error
                event.message = "materializing the output: \(error.message)"
                log.append(event)
                retryOrFail(index, outcome: .error, message: event.message ?? "", report: report)
            }
            return
        }
        log.append(event)
        if report.outcome == .cancelled {
            state[index] = .waiting
            return
        }
        retryOrFail(index, outcome: report.outcome, message: report.message ?? "", report: report)
    }

    private func retryOrFail(_ index: Int, outcome: AttemptOutcome, message: String, report: _AttemptReport) {
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
        state[index] = .failed
        failures.append(DataflowError.TaskFailure(task: nodes[index].name, attempts: attempts[index], outcome: outcome, message: message))
        log.flush()
        releaseInputs(of: index)
        switch options.onFailure {
        case .stopScheduling: stopping = true
        case .keepGoing: skipDependents(of: index)
        }
    }

    fileprivate var pendingRetries: [(index: Int, delay: Double)] = []

    private func scheduleRetry(_ index: Int, after delay: Double) {
        pendingRetries.append((index, delay))
    }

    /// Marks every task that (transitively) depends on `index` as skipped, and releases the
    /// values they would have consumed.
    private func skipDependents(of index: Int) {
        var stack = dependents[index]
        while let next = stack.popLast() {
            guard state[next] == .waiting || state[next] == .ready else { continue }
            state[next] = .skipped
            releaseInputs(of: next)
            var event = RunLogEvent(kind: .attempt, runID: runID)
            event.task = nodes[next].name
            event.outcome = .skipped
            event.message = "depends on failed task '\(nodes[index].name)'"
            log.append(event)
            stack.append(contentsOf: dependents[next])
        }
    }

    /// One consumer (`index`) is done with each of its inputs that exists.
    private func releaseInputs(of index: Int) {
        for input in nodes[index].inputs {
            guard let id = outputs[input] else { continue }
            if let record = try? materializer.consumerFinished(id), !record.inMemory {
                var event = RunLogEvent(kind: .valueFreed, runID: runID)
                event.task = nodes[input].name
                event.value = record
                log.append(event)
            }
        }
    }

    /// Frees every value that is no requested result and is still around (its consumers were
    /// skipped or the run stopped early).
    private func cleanUp() {
        // A task that passed its input through shares the object with it: never free a result.
        let resultObjects = Set(requested.compactMap { outputs[$0] })
        for index in nodes.indices where !requested.contains(index) {
            guard let id = outputs[index], !resultObjects.contains(id),
                let record = try? materializer.record(for: id), record.inMemory else { continue }
            try? spill.delete(id)
        }
    }
}

extension _Scheduler {
    /// Adds the retries scheduled while handling an event as delayed child tasks.
    func flushRetries(_ group: inout TaskGroup<Event>) {
        for retry in pendingRetries {
            let (index, delay) = retry
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(max(0, delay) * 1e9))
                return .retryDue(index)
            }
        }
        pendingRetries.removeAll()
    }
}
