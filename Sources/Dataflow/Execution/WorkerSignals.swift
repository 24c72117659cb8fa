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
