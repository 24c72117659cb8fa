import Foundation
import Materialize
import ObjectStore

extension _AttemptContext {
    /// Runs the attempt on a warm worker of `pool`: the inputs go as object descriptors (this
    /// process holds them meanwhile, so they cannot be spilled away), the worker writes the output
    /// into the store, and its descriptor comes back. A worker that dies is reported by cause:
    /// killed at the timeout → failed ("timed out"); killed because the run was cancelled →
    /// cancelled; SIGTERM → preempted; anything else → failed, naming the signal or status.
    /// Afterwards the store reclaims what a dead worker was creating and releases what it held.
    func runOnWorker(_ pool: ProcessExecutor) async -> _AttemptReport {
        let start = Date()
        let logPath = "\(logsDirectory)/\(RunLog.safeFileName(node.name)).\(attempt).log"
        func report(_ outcome: AttemptOutcome, _ output: _AttemptOutput? = nil, _ message: String? = nil, bytesIn: Int = 0) -> _AttemptReport {
            var made = _AttemptReport(
                index: index, attempt: attempt, outcome: outcome, output: output, message: message, start: start, end: Date(),
                bytesIn: bytesIn, logPath: logPath, logWritten: FileManager.default.fileExists(atPath: logPath))
            made.executor = "processes"
            return made
        }
        let handles: [ObjectHandle]
        do {
            handles = try await readInputs()
        } catch {
            return report(.error, nil, "reading an input: \(error.message)")
        }
        let spillRoot = (spill.directory as NSString).deletingLastPathComponent
        let spec = WorkerSpec(
            runID: runID, taskName: node.name, attempt: attempt, storeName: store.name,
            inputs: handles.map { .object($0.descriptor) }, runDirectory: runDirectory, resultPath: "")
        var request = _PoolRequest(
            spec: spec, spillRoot: spillRoot, prefaultStore: pool.options.prefaultStore, memoryWaitSeconds: environment.memoryWaitSeconds)
        request.spec.workflow = workflowName
        let message = request.wireMessage()

        let worker: _WorkerProcess
        do { worker = try pool.acquire() } catch { return report(.error, nil, error.message) }
        let reply = await worker.run(message, timeout: node.options.timeoutSeconds)
        pool.release(worker)
        withExtendedLifetime(handles) {}  // held until the worker is done with them

        switch reply {
        case .result(let result):
            guard result.outcome == .succeeded else {
                return report(result.outcome, nil, result.message ?? "worker \(worker.pid) reported \(result.outcome)", bytesIn: result.bytesIn)
            }
            guard case .object(let descriptor)? = result.output else {
                return report(.error, nil, "worker \(worker.pid) succeeded but returned no object of the run's store", bytesIn: result.bytesIn)
            }
            do {
                let handle: ObjectHandle
                do { handle = try store.get(descriptor) } catch { handle = try spill.get(descriptor.id) }
                return report(.succeeded, _AttemptOutput(handle), nil, bytesIn: result.bytesIn)
            } catch {
                return report(.error, nil, "reading the output of worker \(worker.pid): \(error)", bytesIn: result.bytesIn)
            }
        case .died(let death):
            // Objects it was creating are reclaimed and its references released, now.
            _ = try? store.reclaimDeadProcesses()
            let bytesIn = handles.reduce(0) { $0 + $1.byteCount }
            switch death.killReason {
            case .timeout?:
                return report(.failed, nil, "timed out after \(node.options.timeoutSeconds ?? 0) s (worker \(worker.pid) killed)", bytesIn: bytesIn)
            case .cancelled?:
                return report(.cancelled, nil, "run cancelled (worker \(worker.pid) killed)", bytesIn: bytesIn)
            case nil where death.signal == SIGTERM:
                return report(.preempted, nil, "worker \(worker.pid) was stopped (SIGTERM) while running the task", bytesIn: bytesIn)
            case nil:
                return report(.failed, nil, "worker \(worker.pid) died while running the task: \(death.status)", bytesIn: bytesIn)
            }
        }
    }
}
