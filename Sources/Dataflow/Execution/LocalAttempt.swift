import Foundation
import Logging
import Materialize
import ObjectStore

/// What one attempt reports back to the scheduler.
struct _AttemptReport: @unchecked Sendable {  // the handle is passed from the attempt to the scheduler once
    let index: Int
    let attempt: Int
    let outcome: AttemptOutcome
    let output: ObjectHandle?
    let message: String?
    let start: Date
    let end: Date
    let bytesIn: Int
    let logPath: String
    /// The attempt wrote to its log file (so it exists).
    let logWritten: Bool
    /// The executor that ran it, as the run log names it.
    var executor = "local"
}

/// Everything one attempt on the local executor needs; runs in a child task.
struct _AttemptContext: Sendable {
    let index: Int
    let node: _TaskNode
    let attempt: Int
    let inputs: [ObjectID]
    let runID: String
    let store: SharedObjectStore
    let spill: SpillManager
    let materializer: Materializer
    let runDirectory: String
    let logsDirectory: String
    let workflowName: String
    let executor: Executor

    /// Runs the attempt on its executor. Shell tasks start from this process whatever the
    /// executor (the command is a process of its own anyway).
    func run() async -> _AttemptReport {
        if case .processes(let pool) = executor, !node.isShell {
            return await runOnWorker(pool)
        }
        return await runHere()
    }

    /// Runs the task's function: inputs from the store (restored if spilled), output into the
    /// store (in place if the task made it there), outcome classified by cause.
    func runHere() async -> _AttemptReport {
        let start = Date()
        let fileStem = RunLog.safeFileName(node.name)
        let logPath = "\(logsDirectory)/\(fileStem).\(attempt).log"
        let sink = _LogSink(path: logPath)
        func report(_ outcome: AttemptOutcome, _ output: ObjectHandle? = nil, _ message: String? = nil, bytesIn: Int = 0) -> _AttemptReport {
            _AttemptReport(
                index: index, attempt: attempt, outcome: outcome, output: output, message: message, start: start, end: Date(),
                bytesIn: bytesIn, logPath: logPath,
                // A shell command writes its log itself; a function task only through the sink.
                logWritten: sink.wroteAnything || (node.isShell && FileManager.default.fileExists(atPath: logPath)))
        }
        var handles: [ObjectHandle] = []
        var inputFiles: [String] = []
        do {
            if node.isShell {
                // A shell command reads files: this is where `auto` writes one, as needed.
                inputFiles = try inputs.map { id throws(MaterializeError) in try materializer.rawFile(for: id) }
            } else {
                handles = try inputs.map { id throws(MaterializeError) in try spill.get(id) }
            }
        } catch {
            return report(.error, nil, "reading an input: \(error.message)")
        }
        let bytesIn = node.isShell
            ? inputs.reduce(0) { $0 + ((try? materializer.record(for: $1).byteCount) ?? 0) }
            : handles.reduce(0) { $0 + $1.byteCount }
        let logger = Logger(label: "dataflow.task.\(node.name)") { _ in _AttemptLogHandler(sink: sink) }
        let outputID = ObjectID(deriving: "\(runID)/\(node.name)/\(attempt)")
        var attemptContext = TaskContext(taskName: node.name, attempt: attempt, runID: runID, store: store, logger: logger, outputID: outputID)
        attemptContext.inputFiles = inputFiles
        attemptContext.attemptDirectory = node.isShell ? "\(runDirectory)/shell/\(fileStem).\(attempt)" : ""
        attemptContext.logPath = logPath
        attemptContext.timeoutSeconds = node.options.timeoutSeconds
        let context = attemptContext
        do {
            let inputHandles = handles
            handles = []
            let output = try await _withTimeout(node.options.timeoutSeconds) {
                try await TaskContext.$current.withValue(context) { try await node.run(inputHandles, context) }
            }
            let handle = try output.existingHandle(in: store) ?? _putOutput(output.value, id: outputID, store: store, spill: spill)
            return report(.succeeded, handle, nil, bytesIn: bytesIn)
        } catch {
            let (outcome, message) = _classifyAttemptError(error, timeoutSeconds: node.options.timeoutSeconds, logger: logger)
            return report(outcome, nil, message, bytesIn: bytesIn)
        }
    }

}

/// Encodes a task's return value into a new object `id`: through `spill` (making room under
/// memory pressure, waiting up to a minute) when there is one, else straight into `store`.
func _putOutput(_ value: any StoreValue, id: ObjectID, store: SharedObjectStore, spill: SpillManager?) throws -> ObjectHandle {
    guard let spill else { return try store.put(value, id: id) }
    let encoding = try value.makeEncoding()
    var builder = try spill.create(id, byteCount: encoding.byteCount, typeTag: type(of: value).typeTag, waitingUpTo: 60)
    try builder.withMutableBytes { span in try encoding.write(&span) }
    return try builder.seal()
}

/// How an attempt that threw `error` ended, by cause, and why in words; logs it to the
/// attempt's log. Shared by the local executor and worker mode.
func _classifyAttemptError(_ error: any Error, timeoutSeconds: Double?, logger: Logger) -> (AttemptOutcome, String) {
    switch error {
    case let preempted as TaskPreempted:
        logger.warning("preempted: \(preempted.reason)")
        return (.preempted, preempted.reason)
    case is _TimedOut:
        let message = "timed out after \(timeoutSeconds ?? 0) s"
        logger.error("\(message)")
        return (.failed, message)
    case is CancellationError where Task.isCancelled:
        return (.cancelled, "run cancelled")
    case let store as ObjectStoreError:
        logger.error("\(store)")
        return (.error, store.message)
    case let materialize as MaterializeError:
        logger.error("\(materialize)")
        return (.error, materialize.message)
    default:
        logger.error("task threw: \(error)")
        return (.failed, "\(error)")
    }
}

/// Thrown when an attempt runs past its timeout.
struct _TimedOut: Error {}

/// Runs `body`, cancelling it and throwing `_TimedOut` after `seconds` (none: no limit).
/// Cancellation is cooperative: a body that never checks for it runs on (the process executor
/// kills such tasks).
func _withTimeout<T: Sendable>(_ seconds: Double?, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    guard let seconds else { return try await body() }
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw _TimedOut() }
        return value
    }
}
