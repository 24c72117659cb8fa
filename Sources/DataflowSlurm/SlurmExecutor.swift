import Dataflow
import Foundation
import Synchronization

/// Runs each attempt as a SLURM batch job: `sbatch` starts the workflow program in worker mode
/// (`<program> --dataflow-worker <spec.json>`) on a node of the cluster, and the job's state
/// (`sacct`, or `squeue` without accounting) together with the attempt record the worker writes
/// last decide how it ended (`SlurmOutcome`).
///
///     let slurm = try SlurmExecutor(.init(partition: "batch", timeLimit: "01:00:00"))
///     let run = try await workflow.run(RunOptions(executor: slurm))
///
/// - Submission: one job name per run (`df-<run id>-<hash>`), task and attempt in `--comment`,
///   the run directory as working directory, output into the attempt's log, a minimal
///   environment, `--signal=B:USR2@30` and `--no-requeue`. Resources: see
///   `SlurmSubmission.placement`. The ready first attempts of one `map` with the same
///   resources and settings go out as one job array (chunked below `MaxArraySize`); retries go
///   out alone.
/// - Status: one query per run per round, the interval doubling from `pollIntervalMinSeconds`
///   to `pollIntervalMaxSeconds` while nothing finishes.
/// - Values: with `values = .store` (or `.auto` on a cluster whose nodes are this host) jobs
///   attach to the run's store and pass values zero-copy; with `.files` they read inputs from,
///   and write their output to, files in the shared run directory.
/// - Shell tasks run their command from the driver, as on every executor.
/// - Cancellation: a cancelled attempt's job is `scancel`led and awaited until SLURM says it
///   ended; a cancelled run returns only once none of its jobs is left in the queue.
///
/// - Note: Thread-safe: the cluster's description is behind a lock, jobs are the run loop's.
public final class SlurmExecutor: Executor {
    public let options: Options
    private let cluster = _SlurmClusterState()
    private let runLoop: _SlurmRunLoop
    /// This host's short name (nodes with it can reach the run's store).
    private let hostName: String

    /// - Throws: `.invalidOption` naming a bad setting.
    public init(_ options: Options = Options()) throws(DataflowError) {
        try options.validate()
        self.options = options
        self.hostName = String(ProcessInfo.processInfo.hostName.split(separator: ".").first ?? "")
        self.runLoop = _SlurmRunLoop(options: options, cluster: cluster)
    }

    public var kind: String { "slurm" }

    public var capabilities: ExecutorCapabilities {
        let known = cluster.current
        let reachesStore: Bool
        switch options.values {
        case .store: reachesStore = true
        case .files: reachesStore = false
        case .auto: reachesStore = known?.allNodesAreHost(hostName) ?? true
        }
        return ExecutorCapabilities(
            reachesStore: reachesStore, sharesRunDirectory: true, nodeResources: known?.largestNode, canCancel: true,
            maxConcurrentAttempts: options.maxJobs, schedulesResources: true)
    }

    /// Asks the cluster what it has (`sinfo`, `sacct`, `scontrol show config`); every run does.
    /// - Throws: `.executor` when SLURM does not answer.
    public func connect() async throws(DataflowError) {
        let probed = try await SlurmCluster.probe(partition: options.partition, timeoutSeconds: options.commandTimeoutSeconds)
        cluster.current = probed
    }

    /// Whether `sacct` answered when the executor last connected (nil before): without
    /// accounting, job states come from `squeue -t all` (finished jobs stay there only for the
    /// cluster's `MinJobAge`).
    public var accountingAnswers: Bool? { cluster.current?.accountingWorks }

    public func run(_ attempt: AttemptLaunch) async -> AttemptEnding {
        if attempt.isShell { return await attempt.runHere() }
        let settings = attempt.executorSettings
        let prepared: PreparedAttempt
        let specPath: String
        do {
            prepared = try await attempt.prepare()
            specPath = try prepared.writeSpecFile()
            // A record left by an earlier run with the same id must not answer for this attempt.
            unlink(prepared.spec.resultPath)
        } catch {
            return attempt.ending(.error, message: error.message)
        }
        let placement = SlurmSubmission.placement(
            resources: attempt.resources, timeoutSeconds: attempt.timeoutSeconds, settings: settings, options: options)
        // `name[i]` of a map, first attempt: may share an array with its siblings.
        var arrayGroup: String?
        if attempt.attempt == 1, attempt.taskName.hasSuffix("]"), let open = attempt.taskName.lastIndex(of: "[") {
            arrayGroup = String(attempt.taskName[..<open]) + "\u{0}" + placement.joined(separator: "\u{0}")
        }
        let request = _SlurmRunLoop.Request(
            id: runLoop.makeRequestID(), launch: attempt, prepared: prepared, specPath: specPath, placement: placement,
            arrayGroup: arrayGroup, jobName: SlurmSubmission.jobName(runID: attempt.runID))
        return await runLoop.submit(request)
    }

    public func runEnded(_ run: ExecutorRun) async {
        await runLoop.runEnded(jobName: SlurmSubmission.jobName(runID: run.runID))
    }

    public func leftovers(runID: String) -> String? {
        let name = Self.jobName(runID: runID)
        return "SLURM jobs named \(name) that were queued or running (each running one ends itself within a second once it finds the driver gone; end them all now: scancel --name=\(name))"
    }

    /// The job name every job of run `runID` has (`squeue --name`, `sacct --name`).
    public static func jobName(runID: String) -> String { SlurmSubmission.jobName(runID: runID) }
}

/// What `connect()` last learned of the cluster, shared by the executor and its run loop.
///
/// - Note: Thread-safe (a lock).
final class _SlurmClusterState: Sendable {
    private let value = LockedValue<SlurmCluster?>(nil)
    var current: SlurmCluster? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
