import Foundation
import Logging
import Materialize
import ObjectStore

/// The ready queue and resources: which task starts next, and what it holds while it runs.
extension _Scheduler {
    func markReady(_ index: Int) {
        state[index] = .ready
        ready.append(index)
    }

    /// The position in `ready` of the first task that fits the free resources. A task that does
    /// not fit waits; later tasks that fit may pass it (at most 64 are looked at).
    func launchablePosition() -> Int? {
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

    func hasLaunchable() -> Bool { launchablePosition() != nil }

    func takeLaunchable() -> Int? {
        while readyHead < ready.count && state[ready[readyHead]] != .ready { readyHead += 1 }  // stale entries
        guard let position = launchablePosition() else { return nil }
        return takeAt(position)
    }

    /// Takes the ready task at `position` out of the queue.
    func takeAt(_ position: Int) -> Int {
        let index = ready[position]
        ready.swapAt(position, readyHead)
        readyHead += 1
        if readyHead > 4096 && readyHead * 2 > ready.count {
            ready.removeFirst(readyHead)
            readyHead = 0
        }
        return index
    }

    func start(_ index: Int, reservingResources: Bool) -> _AttemptContext {
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
}
