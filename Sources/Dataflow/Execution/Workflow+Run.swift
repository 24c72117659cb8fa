import Foundation
import Logging
import Materialize
import ObjectStore

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
