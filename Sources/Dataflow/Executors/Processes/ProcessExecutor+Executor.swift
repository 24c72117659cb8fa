import Foundation
import Materialize
import ObjectStore

extension ProcessExecutor: Executor {
    public var kind: String { "processes" }

    /// Attempts reach the store (workers attach to it); at most `workerCount` at once per run.
    public var capabilities: ExecutorCapabilities {
        ExecutorCapabilities(reachesStore: true, sharesRunDirectory: true, canCancel: true, maxConcurrentAttempts: options.workerCount)
    }

    /// Runs the attempt on a warm worker: the inputs go as object descriptors (held by this
    /// process meanwhile, so they cannot be spilled away), the worker writes the output into the
    /// store, and its descriptor comes back. A worker that dies is reported by cause: killed at
    /// the timeout → failed ("timed out"); killed because the run was cancelled → cancelled;
    /// SIGTERM → preempted; anything else → failed, naming the signal or status. Afterwards the
    /// store reclaims what a dead worker was creating and releases what it held. Shell tasks run
    /// their command from this process.
    public func run(_ attempt: AttemptLaunch) async -> AttemptEnding {
        if attempt.isShell { return await attempt.runHere() }
        let prepared: PreparedAttempt
        do { prepared = try await attempt.prepare(withRecordPath: false) } catch { return attempt.ending(.error, message: error.message) }
        let request = _PoolRequest(spec: prepared.spec, spillRoot: attempt.spillRoot, prefaultStore: options.prefaultStore)
        let worker: _WorkerProcess
        do { worker = try acquire() } catch { return attempt.ending(.error, message: error.message) }
        let reply = await worker.run(request.wireMessage(runPart: runParts.runPart(of: request)), timeout: attempt.timeoutSeconds)
        release(worker)
        defer { withExtendedLifetime(prepared) {} }  // the inputs stay held until the worker is done with them
        switch reply {
        case .result(let record):
            var ending = await attempt.ending(record, cause: AttemptCause(node: _hostName))
            if ending.outcome != .succeeded && ending.message == nil { ending.report.message = "worker \(worker.pid) reported \(record.outcome)" }
            return ending
        case .died(let death):
            // What the task wrote before it died goes to its log file (it was in memory).
            worker.salvageOutput(toLogAt: RunDirectory(path: prepared.spec.runDirectory).attemptLogPath(task: prepared.spec.taskName, attempt: prepared.spec.attempt))
            // Objects it was creating are reclaimed and its references released, now.
            _ = try? attempt.store?.reclaimDeadProcesses()
            var ending: AttemptEnding
            let cause = AttemptCause(
                exitStatus: death.signal == nil ? death.exitStatus : nil, signal: death.signal, node: _hostName)
            switch death.killReason {
            case .timeout?:
                ending = attempt.ending(.failed, message: "timed out after \(attempt.timeoutSeconds ?? 0) s (worker \(worker.pid) killed)", cause: cause)
            case .cancelled?:
                ending = attempt.ending(.cancelled, message: "run cancelled (worker \(worker.pid) killed)", cause: cause)
            case nil where death.signal == SIGTERM:
                ending = attempt.ending(.preempted, message: "worker \(worker.pid) was stopped (SIGTERM) while running the task", cause: cause)
            case nil, .brokenPipe?:
                ending = attempt.ending(.failed, message: "worker \(worker.pid) died while running the task: \(death.status)", cause: cause)
            }
            ending.report.bytesIn = prepared.inputBytes
            return ending
        }
    }

    /// Idle workers let go of the run's store when the run made it (it is removed next).
    public func leftovers(runID: String) -> String? {
        "warm worker processes (each exits within half a second of the driver, its task unfinished)"
    }

    public func runEnded(_ run: ExecutorRun) async {
        runParts.forget(runID: run.runID)
        if run.storeEndsWithRun { await detachWorkers(fromStore: run.store.name) }
    }
}

/// This machine's host name (what the run log records as an attempt's node).
let _hostName: String = ProcessInfo.processInfo.hostName
