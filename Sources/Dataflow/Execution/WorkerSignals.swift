import Dispatch
import Foundation
import Synchronization

/// How a one-attempt worker (`--dataflow-worker`) answers the signals engines send before they
/// kill a job, so that its attempt record says what happened instead of nothing:
///
/// - SIGTERM (SLURM at preemption, at the time limit and on `scancel`, each followed by SIGKILL
///   after `KillWait`; Ray's stop): writes a `preempted` record naming the signal, unless the
///   task's own record was written already, and exits with status 143 at once. The engine's own
///   final state then decides the outcome (a time limit is a failure, a cancellation by the run
///   is a cancellation); the record only keeps the attempt from looking like a silent crash.
/// - SIGUSR2 (SLURM's `--signal=B:USR2@<seconds>` warning before the time limit): noted in the
///   attempt log; the task goes on (it may still finish in time).
///
/// Only the first attempt record of the process is written (`claimRecord`).
///
/// - Note: Thread-safe: the claim is one atomic exchange; handlers run on a Dispatch queue.
enum _WorkerSignals {
    private static let installed = Atomic<Bool>(false)
    private static let recordClaimed = Atomic<Bool>(false)
    /// Kept alive for the process's lifetime.
    private nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []

    /// Whether the caller may write an attempt record: always, unless the handlers are
    /// installed (a one-attempt worker): then once.
    static func claimRecord() -> Bool {
        guard installed.load(ordering: .acquiring) else { return true }
        return !recordClaimed.exchange(true, ordering: .acquiringAndReleasing)
    }

    /// Installs the handlers (once, before the task starts).
    static func install(recordPath: String, logPath: String) {
        let queue = DispatchQueue(label: "dataflow-worker-signals")
        signal(SIGTERM, SIG_IGN)
        signal(SIGUSR2, SIG_IGN)
        let term = DispatchSource.makeSignalSource(signal: SIGTERM, queue: queue)
        term.setEventHandler {
            appendToLog(logPath, "dataflow worker: SIGTERM (the engine stops this attempt); writing the attempt record and exiting\n")
            if claimRecord() {
                let record = WorkerResult(
                    outcome: .preempted, output: nil,
                    message: "the worker was stopped by SIGTERM before the task ended (the engine stopped the job)", bytesIn: 0)
                _writeAttemptRecordFile(record, to: recordPath)
            }
            _Sys.exitNow(128 + SIGTERM)
        }
        let warning = DispatchSource.makeSignalSource(signal: SIGUSR2, queue: queue)
        warning.setEventHandler {
            appendToLog(logPath, "dataflow worker: SIGUSR2 (the engine's warning: the job's time limit is near)\n")
        }
        term.resume()
        warning.resume()
        sources = [term, warning]
        installed.store(true, ordering: .releasing)
        watchDriver(recordPath: recordPath, logPath: logPath)
    }

    /// A job of a batch engine outlives its driver unless it notices: when the environment names
    /// the driver (`DATAFLOW_DRIVER_PID` on `DATAFLOW_DRIVER_HOST`, set by the SLURM and Ray
    /// executors) and it runs on this host, a thread of its own looks every half second whether
    /// the driver still lives; once it is gone (killed, crashed), the worker writes an `error`
    /// record and exits, so that the engine frees the job's resources instead of running a task
    /// whose result nobody will read.
    private static func watchDriver(recordPath: String, logPath: String) {
        let environment = ProcessInfo.processInfo.environment
        guard let text = environment["DATAFLOW_DRIVER_PID"], let driver = pid_t(text), driver > 1,
            environment["DATAFLOW_DRIVER_HOST"] == ProcessInfo.processInfo.hostName
        else { return }
        let thread = Thread {
            while _Sys.processIsAlive(driver) { Thread.sleep(forTimeInterval: 0.5) }  // a thread of its own: no pool is blocked
            appendToLog(logPath, "dataflow worker: the driver (pid \(driver)) is gone; exiting\n")
            if claimRecord() {
                let record = WorkerResult(outcome: .error, output: nil, message: "the run's driver (pid \(driver)) ended before this attempt did", bytesIn: 0)
                _writeAttemptRecordFile(record, to: recordPath)
            }
            _Sys.exitNow(70)
        }
        thread.name = "dataflow-driver-watch"
        thread.start()
    }

    /// A pool worker of a `ProcessExecutor` (`--dataflow-worker-pool`) shares its driver's
    /// process group, so a terminal's Ctrl-C reaches it too: it ignores SIGINT, and the driver
    /// decides (a run it cancels kills the workers' current tasks). A thread of its own looks
    /// every half second whether the driver (its parent) still lives; once it is gone (killed,
    /// crashed, or interrupted without cancelling the run), the worker exits at once instead of
    /// running its task to the end for nobody. What it held in the store is reclaimed as a dead
    /// process's.
    static func installForPoolWorker() {
        signal(SIGINT, SIG_IGN)
        let parent = _Sys.parentProcessID()
        let thread = Thread {
            while _Sys.parentProcessID() == parent { Thread.sleep(forTimeInterval: 0.5) }  // a thread of its own: no pool is blocked
            _Sys.exitNow(70)
        }
        thread.name = "dataflow-parent-watch"
        thread.start()
    }

    private static func appendToLog(_ path: String, _ line: String) {
        guard let handle = FileHandle(forWritingAtPath: path) else {
            FileHandle.standardError.write(Data(line.utf8))
            return
        }
        handle.seekToEndOfFile()
        handle.write(Data(line.utf8))
        try? handle.close()
    }
}
