import Foundation
import ObjectStore

/// A pool of warm worker processes: the same executable, started again in worker mode, attached
/// to the run's store. Tasks go to idle workers (most recently used first); their inputs are
/// passed as object descriptors and their outputs are written in place into the store, so no
/// payload crosses between the processes: only a short binary message each way, through a slot
/// in memory shared with the worker (`_WorkerChannel`), with no system call while both sides
/// are polling for it.
///
/// Keep one executor for many runs: its workers stay warm (started, store attached and mapped)
/// between them. A worker that dies (a crash, SIGKILL, the kernel's OOM killer) is replaced on
/// the next task; the task it ran is retried as a failure, or as a preemption when it died of
/// SIGTERM (the signal batch systems send before preempting); the store reclaims what it was
/// creating and releases what it held. A worker past its task's timeout is killed.
///
///     let pool = try ProcessExecutor(.init(workerCount: 4))
///     let run = try await workflow.run(RunOptions(executor: .processes(pool)))
///
/// The worker executable must build the same workflow and call
/// `Workflow.runWorkerIfRequested(_:)` (or the instance method) early in `main`; by default it is
/// this very program (`/proc/self/exe`), started with `options.arguments` and the worker flag.
///
/// - Note: Thread-safe. Runs may share an executor; it starts more workers if they need more at
///   once than `workerCount`.
public final class ProcessExecutor: @unchecked Sendable {  // `idle`, `started`, `closed` are guarded by `lock`
    public struct Options: Sendable {
        /// Workers kept warm (and lanes of a run that uses this executor).
        public var workerCount: Int
        /// The worker program. Default: this program.
        public var executable: String?
        /// Arguments given to each worker before the worker flag (e.g. what selects the
        /// workflow it must build).
        public var arguments: [String]
        /// Workers fault in the store's whole mapping when they attach (on their first task of a
        /// run), instead of page by page as they touch it. Off by default: the whole capacity
        /// costs more than the pages a run touches (`dataflow demo --executor processes` at
        /// 256 MiB: 1.00–1.06 s with it, 0.67–0.70 s without; the first run of a 3-stage chain
        /// of 512 MiB values: 1.06 s against 0.48 s). To have a store mapped before a run, see
        /// `attachWorkers(to:spillRoot:prefault:)`.
        public var prefaultStore: Bool

        public init(
            workerCount: Int = ProcessInfo.processInfo.activeProcessorCount, executable: String? = nil,
            arguments: [String] = [], prefaultStore: Bool = false
        ) {
            self.workerCount = workerCount
            self.executable = executable
            self.arguments = arguments
            self.prefaultStore = prefaultStore
        }
    }

    /// The command-line flag that starts a pool worker.
    public static let workerFlag = "--dataflow-worker-pool"

    /// Set (to 1) in the environment of every pool worker. A process that has it and creates a
    /// `ProcessExecutor` is a worker program that ran its own `main` instead of serving (it never
    /// called `Workflow.runWorkerIfRequested`): that is refused, rather than starting workers of
    /// workers without end.
    public static let workerEnvironmentVariable = "DATAFLOW_POOL_WORKER"

    public let options: Options
    /// The worker program's path.
    public let executablePath: String

    private let lock = _AdaptiveLock()
    /// Live workers waiting for a task, least recently used first (`acquire` takes the last).
    private var idle: [_WorkerProcess] = []
    /// Workers lent to attempts now, with the stores they must let go of when given back (runs
    /// that ended while they were busy).
    private var lent: [ObjectIdentifier: (worker: _WorkerProcess, detach: Set<String>)] = [:]
    private var closed = false
    /// The run's part of each run's requests, encoded once.
    let runParts = _RunPartCache()

    /// - Throws: `.invalidOption` for a worker count below 1 or an executable that is not there;
    ///   `.executor` in a process started as a pool worker (see `workerEnvironmentVariable`).
    public init(_ options: Options = Options()) throws(DataflowError) {
        if ProcessInfo.processInfo.environment[Self.workerEnvironmentVariable] != nil {
            throw DataflowError(
                .executor,
                "this process was started as a pool worker (\(Self.workerEnvironmentVariable) is set) but runs its own main instead of "
                    + "serving: call `Workflow.runWorkerIfRequested(...)` at the start of main, before anything else")
        }
        guard options.workerCount >= 1 else {
            throw DataflowError(.invalidOption, "a process executor needs at least 1 worker, not \(options.workerCount)")
        }
        let path = options.executable ?? ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw DataflowError(.invalidOption, "worker executable '\(path)' does not exist or is not executable")
        }
        self.options = options
        self.executablePath = path
        // (A worker that died cannot kill us with SIGPIPE when we write its next request: requests
        // go over a socket with MSG_NOSIGNAL. The process's SIGPIPE disposition is left alone.)
    }

    deinit { shutdown() }

    /// Starts the workers that are not running yet, so that the first tasks do not wait for them.
    /// - Throws: `.executor` if a worker cannot be started.
    public func start() throws(DataflowError) {
        let missing = lock.withLock { max(0, options.workerCount - idle.count) }
        var started: [_WorkerProcess] = []
        for _ in 0..<missing { started.append(try spawn()) }
        lock.withLock { idle.append(contentsOf: started) }
    }

    /// Starts the workers (see `start`) and has each attach `store` now, its mapping prefaulted
    /// when `prefault` is set, instead of on its first task of a run on it: for a program that
    /// runs several workflows on one store of its own (`RunOptions.store`) and does not want
    /// its first run to pay for the workers' page tables (about 0.3 s for a 3-stage chain of
    /// 512 MiB values here; 1 s with the whole mapping prefaulted). `spillRoot` is the run's
    /// `RunDirectory.spillRoot(workdir:)`. Busy workers are left alone.
    /// - Throws: `.executor` if a worker cannot be started or cannot attach the store.
    public func attachWorkers(to store: SharedObjectStore, spillRoot: String, prefault: Bool = true) async throws(DataflowError) {
        try start()
        let workers = lock.withLock { () -> [_WorkerProcess] in
            defer { idle.removeAll() }
            return idle
        }
        let request = _PoolAttachRequest(storeName: store.name, spillRoot: spillRoot, prefault: prefault).wireMessage()
        let failures = await withTaskGroup(of: String?.self) { group in
            for worker in workers {
                group.addTask {
                    switch await worker.run(request, timeout: 120) {
                    case .result(let result):
                        return result.outcome == .succeeded ? nil : "worker \(worker.pid): \(result.message ?? "\(result.outcome)")"
                    case .died(let death):
                        return "worker \(worker.pid) died (\(death))"
                    }
                }
            }
            var failures: [String] = []
            for await failure in group { if let failure { failures.append(failure) } }
            return failures
        }
        let keep = lock.withLock { () -> Bool in
            guard !closed else { return false }
            idle.insert(contentsOf: workers.filter(\.isAlive), at: 0)
            return true
        }
        if !keep { for worker in workers { worker.closeRequests() } }
        if !failures.isEmpty {
            throw DataflowError(.executor, "cannot attach the workers to store '\(store.name)': \(failures.joined(separator: "; "))")
        }
    }

    /// Makes `count` round trips to one warm worker with an empty request that it answers at
    /// once, and returns the seconds per round trip: the floor under a hop of a chain on this
    /// executor (the channel between the processes alone: no task, store, scheduler or run log).
    /// For benchmarks (`dataflow bench`'s `baseline/worker-pingpong`) and health checks.
    /// - Throws: `.executor` if no worker can be started or the worker dies meanwhile.
    public func measureRoundTrips(_ count: Int) async throws(DataflowError) -> Double {
        let worker = try acquire()
        defer { release(worker) }
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<max(count, 1) {
            if case .died(let death) = await worker.run(_PoolPingRequest.wireMessage, timeout: nil) {
                throw DataflowError(.executor, "worker \(worker.pid) died during a round trip: \(death.status)")
            }
        }
        let elapsed = clock.now - start
        return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) / Double(max(count, 1))
    }

    /// Process ids of the idle live workers (for inspection and tests).
    public var idleWorkerPIDs: [Int32] {
        lock.withLock { idle.filter(\.isAlive).map(\.pid) }
    }

    /// Stops every idle worker (they exit when their request pipe closes). Workers running a
    /// task stop when they are given back.
    public func shutdown() {
        let workers = lock.withLock { () -> [_WorkerProcess] in
            closed = true
            defer { idle.removeAll() }
            return idle
        }
        for worker in workers { worker.closeRequests() }
    }

    // MARK: Lending workers to attempts

    /// An idle live worker, most recently used first, or a new one. The one that just answered
    /// is still polling its channel for the next request (and its caches are warm), so a chain
    /// of tasks stays on it without waking another process.
    func acquire() throws(DataflowError) -> _WorkerProcess {
        let reused = lock.withLock { () -> _WorkerProcess? in
            while let worker = idle.popLast() {
                if worker.isAlive {
                    lent[ObjectIdentifier(worker)] = (worker, [])
                    return worker
                }
            }
            return nil
        }
        if let reused { return reused }
        let spawned = try spawn()
        lock.withLock { lent[ObjectIdentifier(spawned)] = (spawned, []) }
        return spawned
    }

    /// Gives a worker back after a task; a dead one is dropped (the next `acquire` replaces it).
    /// One that must let go of stores of runs that ended meanwhile does so first.
    func release(_ worker: _WorkerProcess) {
        let (keep, detach) = lock.withLock { () -> (Bool, Set<String>) in
            let detach = lent.removeValue(forKey: ObjectIdentifier(worker))?.detach ?? []
            guard worker.isAlive && !closed else { return (false, []) }
            if detach.isEmpty { idle.append(worker) }
            return (true, detach)
        }
        if !keep {
            worker.closeRequests()
        } else if !detach.isEmpty {
            Task {
                for name in detach { _ = await worker.run(_PoolDetachRequest(storeName: name).wireMessage(), timeout: 10) }
                self.release(worker)
            }
        }
    }

    /// Makes every worker let go of store `name` (a run on it ended): idle workers now, before
    /// this returns; busy ones when they are given back. A worker that kept the mapping would
    /// keep the segment's memory after the run removes it.
    func detachWorkers(fromStore name: String) async {
        let workers = lock.withLock { () -> [_WorkerProcess] in
            for key in lent.keys { lent[key]?.detach.insert(name) }
            // Taken out of the idle list meanwhile, so that no attempt writes to them at the same time.
            defer { idle.removeAll() }
            return idle
        }
        guard !workers.isEmpty else { return }
        let request = _PoolDetachRequest(storeName: name).wireMessage()
        await withTaskGroup(of: Void.self) { group in
            for worker in workers { group.addTask { _ = await worker.run(request, timeout: 10) } }
        }
        let keep = lock.withLock { () -> Bool in
            guard !closed else { return false }
            // Back at the front, in their order: they are the least recently used.
            idle.insert(contentsOf: workers.filter(\.isAlive), at: 0)
            return true
        }
        if !keep { for worker in workers { worker.closeRequests() } }
    }

    private func spawn() throws(DataflowError) -> _WorkerProcess {
        try _WorkerProcess.spawn(executable: executablePath, arguments: options.arguments + [Self.workerFlag])
    }
}
