import Foundation
import Materialize
import ObjectStore

/// One attempt of one task, as the scheduler hands it to an executor: what to run, where its
/// inputs are, where its output and attempt record go, and how to turn what happened into an
/// `AttemptEnding`.
///
/// - Note: A value type; thread-safe. Cheap: it refers to the run's shared state, and builds a
///   `WorkerSpec` only when an executor asks for one (`prepare()`).
public struct AttemptLaunch: Sendable {
    let context: _AttemptContext
    /// The executor's capabilities in this run (decides how inputs are handed over).
    let reachesStore: Bool

    /// When the scheduler launched it (an ending's start).
    public let launchedAt: Date

    init(_ context: _AttemptContext, reachesStore: Bool) {
        self.context = context
        self.reachesStore = reachesStore
        self.launchedAt = Date()
    }

    /// The task's name.
    public var taskName: String { context.node.name }
    /// The attempt's number, from 1.
    public var attempt: Int { context.attempt }
    public var runID: String { context.runID }
    /// The workflow's name (what a worker program builds to find the task).
    public var workflowName: String { context.workflowName }
    /// What the task declared.
    public var resources: Resources { context.node.options.resources }
    /// Seconds the attempt may run (nil: no limit). `runHere` and workers enforce it; an engine
    /// may also be told it (e.g. a job's time limit).
    public var timeoutSeconds: Double? { context.node.options.timeoutSeconds }
    /// The task's settings for its engine (`TaskOptions.executorSettings`).
    public var executorSettings: [String: String] { context.node.options.executorSettings }
    /// A shell task (its command runs from this process: see `runHere`).
    public var isShell: Bool { context.node.isShell }
    /// The run's directory.
    public var runDirectory: RunDirectory { context.environment.runDirectory }
    /// This attempt's log file.
    public var logPath: String { runDirectory.attemptLogPath(task: taskName, attempt: attempt) }
    /// A deterministic name for the attempt, `<run id>-<task>-<attempt>` as a file-name stem:
    /// resubmitting it is idempotent, and engines can find it again.
    public var attemptName: String { RunDirectory.fileName(for: "\(runID)-\(taskName)-\(attempt)") }
    /// The run's store, for executors whose attempts reach it (nil otherwise).
    public var store: SharedObjectStore? { reachesStore ? context.store : nil }
    /// The program that built this workflow (`/proc/self/exe`): started with `WorkerSpec.flag`
    /// and a spec file, it runs the attempt (see `Workflow.runWorkerIfRequested`).
    public var workerProgram: String { _currentExecutablePath() }
    /// How long producing the output or restoring an input may wait for room in the store.
    public var memoryWaitSeconds: Double { context.environment.memoryWaitSeconds }
    /// The root of the run's spill directories (workers attached to the store spill there too).
    public var spillRoot: String { context.environment.spillRoot }

    // MARK: Running here

    /// Runs the attempt in this process: the one attempt runner (inputs from the store, restored
    /// if spilled; the task body with its timeout; the output into the store, in place if the
    /// task made it there; the outcome classified by cause). Shell tasks run their command from
    /// here whatever the executor.
    public func runHere() async -> AttemptEnding {
        AttemptEnding(await context.runHere())
    }

    // MARK: Running elsewhere

    /// Prepares the attempt's storage for a worker process and returns its spec: the inputs as
    /// store descriptors (when the executor reaches the store; they stay held, so they cannot be
    /// spilled away, until the prepared attempt is dropped) or as files in the run directory
    /// (written now under `auto`; the in-memory copies then follow their policy). The spec's
    /// `resultPath` is where the worker writes its attempt record.
    /// - Throws: `.store` naming the input that cannot be read or written.
    public func prepare() async throws(DataflowError) -> PreparedAttempt {
        try await prepare(withRecordPath: true)
    }

    /// `prepare()`, with an empty `resultPath` when `withRecordPath` is false (the process
    /// executor's workers answer on their channel and write no record).
    func prepare(withRecordPath: Bool) async throws(DataflowError) -> PreparedAttempt {
        let directory = runDirectory
        var inputs: [WorkerSpec.Input] = []
        var held: [ObjectHandle] = []
        do throws(MaterializeError) {
            if reachesStore {
                held = try await context.readInputs()
                inputs = held.map { .object($0.descriptor) }
            } else {
                for (position, id) in context.inputs.enumerated() {
                    do throws(MaterializeError) { inputs.append(.file(try context.materializer.file(for: id))) } catch {
                        context.noteIfLost(input: position, error)
                        throw error
                    }
                }
            }
        } catch {
            var failure = DataflowError(.store, "task '\(taskName)' attempt \(attempt): preparing an input: \(error.message)", task: taskName)
            failure.underlying = error
            throw failure
        }
        var spec = WorkerSpec(
            runID: runID, taskName: taskName, attempt: attempt, storeName: reachesStore ? context.store.name : nil,
            inputs: inputs, runDirectory: directory.path,
            resultPath: withRecordPath ? directory.attemptRecordPath(task: taskName, attempt: attempt) : "")
        spec.workflow = workflowName
        spec.timeoutSeconds = timeoutSeconds
        spec.memoryWaitSeconds = memoryWaitSeconds
        return PreparedAttempt(spec: spec, held: held, inputBytes: held.reduce(0) { $0 + $1.byteCount })
    }

    // MARK: Endings

    /// An ending with no output: failed, preempted, error or cancelled (or succeeded for a
    /// custom executor's own reasons: then there is no value, and the scheduler records an error).
    public func ending(_ outcome: AttemptOutcome, message: String, cause: AttemptCause = AttemptCause()) -> AttemptEnding {
        var report = context.report(outcome == .succeeded ? .error : outcome, nil, outcome == .succeeded ? "\(message) (an ending without an output)" : message, start: launchedAt)
        report.cause = cause
        return AttemptEnding(report)
    }

    /// The ending a worker's attempt record (`WorkerResult`) says, with the engine's `cause`:
    /// a succeeded output is found in the store (by descriptor, restored if spilled meanwhile)
    /// or, from a worker without the store, restored from its file into the store.
    public func ending(_ record: WorkerResult, cause: AttemptCause = AttemptCause()) async -> AttemptEnding {
        var ending = await context.ending(from: record, start: launchedAt)
        ending.report.cause = cause
        return ending
    }

    /// How a worker process that ran this attempt ended, from what it left and how it exited:
    /// its attempt record (at `prepared.spec.resultPath`), if it wrote one, decides; without one,
    /// a SIGTERM is a preemption, a timeout (`timedOut`) a failure, anything else a failure
    /// naming the status or signal (and what the worker program may be missing).
    public func ending(
        afterWorkerExit prepared: PreparedAttempt, status: Int32?, signal: Int32?, timedOut: Bool = false, node: String? = nil
    ) async -> AttemptEnding {
        let cause = AttemptCause(exitStatus: status, signal: signal, node: node)
        if !timedOut, let data = FileManager.default.contents(atPath: prepared.spec.resultPath),
            let record = try? JSONDecoder().decode(WorkerResult.self, from: data)
        {
            return await ending(record, cause: cause)
        }
        if timedOut {
            return ending(.failed, message: "timed out after \(timeoutSeconds ?? 0) s (worker killed)", cause: cause)
        }
        if let signal {
            return signal == SIGTERM
                ? ending(.preempted, message: "the worker was stopped (SIGTERM) while running the task", cause: cause)
                : ending(.failed, message: "the worker died of signal \(signal) (\(_signalName(signal))) before writing its attempt record", cause: cause)
        }
        return ending(
            .failed,
            message: "the worker exited with status \(status ?? -1) without writing its attempt record "
                + "(does the worker program call `Workflow.runWorkerIfRequested(...)` first in main?)",
            cause: cause)
    }
}

/// An attempt's storage, prepared for a worker process: its spec, and the inputs it holds in the
/// store until it is dropped (keep it until the attempt has ended).
///
/// - Note: Thread-safe (immutable).
public struct PreparedAttempt: @unchecked Sendable {  // the handles are only kept alive, never read
    /// What the worker is asked to run.
    public let spec: WorkerSpec
    let held: [ObjectHandle]
    /// Bytes of the inputs handed over as store objects.
    public let inputBytes: Int

    /// The attempt record the worker wrote (`spec.resultPath`), if it is there and whole. Lists
    /// its directory first: on NFS that refreshes a cached "no such file".
    public func writtenRecord() -> WorkerResult? {
        _ = try? FileManager.default.contentsOfDirectory(atPath: (spec.resultPath as NSString).deletingLastPathComponent)
        guard let data = FileManager.default.contents(atPath: spec.resultPath) else { return nil }
        return try? JSONDecoder().decode(WorkerResult.self, from: data)
    }

    /// Whether the worker's attempt record exists yet (one `access` call: cheap per poll round).
    public var hasRecord: Bool { access(spec.resultPath, F_OK) == 0 }

    /// Writes the spec as JSON to the run directory (`workers/<task>.<attempt>.spec.json`, 0600)
    /// and returns its path, for `program --dataflow-worker <path>`.
    /// - Throws: `.runDirectory` naming the file.
    public func writeSpecFile() throws(DataflowError) -> String {
        let directory = RunDirectory(path: spec.runDirectory)
        let path = directory.workerSpecPath(task: spec.taskName, attempt: spec.attempt)
        do {
            try FileManager.default.createDirectory(atPath: directory.workersDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let data = try JSONEncoder().encode(spec)
            guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
                throw DataflowError(.runDirectory, "cannot write worker spec '\(path)'")
            }
        } catch let error as DataflowError {
            throw error
        } catch {
            throw DataflowError(.runDirectory, "cannot write worker spec '\(path)': \(error)")
        }
        return path
    }
}

/// Why an attempt ended, as far as the engine tells: what the run log records beside the outcome.
///
/// - Note: A value type; thread-safe.
public struct AttemptCause: Sendable, Equatable, Codable {
    /// The worker process's exit status, if it exited.
    public var exitStatus: Int32?
    /// The signal that ended it, if one did.
    public var signal: Int32?
    /// The engine's final state (e.g. SLURM `PREEMPTED`, Ray `STOPPED`).
    public var engineState: String?
    /// Where it ran (a host name).
    public var node: String?

    public init(exitStatus: Int32? = nil, signal: Int32? = nil, engineState: String? = nil, node: String? = nil) {
        self.exitStatus = exitStatus
        self.signal = signal
        self.engineState = engineState
        self.node = node
    }
}

/// How one attempt ended: its outcome, why, and (succeeded) its output in the run's store.
///
/// - Note: Thread-safe: an ending is handed from the executor to the scheduler once.
public struct AttemptEnding: Sendable {
    var report: _AttemptReport

    init(_ report: _AttemptReport) { self.report = report }

    public var outcome: AttemptOutcome { report.outcome }
    public var message: String? { report.message }
    public var cause: AttemptCause { report.cause }
    /// Bytes of the inputs it read.
    public var bytesIn: Int { report.bytesIn }
    /// Bytes of its output (0 when none).
    public var bytesOut: Int { report.output?.byteCount ?? 0 }
}

/// This program's path (`/proc/self/exe`, else `argv[0]`).
func _currentExecutablePath() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

/// "SIGKILL", "SIGTERM", ... for a signal number.
func _signalName(_ number: Int32) -> String { _WorkerProcess.signalName(number) }
