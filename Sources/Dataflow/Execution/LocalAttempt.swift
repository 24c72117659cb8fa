import Foundation
import Logging
import Materialize
import ObjectStore
import Synchronization

/// What one attempt reports back to the scheduler.
struct _AttemptReport: @unchecked Sendable {  // the handle is passed from the attempt to the scheduler once
    let index: Int
    let attempt: Int
    var outcome: AttemptOutcome
    var output: _AttemptOutput?
    var message: String?
    let start: Date
    var end: Date
    var bytesIn: Int
    var logPath: String
    /// The attempt wrote to its log file (so it exists).
    var logWritten: Bool
    /// Why it ended, as far as the executor tells (exit status, signal, engine state, node);
    /// boxed, so that an attempt that says nothing (a local one) carries one word.
    var causeBox: _AttemptCauseBox? = nil
    /// The executor said why it ended.
    var hasCause: Bool { causeBox != nil }
    var cause: AttemptCause {
        get { causeBox?.cause ?? AttemptCause() }
        set { causeBox = newValue == AttemptCause() ? nil : _AttemptCauseBox(newValue) }
    }
    /// Its task's resources were reserved for it (not riding on another's in a batch).
    var holdsResources = true
    /// The position of an input it found lost (its value gone or its file damaged): the
    /// scheduler then recomputes that input's producer instead of counting a failure.
    var lostInput: Int? = nil
}

/// Inputs that attempts found lost, by task index and attempt: noted where the read failed (on
/// a lane, in `AttemptLaunch.prepare`, or by a worker in its attempt record), taken by the
/// scheduler when the attempt ends. Empty in a run where nothing is lost.
///
/// - Note: Thread-safe (a lock).
final class _LostInputs: Sendable {
    private struct Key: Hashable {
        var index: Int
        var attempt: Int
    }
    private let positions = LockedValue<[Key: Int]>([:])

    func note(index: Int, attempt: Int, position: Int) {
        positions.withLock { $0[Key(index: index, attempt: attempt)] = position }
    }

    func take(index: Int, attempt: Int) -> Int? {
        positions.withLock { $0.removeValue(forKey: Key(index: index, attempt: attempt)) }
    }
}

/// An `AttemptCause` in a box. Immutable; thread-safe.
final class _AttemptCauseBox: Sendable {
    let cause: AttemptCause
    init(_ cause: AttemptCause) { self.cause = cause }
}

/// A succeeded attempt's output object: its id and size, and a handle on it when one is held. A
/// small value that a local attempt put into the store holds none (one visit to the store's lock
/// instead of two; see `SharedObjectStore.putSmallUnheld`), unless its policy is `never`.
struct _AttemptOutput: @unchecked Sendable {  // the handle is passed from the attempt to the scheduler once
    let id: ObjectID
    let byteCount: Int
    let handle: ObjectHandle?

    init(_ handle: ObjectHandle) {
        id = handle.id
        byteCount = handle.byteCount
        self.handle = handle
    }

    init(unheld id: ObjectID, byteCount: Int) {
        self.id = id
        self.byteCount = byteCount
        handle = nil
    }
}

/// What every attempt of one run shares: made once per run, so that an attempt carries one
/// reference to it rather than a dozen.
///
/// - Note: Immutable; thread-safe.
final class _RunEnvironment: Sendable {
    let nodes: [_TaskNode]
    let runID: String
    let store: SharedObjectStore
    let spill: SpillManager
    let materializer: Materializer
    let runDirectory: RunDirectory
    let workflowName: String
    /// The policy of outputs whose task sets none.
    let defaultPolicy: MaterializationPolicy
    /// `RunOptions.memoryWaitSeconds`.
    let memoryWaitSeconds: Double
    /// Inputs attempts found lost.
    let lostInputs = _LostInputs()
    /// The root of the run's spill directories (the parent of the spill manager's).
    let spillRoot: String

    init(nodes: [_TaskNode], runID: String, store: SharedObjectStore, spill: SpillManager, materializer: Materializer,
         runDirectory: RunDirectory, workflowName: String, defaultPolicy: MaterializationPolicy, memoryWaitSeconds: Double) {
        self.nodes = nodes
        self.runID = runID
        self.store = store
        self.spill = spill
        self.materializer = materializer
        self.runDirectory = runDirectory
        self.workflowName = workflowName
        self.defaultPolicy = defaultPolicy
        self.memoryWaitSeconds = memoryWaitSeconds
        self.spillRoot = (spill.directory as NSString).deletingLastPathComponent
    }
}

/// One attempt of a task: which task, which attempt, its inputs; runs on a lane.
struct _AttemptContext: Sendable {
    let environment: _RunEnvironment
    let index: Int
    let attempt: Int
    let inputs: [ObjectID]
    /// Its resources are reserved for it; false for a task riding on the reservation of the
    /// batch's first task (same resources, run after it on the same lane).
    var holdsResources = true

    var node: _TaskNode { environment.nodes[index] }
    var runID: String { environment.runID }
    var store: SharedObjectStore { environment.store }
    var spill: SpillManager { environment.spill }
    var materializer: Materializer { environment.materializer }
    var runDirectory: RunDirectory { environment.runDirectory }
    var workflowName: String { environment.workflowName }

    /// Notes that input `position` was found lost, if `error` says its value is gone.
    func noteIfLost(input position: Int, _ error: MaterializeError) {
        if error.meansValueLost { environment.lostInputs.note(index: index, attempt: attempt, position: position) }
    }

    /// The report of an attempt that never started because the run was cancelled.
    func cancelledReport() -> _AttemptReport {
        let now = Date()
        return _AttemptReport(
            index: index, attempt: attempt, outcome: .cancelled, output: nil, message: "run cancelled", start: now, end: now,
            bytesIn: 0, logPath: "", logWritten: false)
    }

    /// A report of this attempt, launched at `start` and ending now (for endings an executor
    /// makes). The log file counts if it exists (`logWritten`, when the worker said so; else
    /// it is looked for).
    func report(
        _ outcome: AttemptOutcome, _ output: _AttemptOutput?, _ message: String?, bytesIn: Int = 0, start: Date, logWritten: Bool? = nil
    ) -> _AttemptReport {
        // The path is made only if needed: most attempts have no log, and their workers say so.
        let written = logWritten ?? _Sys.pathExists(runDirectory.attemptLogPath(task: node.name, attempt: attempt))
        return _AttemptReport(
            index: index, attempt: attempt, outcome: outcome, output: output, message: message, start: start, end: Date(),
            bytesIn: bytesIn, logPath: written ? runDirectory.attemptLogPath(task: node.name, attempt: attempt) : "", logWritten: written)
    }

    /// The ending a worker's attempt record says: its output found in the store by descriptor
    /// (restored if spilled meanwhile), or restored from the file a worker without the store
    /// wrote.
    func ending(from record: WorkerResult, start: Date) async -> AttemptEnding {
        guard record.outcome == .succeeded else {
            if let position = record.lostInput { environment.lostInputs.note(index: index, attempt: attempt, position: position) }
            return AttemptEnding(report(record.outcome, nil, record.message ?? "the worker reported \(record.outcome)", bytesIn: record.bytesIn, start: start, logWritten: record.logWritten))
        }
        switch record.output {
        case .object(let descriptor)?:
            do {
                let handle: ObjectHandle
                do { handle = try store.get(descriptor) } catch {
                    handle = try await spill.get(descriptor.id, waitingForRoomUpTo: environment.memoryWaitSeconds)
                }
                return AttemptEnding(report(.succeeded, _AttemptOutput(handle), nil, bytesIn: record.bytesIn, start: start, logWritten: record.logWritten))
            } catch {
                return AttemptEnding(report(.error, nil, "reading the worker's output \(descriptor.id): \(error)", bytesIn: record.bytesIn, start: start, logWritten: record.logWritten))
            }
        case .file(let path)?:
            let outputID = _attemptOutputID(runID: runID, taskName: node.name, attempt: attempt)
            do {
                let handle = try SpillFile.restore(from: path, into: store, as: outputID)
                try? FileManager.default.removeItem(atPath: path)
                return AttemptEnding(report(.succeeded, _AttemptOutput(handle), nil, bytesIn: record.bytesIn, start: start, logWritten: record.logWritten))
            } catch {
                return AttemptEnding(report(.error, nil, "reading the worker's output file '\(path)': \(error)", bytesIn: record.bytesIn, start: start, logWritten: record.logWritten))
            }
        case nil:
            return AttemptEnding(report(.error, nil, "the worker succeeded but named no output", bytesIn: record.bytesIn, start: start, logWritten: record.logWritten))
        }
    }

    /// Handles on the attempt's inputs, restored from spill files if they were spilled (waiting
    /// for room, without blocking a thread, up to `RunOptions.memoryWaitSeconds`).
    @inline(__always)
    func readInputs() async throws(MaterializeError) -> [ObjectHandle] {
        var handles: [ObjectHandle] = []
        handles.reserveCapacity(inputs.count)
        for (position, id) in inputs.enumerated() {
            do throws(MaterializeError) {
                // In memory, the common case, without an async call; else restored, waiting for room.
                if let handle = try spill.getFromMemory(id) {
                    handles.append(handle)
                } else {
                    handles.append(try await spill.get(id, waitingForRoomUpTo: environment.memoryWaitSeconds))
                }
            } catch {
                noteIfLost(input: position, error)
                throw error
            }
        }
        return handles
    }

    /// Runs the task's function: inputs from the store (restored if spilled), output into the
    /// store (in place if the task made it there), outcome classified by cause.
    func runHere() async -> _AttemptReport {
        let start = Date()
        let node = self.node
        let sink = _LogSink(directory: runDirectory.logsDirectory, taskName: node.name, attempt: attempt)
        func report(_ outcome: AttemptOutcome, _ output: _AttemptOutput? = nil, _ message: String? = nil, bytesIn: Int = 0) -> _AttemptReport {
            // A shell command writes its log itself; a function task only through the sink.
            let written = sink.wroteAnything || (node.isShell && FileManager.default.fileExists(atPath: sink.path))
            return _AttemptReport(
                index: index, attempt: attempt, outcome: outcome, output: output, message: message, start: start, end: Date(),
                bytesIn: bytesIn, logPath: written ? sink.path : "", logWritten: written)
        }
        var handles: [ObjectHandle] = []
        var inputFiles: [String] = []
        do throws(MaterializeError) {
            if node.isShell {
                // A shell command reads files: this is where `auto` writes one, as needed.
                for (position, id) in inputs.enumerated() {
                    do throws(MaterializeError) { inputFiles.append(try materializer.rawFile(for: id)) } catch {
                        noteIfLost(input: position, error)
                        throw error
                    }
                }
            } else {
                handles = try await readInputs()
            }
        } catch {
            return report(.error, nil, "reading an input: \(error.message)")
        }
        let bytesIn = node.isShell
            ? inputs.reduce(0) { $0 + ((try? materializer.record(for: $1).byteCount) ?? 0) }
            : handles.reduce(0) { $0 + $1.byteCount }
        let outputID = _attemptOutputID(runID: runID, taskName: node.name, attempt: attempt)
        let context = node.isShell
            ? TaskContext(
                taskName: node.name, attempt: attempt, runID: runID, store: store, logSink: sink, outputID: outputID,
                timeoutSeconds: node.options.timeoutSeconds, inputFiles: inputFiles,
                attemptDirectory: runDirectory.shellAttemptDirectory(task: node.name, attempt: attempt), logPath: sink.path)
            : TaskContext(
                taskName: node.name, attempt: attempt, runID: runID, store: store, logSink: sink, outputID: outputID,
                timeoutSeconds: node.options.timeoutSeconds)
        // A `never` value stays held until it is pinned; any other may go in unheld.
        let holding = (node.options.policy ?? environment.defaultPolicy) == .never
        let inputHandles = handles
        handles = []
        let (outcome, output, message) = await _runTaskBody(
            node, inputs: inputHandles, context: context, spill: spill, memoryWaitSeconds: environment.memoryWaitSeconds,
            holdingSmallValues: holding)
        return report(outcome, output, message, bytesIn: bytesIn)
    }
}

/// The one attempt runner's core, wherever the attempt runs (a lane of this process, a pool
/// worker, a one-shot worker): calls the task body with its inputs and its timeout, puts its
/// value into the store (unless the body made it there in place), and classifies how it ended.
/// `spill` (if any) makes the output wait for room without blocking a thread.
@inline(__always)
func _runTaskBody(
    _ node: _TaskNode, inputs: [ObjectHandle], context: TaskContext, spill: SpillManager?, memoryWaitSeconds: Double,
    holdingSmallValues: Bool
) async -> (AttemptOutcome, _AttemptOutput?, String?) {
    let store = context.store
    do {
        let output: _TaskOutput
        if let timeout = node.options.timeoutSeconds {
            output = try await _withTimeout(timeout) {
                try await TaskContext.$current.withValue(context) { try await node.run(inputs, context) }
            }
        } else {  // no closure to allocate, no task group: the common, trivial case
            output = try await TaskContext.$current.withValue(context) { try await node.run(inputs, context) }
        }
        if let existing = output.existingHandle(in: store) {
            return (.succeeded, _AttemptOutput(existing), nil)
        }
        let stored = try await _putOutput(
            output.value, id: context.outputID, store: store, spill: spill, waitingForRoomUpTo: memoryWaitSeconds,
            holdingSmallValues: holdingSmallValues)
        return (.succeeded, stored, nil)
    } catch {
        let (outcome, message) = _classifyAttemptError(error, timeoutSeconds: node.options.timeoutSeconds, logger: context.logger)
        return (outcome, nil, message)
    }
}

extension Workflow {
    /// The object id that attempt `attempt` of task `task` gives its output in the store of run
    /// `runID` (the same in every process): for tools and tests that look into a run's store.
    public static func outputID(runID: String, task: String, attempt: Int) -> ObjectID {
        _attemptOutputID(runID: runID, taskName: task, attempt: attempt)
    }
}

/// The id of an attempt's output: `ObjectID(deriving: "<run id>/<task>/<attempt>")`, the same in
/// every process (a worker computes it without being told).
func _attemptOutputID(runID: String, taskName: String, attempt: Int) -> ObjectID {
    var derivation = ObjectID.Derivation()
    derivation.append(runID)
    derivation.append("/")
    derivation.append(taskName)
    derivation.append("/")
    derivation.append(decimal: attempt)
    return derivation.id
}

/// Encodes a task's return value into a new object `id`. The store makes room through its spill
/// manager; when nothing more can be freed, `spill` (if any) waits for room, suspended, up to
/// `timeout` seconds. A small value goes in with one visit to the store's lock, held or
/// (`holdingSmallValues` false) unheld; a larger one is always held.
func _putOutput(
    _ value: any StoreValue, id: ObjectID, store: SharedObjectStore, spill: SpillManager?, waitingForRoomUpTo timeout: Double,
    holdingSmallValues: Bool = true
) async throws -> _AttemptOutput {
    let encoding = try value.makeEncoding()
    let typeTag = type(of: value).typeTag
    if encoding.byteCount <= SharedObjectStore.smallValueByteLimit {
        do {
            if holdingSmallValues {
                return _AttemptOutput(try store.putSmall(id, byteCount: encoding.byteCount, typeTag: typeTag, write: encoding.write))
            }
            try store.putSmallUnheld(id, byteCount: encoding.byteCount, typeTag: typeTag, write: encoding.write)
            return _AttemptOutput(unheld: id, byteCount: encoding.byteCount)
        } catch let error as ObjectStoreError where error.code == .outOfMemory && spill != nil {
            // full: make room below, like any other value
        }
    }
    guard let spill else { return _AttemptOutput(try store.put(value, id: id)) }
    var builder = try await spill.create(id, byteCount: encoding.byteCount, typeTag: typeTag, waitingForRoomUpTo: timeout)
    try builder.withMutableBytes { span in try encoding.write(&span) }
    return _AttemptOutput(try builder.seal())
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
///
/// The caller gets `_TimedOut` at the timeout whether or not the body stops: the body runs in a
/// task of its own, which is cancelled then and left behind. Cancellation is cooperative, so a
/// body that never checks for it keeps its thread busy until it returns, and its result is then
/// dropped (an output it made in place stays in the store, unregistered, until the store goes:
/// at the end of the run for the embedded store); the attempt's lane is free at once. (The
/// process executor kills such tasks.)
/// Cancelling the caller cancels the body too.
func _withTimeout<T: Sendable>(_ seconds: Double?, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    guard let seconds else { return try await body() }
    let race = _TimeoutRace<T>()
    let work = Task { race.finish(with: await Result(catching: body)) }
    let timer = Task {
        guard (try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))) != nil else { return }
        race.finish(with: .failure(_TimedOut()))
    }
    return try await withTaskCancellationHandler {
        let result = await race.value()
        timer.cancel()
        work.cancel()  // timed out (or cancelled): the body is asked to stop
        return try result.get()
    } onCancel: {
        work.cancel()
        timer.cancel()
        race.finish(with: .failure(CancellationError()))
    }
}

/// The first of a body's result, its timeout and its caller's cancellation.
///
/// - Note: Thread-safe: `state` is guarded by its mutex.
final class _TimeoutRace<T: Sendable>: Sendable {
    private let state = Mutex<(result: Result<T, any Error>?, waiter: CheckedContinuation<Result<T, any Error>, Never>?)>((nil, nil))

    /// Records `result` if none came first, and hands it to the waiter.
    func finish(with result: Result<T, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<Result<T, any Error>, Never>? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: result)
    }

    /// The first result, once there is one.
    func value() async -> Result<T, any Error> {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Result<T, any Error>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

extension Result where Failure == any Error {
    /// The result of an async throwing body.
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
