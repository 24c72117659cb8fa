import Foundation
import Logging
import Materialize
import ObjectStore

/// What a worker process is asked to do: run one task of a workflow, once.
///
/// The program that builds the workflow is started again with `--dataflow-worker <spec.json>`;
/// it builds the same workflow (which is the registry of its functions) and calls
/// `Workflow.runWorkerIfRequested()`, which runs only the named task. Inputs come from the store
/// (by descriptor) when the worker can attach to it, otherwise from spill files in the run
/// directory; the output goes back the same way. The outcome is written to `resultPath`.
///
/// - Note: A value type; thread-safe. Plain `Codable` data, so it crosses processes and nodes.
public struct WorkerSpec: Codable, Sendable, Equatable {
    /// Where one input comes from.
    public enum Input: Codable, Sendable, Equatable {
        /// An object of the run's store (the worker attaches to `storeName`).
        case object(ObjectDescriptor)
        /// A spill file (self-describing) on a filesystem the worker shares.
        case file(String)
    }

    public var runID: String
    /// The workflow the task belongs to (a worker program may build several); nil: the first
    /// one that has a task of this name.
    public var workflow: String?
    public var taskName: String
    public var attempt: Int
    /// The run's store, when the worker can attach to it; nil on a node without it.
    public var storeName: String?
    /// The task's inputs, in parameter order.
    public var inputs: [Input]
    /// The run directory (attempt logs, output files of workers without the store).
    public var runDirectory: String
    /// Where the worker writes its `WorkerResult` as JSON (its attempt record, written last).
    public var resultPath: String
    /// Seconds the task may run; the worker enforces it (nil: no limit).
    public var timeoutSeconds: Double?
    /// How long the output, or a spilled input, may wait for room in the store (nil: the default).
    public var memoryWaitSeconds: Double?

    public init(runID: String, taskName: String, attempt: Int, storeName: String?, inputs: [Input], runDirectory: String, resultPath: String) {
        self.runID = runID
        self.taskName = taskName
        self.attempt = attempt
        self.storeName = storeName
        self.inputs = inputs
        self.runDirectory = runDirectory
        self.resultPath = resultPath
    }

    /// The command-line flag that starts a worker.
    public static let flag = "--dataflow-worker"
}

/// How a worker's attempt ended, written by the worker for its parent.
public struct WorkerResult: Codable, Sendable, Equatable {
    /// Where the output went.
    public enum Output: Codable, Sendable, Equatable {
        case object(ObjectDescriptor)
        case file(String)
    }
    public var outcome: AttemptOutcome
    public var output: Output?
    public var message: String?
    public var bytesIn: Int
    /// The position of an input the worker found lost (gone from the store, its file missing
    /// or damaged): the driver then recomputes that input's producer.
    public var lostInput: Int?
    /// Whether the attempt's log file has something in it, when the worker knows (a pool worker
    /// does); nil when the driver must look (a worker whose output an engine sends to the file).
    public var logWritten: Bool?

    public init(outcome: AttemptOutcome, output: Output?, message: String?, bytesIn: Int, lostInput: Int? = nil, logWritten: Bool? = nil) {
        self.outcome = outcome
        self.output = output
        self.message = message
        self.bytesIn = bytesIn
        self.lostInput = lostInput
        self.logWritten = logWritten
    }
}

extension Workflow {
    /// If this process was started as a worker, serves and exits; otherwise returns at once.
    /// Call it in `main` right after building the workflow. See the static form.
    public func runWorkerIfRequested(arguments: [String] = CommandLine.arguments) async {
        await Workflow.runWorkerIfRequested([self], arguments: arguments)
    }

    /// If this process was started as a worker, serves and exits the process; otherwise returns
    /// at once. Call it in `main` right after building the workflows.
    ///
    /// - `--dataflow-worker <spec.json>`: runs that one task (of the workflow the spec names, or
    ///   the first of `workflows` that has a task of its name), writes its result, and exits with
    ///   status 0 when the task succeeded, 1 otherwise, 2 for a bad spec.
    /// - `--dataflow-worker-pool`: a warm worker of a `ProcessExecutor`, running task after task
    ///   until its request pipe closes, then exits with status 0.
    public static func runWorkerIfRequested(_ workflows: [Workflow], arguments: [String] = CommandLine.arguments) async {
        await runWorkerIfRequested(arguments: arguments) { name in workflows.first { $0.name == name } } fallback: { spec in
            workflow(for: spec, among: workflows)
        }
    }

    /// Like `runWorkerIfRequested(_:arguments:)` for a program whose workflows depend on
    /// parameters: `building` makes the workflow of a given name (a name that encodes its
    /// parameters, e.g. "chain-3-512MiB") the way the parent made it. A pool worker builds each
    /// workflow once and keeps it.
    public static func runWorkerIfRequested(arguments: [String] = CommandLine.arguments, building: @escaping (String) -> Workflow?) async {
        await runWorkerIfRequested(arguments: arguments, building: building) { spec in spec.workflow.flatMap(building) }
    }

    private static func runWorkerIfRequested(
        arguments: [String], building: @escaping (String) -> Workflow?, fallback: @escaping (WorkerSpec) -> Workflow?
    ) async {
        if arguments.contains(ProcessExecutor.workerFlag) {
            _WorkerSignals.installForPoolWorker()
            var built: [String: Workflow] = [:]
            await _PoolWorker { spec in
                guard let name = spec.workflow else { return fallback(spec) }
                if let known = built[name] { return known }
                let made = building(name)
                built[name] = made
                return made
            }.serve()
            exit(0)
        }
        guard let flag = arguments.firstIndex(of: WorkerSpec.flag) else { return }
        guard flag + 1 < arguments.count,
            let data = FileManager.default.contents(atPath: arguments[flag + 1]),
            let spec = try? JSONDecoder().decode(WorkerSpec.self, from: data)
        else {
            FileHandle.standardError.write(Data("dataflow worker: cannot read a worker spec from \(arguments.dropFirst(flag + 1).first ?? "(missing)")\n".utf8))
            exit(2)
        }
        guard let workflow = spec.workflow.flatMap(building) ?? fallback(spec) else {
            let result = WorkerResult(outcome: .error, output: nil, message: "no workflow of this program has task '\(spec.taskName)'", bytesIn: 0)
            _writeAttemptRecord(result, to: spec.resultPath)
            exit(1)
        }
        // An engine's stop (SLURM's preemption, time limit or scancel; Ray's stop) is SIGTERM,
        // with SIGKILL some seconds later: the worker writes its record in between.
        _WorkerSignals.install(recordPath: spec.resultPath, logPath: RunDirectory(path: spec.runDirectory).attemptLogPath(task: spec.taskName, attempt: spec.attempt))
        let result = await workflow.runWorker(spec)
        exit(result.outcome == .succeeded ? 0 : 1)
    }

    /// The workflow `spec` names, or the first that has its task.
    static func workflow(for spec: WorkerSpec, among workflows: [Workflow]) -> Workflow? {
        if let name = spec.workflow { return workflows.first { $0.name == name } }
        return workflows.first { $0.index(of: spec.taskName) != nil }
    }

    /// Runs the one task `spec` names in this process and writes its `WorkerResult` to
    /// `spec.resultPath` (also returned). Never throws: every failure is an outcome.
    @discardableResult
    public func runWorker(_ spec: WorkerSpec) async -> WorkerResult {
        var result = await executeWorker(spec)
        result.logWritten = nil  // the engine sends the process's output to the log file too
        _writeAttemptRecord(result, to: spec.resultPath)
        return result
    }

    /// Runs the task `spec` names. `attached`: a store (and its spill manager) the worker keeps
    /// between tasks; otherwise it attaches to `spec.storeName` (or makes a private store).
    func executeWorker(_ spec: WorkerSpec, attached: (store: SharedObjectStore, spill: SpillManager?)? = nil) async -> WorkerResult {
        let memoryWaitSeconds = spec.memoryWaitSeconds ?? RunOptions.defaultMemoryWaitSeconds
        func failure(_ outcome: AttemptOutcome, _ message: String) -> WorkerResult {
            WorkerResult(outcome: outcome, output: nil, message: message, bytesIn: 0)
        }
        guard let index = index(of: spec.taskName) else {
            return failure(.error, "task '\(spec.taskName)' is no task of workflow '\(name)' in this program")
        }
        let node = nodes[index]
        guard !node.isShell else {
            return failure(.error, "task '\(spec.taskName)' is a shell task; worker mode runs Swift function tasks")
        }
        guard node.inputs.count == spec.inputs.count else {
            return failure(.error, "task '\(spec.taskName)' takes \(node.inputs.count) inputs; the spec gives \(spec.inputs.count)")
        }
        // The store: the run's, or a private one for a worker that cannot reach it.
        let store: SharedObjectStore
        var privateStoreName: String?
        do {
            if let attached, attached.store.name == spec.storeName {
                store = attached.store
            } else if let name = spec.storeName {
                store = try SharedObjectStore.attach(named: name)
            } else {
                let name = "worker-\(_Sys.processID())-\(ObjectID.random().description.prefix(8))"
                let needed = spec.inputs.reduce(0) { total, input in
                    if case .file(let path) = input { return total + ((try? SpillFile.readHeader(at: path).rawByteCount) ?? 0) }
                    return total
                }
                store = try SharedObjectStore.create(named: name, capacityBytes: max(64 << 20, 2 * needed + (64 << 20)))
                privateStoreName = name
                // Nobody else attaches to it: its name goes now, so that its memory returns to the
                // system when this process ends, even if it is killed.
                try? SharedObjectStore.remove(named: name)
            }
        } catch {
            return failure(.error, "worker cannot open its store: \(error.message)")
        }
        var handles: [ObjectHandle] = []
        for (position, input) in spec.inputs.enumerated() {
            func lost(_ message: String) -> WorkerResult {
                WorkerResult(outcome: .error, output: nil, message: "reading an input: \(message)", bytesIn: 0, lostInput: position)
            }
            do {
                switch input {
                case .object(let descriptor):
                    if let spill = attached?.spill, attached?.store === store {
                        // Restored from its spill file if it was spilled since the descriptor was made.
                        do { handles.append(try store.get(descriptor)) } catch {
                            handles.append(try await spill.get(descriptor.id, waitingForRoomUpTo: memoryWaitSeconds))
                        }
                    } else {
                        handles.append(try store.get(descriptor))
                    }
                case .file(let path): handles.append(try SpillFile.restore(from: path, into: store, as: .random()))
                }
            } catch let error as ObjectStoreError {
                if error.code == .objectNotFound || error.code == .staleDescriptor { return lost(error.message) }
                return failure(.error, "reading an input: \(error.message)")
            } catch let error as MaterializeError {
                if error.meansValueLost { return lost(error.message) }
                return failure(.error, "reading an input: \(error.message)")
            } catch {
                return failure(.error, "reading an input: \(error)")
            }
        }
        let bytesIn = handles.reduce(0) { $0 + $1.byteCount }
        let runDirectory = RunDirectory(path: spec.runDirectory)
        if attached == nil {  // a pool worker made it when it opened the log file
            try? FileManager.default.createDirectory(atPath: runDirectory.logsDirectory, withIntermediateDirectories: true)
        }
        let sink = _LogSink(directory: runDirectory.logsDirectory, taskName: spec.taskName, attempt: spec.attempt)
        let outputID = _attemptOutputID(runID: spec.runID, taskName: node.name, attempt: spec.attempt)
        let context = TaskContext(
            taskName: node.name, attempt: spec.attempt, runID: spec.runID, store: store, logSink: sink, outputID: outputID,
            timeoutSeconds: node.options.timeoutSeconds)
        let inputs = handles
        handles = []
        // The same runner as the local executor's: the task's timeout holds here too.
        // Held: the parent takes its own reference from the descriptor before this one goes.
        let (outcome, output, message) = await _runTaskBody(
            node, inputs: inputs, context: context, spill: attached?.store === store ? attached?.spill : nil,
            memoryWaitSeconds: memoryWaitSeconds, holdingSmallValues: true)
        guard outcome == .succeeded, let handle = output?.handle else {
            return WorkerResult(outcome: outcome, output: nil, message: message, bytesIn: bytesIn, logWritten: sink.wroteAnything)
        }
        if privateStoreName == nil {
            return WorkerResult(outcome: .succeeded, output: .object(handle.descriptor), message: nil, bytesIn: bytesIn, logWritten: sink.wroteAnything)
        }
        // No shared store: the output goes to the run directory as a spill file.
        let path = runDirectory.exchangeOutputPath(task: node.name, attempt: spec.attempt)
        do {
            try? FileManager.default.createDirectory(atPath: runDirectory.exchangeDirectory, withIntermediateDirectories: true)
            try SpillFile.write(handle, to: path)
        } catch {
            return WorkerResult(outcome: .error, output: nil, message: "writing the output file '\(path)': \(error.message)", bytesIn: bytesIn)
        }
        return WorkerResult(outcome: .succeeded, output: .file(path), message: nil, bytesIn: bytesIn)
    }
}

/// Writes a worker's attempt record: to a temporary name, `fsync`ed, then renamed into place
/// (and the directory synced), so a reader, on this node or through a shared filesystem, sees a
/// whole record or none; the record is written last, after the output. In a process where
/// `_WorkerSignals` is installed, only the first record of the process is written (a record
/// written at a signal is not overwritten by a late one, nor the other way round).
func _writeAttemptRecord(_ result: WorkerResult, to path: String) {
    guard _WorkerSignals.claimRecord() else { return }
    _writeAttemptRecordFile(result, to: path)
}

func _writeAttemptRecordFile(_ result: WorkerResult, to path: String) {
    guard !path.isEmpty, let data = try? JSONEncoder().encode(result) else { return }
    let directory = (path as NSString).deletingLastPathComponent
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let temporary = "\(path).tmp-\(_Sys.processID())"
    guard _Sys.writeDurably([UInt8](data), to: temporary) else {
        _Sys.unlink(temporary)
        return
    }
    if _Sys.rename(temporary, to: path) { _Sys.syncDirectory(directory) } else { _Sys.unlink(temporary) }
}
