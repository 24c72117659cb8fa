import Foundation
import Logging
import Materialize
import ObjectStore

/// The lanes of a run: each takes ready tasks and runs them, parks when there is nothing to
/// run, and returns when the run is over or cancelled.
extension _Scheduler {
    /// One lane: take a ready task, run it, record how it ended; repeat until the run is over.
    func lane() async {
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
    func lostInput(of context: _AttemptContext) -> Int? {
        if let position = environment.lostInputs.take(index: context.index, attempt: context.attempt) { return position }
        let path = context.runDirectory.attemptRecordPath(task: context.node.name, attempt: context.attempt)
        guard let data = FileManager.default.contents(atPath: path), let record = try? JSONDecoder().decode(WorkerResult.self, from: data) else {
            return nil
        }
        return record.outcome == .succeeded ? nil : record.lostInput
    }

    /// Decides what a lane does next (under `lock`): up to `batch` attempts, but no more than its
    /// share of what is ready, so that other lanes get work too.
    func nextStep(batch: Int) -> Step {
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
    func park() async {
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
    func cancelFromOutside() {
        let wake = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            noteCancellation()
            defer { parked.removeAll() }
            return parked
        }
        for continuation in wake { continuation.resume() }
    }

    func noteCancellation() {
        cancelledFlag = true
        stopping = true
    }

    func showProgress(final: Bool) {
        progress.update(done: succeeded, running: running, failed: failureList.count, store: store, spilledBytes: spill.spilledByteCount, final: final)
    }
}
