import Foundation
import Logging
import Materialize
import ObjectStore

/// How an attempt that ended is recorded: its output registered, its run-log event, its
/// dependents made ready.
extension _Scheduler {
    /// A succeeded attempt's output registered with the materializer (outside `lock`: it may
    /// write a file), or why that failed.
    typealias Registration = Result<Materializer.ValueRecord, MaterializeError>?

    func registerOutput(_ report: _AttemptReport) -> Registration {
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
    func handle(_ report: _AttemptReport, _ registration: Registration) {
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
}
