// A custom executor written only against Dataflow's public API: one fresh process per attempt.
// It is the pattern a SLURM, Ray or Kubernetes executor follows, with the engine replaced by a
// plain child process: storage is prepared before launch, the worker program runs the attempt
// and writes its attempt record last, and the ending comes from that record plus how the
// process ended.
import Dataflow
import Foundation

/// Runs each attempt in a new process of the workflow program (`program --dataflow-worker
/// <spec.json>`), which must call `Workflow.runWorkerIfRequested` first thing in `main`.
///
/// With `reachesStore` (the default) the worker attaches to the run's store: inputs and output
/// pass zero-copy as store objects. Without it the worker behaves as on another node: its inputs
/// are files in the run directory, and its output comes back as one (the planner writes an
/// exchange file for exactly the edges into such tasks).
///
/// - Note: Thread-safe (immutable).
public final class FreshProcessExecutor: Executor {
    public struct Options: Sendable {
        /// The worker program (default: the program that runs the workflow).
        public var executable: String?
        /// Arguments before the worker flag.
        public var arguments: [String]
        /// Whether workers attach to the run's store (same node) or get files.
        public var reachesStore: Bool
        /// Seconds past the task's timeout before the worker is killed from outside (the worker
        /// enforces the timeout itself; this stops a task that ignores cancellation).
        public var killGraceSeconds: Double

        public init(executable: String? = nil, arguments: [String] = [], reachesStore: Bool = true, killGraceSeconds: Double = 2) {
            self.executable = executable
            self.arguments = arguments
            self.reachesStore = reachesStore
            self.killGraceSeconds = killGraceSeconds
        }
    }

    public let options: Options

    public init(_ options: Options = Options()) {
        self.options = options
    }

    public var kind: String { "fresh-process" }

    public var capabilities: ExecutorCapabilities {
        ExecutorCapabilities(reachesStore: options.reachesStore, sharesRunDirectory: true, canCancel: true)
    }

    public func run(_ attempt: AttemptLaunch) async -> AttemptEnding {
        // A shell task's command is a process of its own already.
        if attempt.isShell { return await attempt.runHere() }
        // 1. Storage first: inputs as store descriptors (held until `prepared` goes) or files.
        let prepared: PreparedAttempt
        let specPath: String
        do {
            prepared = try await attempt.prepare()
            specPath = try prepared.writeSpecFile()
        } catch {
            return attempt.ending(.error, message: error.message)
        }
        // 2. Launch: the worker writes its attempt record (`prepared.spec.resultPath`) last.
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(
                executable: options.executable ?? attempt.workerProgram, arguments: options.arguments + [WorkerSpec.flag, specPath],
                outputFile: attempt.logPath)
        } catch {
            return attempt.ending(.error, message: error.message)
        }
        // 3. Wait for it to end, killing it past its timeout, or when the run is cancelled.
        let killedAtTimeout = KillFlag()
        if let timeout = attempt.timeoutSeconds {
            let grace = options.killGraceSeconds
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout + grace) {
                guard child.exitIfEnded == nil else { return }
                killedAtTimeout.set()
                child.signal(SIGKILL)
            }
        }
        let exit = await withTaskCancellationHandler {
            await child.exit()
        } onCancel: {
            child.signal(SIGKILL)
        }
        if Task.isCancelled {
            return attempt.ending(.cancelled, message: "run cancelled (worker \(child.pid) killed)")
        }
        // 4. Classify: the attempt record decides; without one, how the process ended does.
        withExtendedLifetime(prepared) {}
        switch exit {
        case .exited(let status):
            return await attempt.ending(afterWorkerExit: prepared, status: status, signal: nil, timedOut: killedAtTimeout.isSet)
        case .signalled(let signal):
            return await attempt.ending(afterWorkerExit: prepared, status: nil, signal: signal, timedOut: killedAtTimeout.isSet)
        }
    }
}

/// A flag set once, from any thread.
final class KillFlag: @unchecked Sendable {  // `value` is guarded by `lock`
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
