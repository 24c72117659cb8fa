import Foundation
import Logging
import Materialize
import ObjectStore

/// What happens to values: released after their consumers, cleaned up at the end, and summed up
/// in the run-finished event.
extension _Scheduler {
    /// One consumer (`index`) is done with each of its inputs that exists.
    func releaseInputs(of index: Int) {
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
    func cleanUp(includingResults: Bool) {
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

    /// The run-finished event's summary (see `RunLogEvent.results`): read after the lanes
    /// returned, so nothing changes under it.
    func addSummary(to event: inout RunLogEvent, startedAt: Date, includingResults: Bool) {
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
}
