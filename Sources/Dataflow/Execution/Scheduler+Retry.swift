import Foundation
import Logging
import Materialize
import ObjectStore

/// Retries by cause, failing for good, and skipping what depends on a failed task.
extension _Scheduler {
    func retryOrFail(_ index: Int, outcome: AttemptOutcome, message: String) {
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
    func failForGood(_ index: Int, outcome: AttemptOutcome, message: String) {
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
    func scheduleRetry(_ index: Int, after delay: Double) {
        let key = nextTimerKey
        nextTimerKey += 1
        retryTimers[key] = Task {
            guard (try? await Task.sleep(nanoseconds: UInt64(max(0, delay) * 1e9))) != nil else { return }
            self.retryDue(index, timer: key)
        }
    }

    func retryDue(_ index: Int, timer key: Int) {
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
    func skipDependents(of index: Int) {
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
}
