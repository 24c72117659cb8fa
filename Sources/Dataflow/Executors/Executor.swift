import ObjectStore

/// Where a run's tasks run: the plug-in point between the scheduler and an engine (threads of
/// this process, warm worker processes, a batch system, a cluster, a user's own platform).
///
/// An executor only *runs attempts and reports how each ended*. The scheduler keeps the graph,
/// the ready queue, resources, retries and their counters (failures and preemptions apart), the
/// run log, and what happens to every value; it never asks which executor it talks to, only
/// what it can do (`capabilities`).
///
/// **Running an attempt.** `run(_:)` is called on one of the scheduler's lanes, at most
/// `min(RunOptions.concurrency, capabilities.maxConcurrentAttempts)` at once for this executor,
/// and returns when the attempt has ended. An engine that submits in batches and polls (SLURM,
/// Ray) queues the launch and suspends; one round of its own submits whatever was queued at once
/// and asks the engine once for the state of everything in flight, then resumes the attempts
/// that ended. No thread is blocked meanwhile (see `ExecutorCapabilities.maxConcurrentAttempts`:
/// a batch engine says hundreds).
///
/// **Where the attempt's work happens.**
/// - In this process: `attempt.runHere()` is the one attempt runner (inputs decoded from the
///   store, the task body called with its timeout, the output written into the store).
/// - In another process on this node: `attempt.prepare()` gives a `WorkerSpec` with the inputs
///   as store descriptors (held until the prepared attempt is dropped); start the worker program
///   (`attempt.workerProgram`, with `WorkerSpec.flag` and the spec's path) and turn its exit
///   into an ending with `attempt.ending(afterWorkerExit:)`, which reads the attempt record the
///   worker wrote last.
/// - On a node without this run's store: the same, with `capabilities.reachesStore` false:
///   `prepare()` hands the inputs over as files in the run directory, and the worker writes its
///   output to a file there.
///
/// **Classifying.** An ending is one of `AttemptOutcome`, with a cause (exit status, signal,
/// engine state, node, message). Succeeded: the attempt record says so (and the engine does not
/// contradict it). Failed: the task threw, timed out, exited non-zero or died of a signal.
/// Preempted: the engine stopped it (SIGTERM, a preemption state) or the task threw
/// `TaskPreempted`. Error: the infrastructure failed (submission, storage). Cancelled: the run
/// was cancelled (the calling task was cancelled: stop the attempt if you can).
///
/// **Storage guarantees.** An executor whose attempts reach the store must let the store
/// reclaim what a dead attempt held (`SharedObjectStore.reclaimDeadProcesses()`), and must keep
/// a prepared attempt alive until the attempt ended. One that does not reach it must share the
/// run directory's filesystem (`sharesRunDirectory`).
///
/// - Note: Implementations must be thread-safe: several runs and lanes call them at once.
public protocol Executor: AnyObject, Sendable {
    /// The kind, as the run log and configuration name it: `local`, `processes`, `slurm`,
    /// `ray`, or a custom one.
    var kind: String { get }
    /// What it can do; read once per run.
    var capabilities: ExecutorCapabilities { get }
    /// Runs one attempt to its end and reports how it ended. Never throws: every failure is an
    /// ending (`attempt.ending(_:message:cause:)`).
    func run(_ attempt: AttemptLaunch) async -> AttemptEnding
    /// Before a run is planned: reach the engine and learn what it offers (e.g. a cluster's
    /// largest node, whether its jobs can attach to this node's store). `capabilities` is read
    /// after it. Called once per run that uses this executor: keep repeated calls cheap.
    /// Throwing (the engine does not answer) fails the run before anything runs.
    func connect() async throws(DataflowError)
    /// A run that uses this executor starts, before its first attempt (e.g. start workers,
    /// check that the engine answers). Throwing fails the run before anything runs.
    func runStarted(_ run: ExecutorRun) async throws(DataflowError)
    /// A run that used this executor ended, after its last attempt (e.g. let go of the run's
    /// store, delete finished jobs).
    func runEnded(_ run: ExecutorRun) async
    /// What attempts of run `runID` may still be running on this engine when the driver exits
    /// without cancelling the run (a second Ctrl-C), and how to end them, in one line; nil when
    /// nothing of the run outlives the driver. `WorkflowCommandLine` prints it.
    func leftovers(runID: String) -> String?
}

extension Executor {
    public func connect() async throws(DataflowError) {}
    public func runStarted(_ run: ExecutorRun) async throws(DataflowError) {}
    public func runEnded(_ run: ExecutorRun) async {}
    public func leftovers(runID: String) -> String? { nil }
}

/// What an executor can do. The planner decides per edge from `reachesStore` whether a value
/// passes zero-copy or through a file; the validator checks tasks' resources against
/// `nodeResources`.
///
/// - Note: A value type; thread-safe.
public struct ExecutorCapabilities: Sendable, Equatable {
    /// Its attempts run on this node and attach to the run's store: inputs and outputs pass as
    /// store objects, zero-copy. False for a remote engine: values cross through files.
    public var reachesStore: Bool
    /// Its attempts see the run directory (the same or a shared filesystem).
    public var sharesRunDirectory: Bool
    /// The resources of its largest node, if known: a task that declares more fits nowhere and
    /// is refused before the run starts. Nil: the run's `RunOptions.capacity` applies.
    public var nodeResources: Resources?
    /// It can stop an attempt that runs (cancellation, timeout).
    public var canCancel: Bool
    /// The most attempts it runs at once (nil: as many as the run's concurrency allows).
    public var maxConcurrentAttempts: Int?
    /// Its engine places attempts on its own nodes by their resources (a batch system, a
    /// cluster): the scheduler does not charge them to the run's `RunOptions.capacity` (this
    /// machine), and the run's `concurrency` (this machine's lanes) does not cap them; at most
    /// `maxConcurrentAttempts` are in flight (default 1 000 when nil).
    public var schedulesResources: Bool
    /// Its `run(_:)` is exactly `attempt.runHere()`: the scheduler then calls the attempt
    /// runner on the lane itself, saving a call through the protocol per attempt (a trivial
    /// task costs a few microseconds in all).
    public var runsAttemptsHere: Bool

    public init(
        reachesStore: Bool, sharesRunDirectory: Bool = true, nodeResources: Resources? = nil, canCancel: Bool = true,
        maxConcurrentAttempts: Int? = nil, runsAttemptsHere: Bool = false, schedulesResources: Bool = false
    ) {
        self.schedulesResources = schedulesResources
        self.runsAttemptsHere = runsAttemptsHere
        self.reachesStore = reachesStore
        self.sharesRunDirectory = sharesRunDirectory
        self.nodeResources = nodeResources
        self.canCancel = canCancel
        self.maxConcurrentAttempts = maxConcurrentAttempts
    }
}

/// The run an executor is told about in `runStarted` / `runEnded`.
///
/// - Note: A value type; thread-safe.
public struct ExecutorRun: Sendable {
    public let runID: String
    public let directory: RunDirectory
    /// The run's store (on this node).
    public let store: SharedObjectStore
    /// The store was made for this run and is removed when it ends: let go of it.
    public let storeEndsWithRun: Bool
    /// The name this executor has in the run (`RunOptions.executors`).
    public let executorName: String
}

extension Executor where Self == LocalExecutor {
    /// Call-mode functions on threads of this process (the default).
    public static var local: LocalExecutor { LocalExecutor() }
}

extension Executor where Self == ProcessExecutor {
    /// A pool of warm worker processes attached to the run's store.
    public static func processes(_ pool: ProcessExecutor) -> ProcessExecutor { pool }
}
