import Foundation
import Logging
import Materialize
import ObjectStore

/// Recomputation after a lost value (lineage): the producer runs again for the consumers that
/// had not read the value.
extension _Scheduler {
    /// Consumer `index` found its input at `position` lost (under `lock`): the consumer waits
    /// again, and the input's producer runs again (unless it is running again already) to make
    /// the value anew; its other consumers that have not read the value yet wait for it too. The
    /// producer's own inputs, if they are gone as well, are recomputed the same way when it reads
    /// them. A non-deterministic producer, or one past `RunOptions.recomputeLimit`, fails the
    /// consumer, naming the chain.
    func recompute(input position: Int, of index: Int, loss: String) {
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
    func finishRecomputation(_ index: Int, _ id: ObjectID, _ event: inout RunLogEvent) {
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
    func describeChain(_ index: Int) -> String {
        var text = "'\(nodes[index].name)'"
        var current = index
        var seen = Set<Int>()
        while recomputing[current], recomputingFor[current] >= 0, seen.insert(current).inserted {
            current = recomputingFor[current]
            text += " (recomputed for '\(nodes[current].name)'"
        }
        return text + String(repeating: ")", count: seen.count)
    }
}
