/// Runs call-mode functions on threads of this process (the default executor): each attempt is
/// `attempt.runHere()`, on the scheduler's lane, with no hand-off. Its attempts reach the run's
/// store (zero-copy in and out).
///
/// A task that runs past its timeout is cancelled (cooperatively) and reported failed at once,
/// freeing its lane; a body that never checks for cancellation keeps running on its thread
/// until it returns, and its result is then dropped (use the process executor for tasks that
/// must be stopped by force).
///
/// - Note: Thread-safe (stateless).
public final class LocalExecutor: Executor {
    public init() {}
    public var kind: String { "local" }
    public var capabilities: ExecutorCapabilities {
        ExecutorCapabilities(reachesStore: true, sharesRunDirectory: true, canCancel: true, runsAttemptsHere: true)
    }
    public func run(_ attempt: AttemptLaunch) async -> AttemptEnding { await attempt.runHere() }
}
