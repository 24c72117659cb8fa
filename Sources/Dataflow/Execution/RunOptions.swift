import Foundation
import Materialize
import ObjectStore

/// How a run goes.
///
/// - Note: A value type; thread-safe.
public struct RunOptions: Sendable {
    /// What to do when a task fails for good.
    public enum FailureMode: String, Sendable {
        /// Start no new task; let running ones finish; report every failure. The default.
        case stopScheduling
        /// Go on with every task that does not depend on a failed one; report every failure.
        case keepGoing
    }

    /// The run directory is `<workdir>/runs/<run id>/`; spill files go under `<workdir>/spill/`.
    /// Default: `RunOptions.defaultWorkdir()` — `$DATAFLOW_WORKDIR`, else `./.dataflow`, the
    /// same directory the `dataflow` command reads.
    public var workdir: String
    /// The run's id (default: workflow name, UTC time and a random suffix).
    public var runID: String?
    /// Tasks running at once (default: the machine's cores).
    public var concurrency: Int
    /// The executor's resources; tasks' declared resources are checked against and packed into them.
    public var capacity: Resources
    public var onFailure: FailureMode
    /// The store to use. Default: an embedded store made for the run and removed afterwards.
    public var store: SharedObjectStore?
    /// Capacity of the embedded store.
    public var storeCapacityBytes: Int
    /// The most objects the embedded store holds at once (its object table has twice as many
    /// 64-byte slots). Default (nil): sized from the graph, `objectsNeeded(taskCount:capacityBytes:)`:
    /// room for every task's output at once, so a map of a million tasks and its gather run
    /// with default options.
    public var maxObjects: Int?
    /// Names of the tasks whose outputs the caller wants. Default: every leaf.
    public var results: [String]?
    /// Spilling watermarks of the store.
    public var watermarks: SpillManager.Watermarks
    /// How long a task's output, or a spilled input being restored, may wait for room when
    /// nothing can be spilled or dropped to make it (values in use and `never` values are freed
    /// only by their consumers). Then the attempt fails with an error naming what pins the
    /// memory. Waiting suspends the attempt; it blocks no thread. A task that makes its output
    /// in place (`TaskContext.makeTensor`) does not wait: it fails at once with `.outOfMemory`.
    public var memoryWaitSeconds: Double = RunOptions.defaultMemoryWaitSeconds
    /// The default of `memoryWaitSeconds`.
    public static let defaultMemoryWaitSeconds = 60.0

    /// Where tasks run by default: `.local` (threads of this process, the default),
    /// `.processes(pool)` (warm worker processes sharing the store; shell tasks still start from
    /// this process), or any `Executor`. The run log names it by its kind (`local`), or by its
    /// key if it is also one of `executors` (`default` if its kind is another executor's name).
    public var executor: any Executor = .local
    /// Executors a task can choose by name (`TaskOptions.executor`) or by label
    /// (`executorForLabel`). A task that chooses none runs on `executor`.
    public var executors: [String: any Executor] = [:]
    /// Executor names by task label: a task with label `L` (`TaskOptions.labels`) runs on
    /// `executors[executorForLabel[L]]`, unless it names an executor itself (its first label
    /// found here wins).
    public var executorForLabel: [String: String] = [:]

    /// When to show the progress line.
    public enum ProgressMode: String, Sendable {
        /// Only when standard error is a terminal (the default).
        case automatic
        case never
        case always
    }
    public var progress: ProgressMode = .automatic
    /// How many times one task may run again to recompute a value of its that was lost (a
    /// damaged or missing file, a value gone from memory) before the loss fails the run.
    public var recomputeLimit: Int = 3
    /// Reuse the results of earlier runs of the same workflow in this work directory that are
    /// still current (same task version, parameters, file dependencies, and inputs): those
    /// tasks do not run, and their consumers read the kept files. See README "Re-runs".
    public var resume: Bool = false
    /// With `resume`: tasks that run even if their kept results are current (by name).
    public var rerun: Set<String> = []
    /// Where progress lines go (default: standard error).
    public var progressWriter: (@Sendable (String) -> Void)?

    public init(
        workdir: String? = nil, runID: String? = nil,
        concurrency: Int = ProcessInfo.processInfo.activeProcessorCount, capacity: Resources? = nil,
        onFailure: FailureMode = .stopScheduling, store: SharedObjectStore? = nil, storeCapacityBytes: Int = 1 << 30,
        results: [String]? = nil, watermarks: SpillManager.Watermarks = .init(), executor: any Executor = .local,
        executors: [String: any Executor] = [:]
    ) {
        self.executors = executors
        self.executor = executor
        self.workdir = workdir ?? Self.defaultWorkdir()
        self.runID = runID
        self.concurrency = concurrency
        self.capacity = capacity ?? Resources(
            cpu: Double(ProcessInfo.processInfo.activeProcessorCount),
            memoryBytes: Int(clamping: ProcessInfo.processInfo.physicalMemory), gpu: 0)
        self.onFailure = onFailure
        self.store = store
        self.storeCapacityBytes = storeCapacityBytes
        self.results = results
        self.watermarks = watermarks
    }

    /// The object table the embedded store gets for a graph of `taskCount` tasks: every task's
    /// output at once, plus 1/64 and 1,024 for values restored or recomputed while old ones are
    /// still held, and never less than the store's own default for its capacity
    /// (`StoreOptions.defaultMaxObjects(forCapacity:)`); at most `StoreOptions.maximumMaxObjects`.
    /// (The table has a power of two of 64-byte slots, at least twice this: a million tasks get
    /// 2^21 slots, 128 MiB; a larger headroom would double it.)
    public static func objectsNeeded(taskCount: Int, capacityBytes: Int) -> Int {
        min(StoreOptions.maximumMaxObjects, max(StoreOptions.defaultMaxObjects(forCapacity: capacityBytes), taskCount + taskCount / 64 + 1024))
    }

    /// The environment variable that sets the default work directory (library and command).
    public static let workdirEnvironmentVariable = "DATAFLOW_WORKDIR"

    /// The default work directory, made absolute: `$DATAFLOW_WORKDIR` when set and not empty,
    /// else `./.dataflow` in the current directory. The `dataflow` command uses the same.
    public static func defaultWorkdir(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let chosen = environment[workdirEnvironmentVariable].flatMap { $0.isEmpty ? nil : $0 } ?? ".dataflow"
        if chosen.hasPrefix("/") { return chosen }
        return FileManager.default.currentDirectoryPath + "/" + chosen
    }

    /// The most characters of a run id (its embedded store is named `run-<run id>`).
    public static let maximumRunIDLength = 190

    /// Checks a run id given by the caller: it becomes a directory name (`<workdir>/runs/<id>`)
    /// and part of a store name, so it is 1–190 characters from `[A-Za-z0-9._-]` and does not
    /// start with `.` (no `..`, no path separators, no hidden directory).
    /// - Throws: `.invalidOption` ("invalid run id"), naming it with control characters escaped.
    public static func validateRunID(_ runID: String) throws(DataflowError) {
        let allowed = runID.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        guard !runID.isEmpty, runID.utf8.count <= maximumRunIDLength, allowed, !runID.hasPrefix(".") else {
            throw DataflowError(
                .invalidOption,
                "invalid run id \(_quoted(runID)): use 1-\(maximumRunIDLength) characters from [A-Za-z0-9._-], not starting with '.'")
        }
    }

    /// Checks the options that `run` takes as given.
    /// - Throws: `.invalidOption` naming the option.
    func validate() throws(DataflowError) {
        if let runID { try Self.validateRunID(runID) }
        if let maxObjects, maxObjects < 1 || maxObjects > StoreOptions.maximumMaxObjects {
            throw DataflowError(.invalidOption, "maxObjects must be 1 to \(StoreOptions.maximumMaxObjects) (got \(maxObjects))")
        }
        guard recomputeLimit >= 0 else {
            throw DataflowError(.invalidOption, "recomputeLimit must be 0 or more (got \(recomputeLimit))")
        }
        guard !workdir.isEmpty else {
            throw DataflowError(.invalidOption, "the work directory is empty; give a directory (e.g. \".\")")
        }
        guard !workdir.utf8.contains(0) else {
            throw DataflowError(.invalidOption, "the work directory \(_quoted(workdir)) contains a NUL character")
        }
        guard concurrency >= 1 else {
            throw DataflowError(.invalidOption, "concurrency must be at least 1, not \(concurrency)")
        }
        guard memoryWaitSeconds >= 0 else {
            throw DataflowError(.invalidOption, "memoryWaitSeconds must be zero or more, not \(memoryWaitSeconds)")
        }
        if let problem = capacity.negativeAmount {
            throw DataflowError(.invalidOption, "the executor capacity has \(problem); it must be zero or more")
        }
    }

    /// The name of the store a run makes for itself when `store` is nil
    /// (`/dev/shm/dataflow.<name>`): `run-` and the run id's first 190 characters.
    public static func storeName(runID: String) -> String { "run-\(String(runID.prefix(190)))" }

    /// "<workflow>-<yyyyMMdd-HHmmss>-<4 hex>", valid as a store name and a directory name.
    public static func makeRunID(workflow: String) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        let safe = String(workflow.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" }.prefix(60))
        return "\(safe.isEmpty ? "run" : safe)-\(formatter.string(from: Date()))-\(ObjectID.random().description.prefix(4))"
    }
}

/// How one attempt of a task ended.
public enum AttemptOutcome: String, Sendable, Codable, CustomStringConvertible {
    /// The task returned a value.
    case succeeded
    /// The task threw (or timed out): retried up to `RetryPolicy.failures` times.
    case failed
    /// The executor stopped it (or the task threw `TaskPreempted`): retried up to `RetryPolicy.preemptions` times.
    case preempted
    /// The infrastructure failed (store, materialization): retried as a failure.
    case error
    /// The run was cancelled while it ran.
    case cancelled
    /// Never started: a task it depends on failed.
    case skipped
    public var description: String { rawValue }
}

/// Throw this from a task to report that it was preempted (e.g. a spot instance going away):
/// it is retried under the preemption limit, not the failure limit.
public struct TaskPreempted: Error, Sendable {
    public var reason: String
    public init(_ reason: String = "preempted") { self.reason = reason }
}
