import Foundation
import Synchronization

/// A child process started without `Foundation.Process`: no signal is blocked or ignored in it
/// (whatever thread starts it), it can have a session and process group of its own (so that a
/// signal reaches everything it started), and its exit is awaited without blocking a thread of
/// Swift's concurrency pool (a thread of its own reaps it). Shell tasks and executors that start
/// one process per attempt use it.
///
///     let child = try ChildProcess.spawn(executable: "/bin/bash", arguments: ["-c", "make"], outputFile: log)
///     switch await child.exit() { case .exited(0): ...; case .exited(let status): ...; case .signalled(let signal): ... }
///
/// - Note: Thread-safe. The process is reaped once, by its own thread; `signal` after that does
///   nothing (the pid is never signalled once it may have been reused).
public final class ChildProcess: Sendable {
    /// How a child ended.
    public enum Exit: Sendable, Equatable, CustomStringConvertible {
        /// It exited with this status.
        case exited(Int32)
        /// A signal ended it.
        case signalled(Int32)

        public var description: String {
            switch self {
            case .exited(let status): "exited with status \(status)"
            case .signalled(let signal): "killed by signal \(signal) (\(_signalName(signal)))"
            }
        }
    }

    public let pid: pid_t
    /// Whether it leads a process group of its own (then `signal` reaches its whole group).
    public let ownsProcessGroup: Bool
    // (NSLock, not Synchronization.Mutex: on Linux Mutex waits with futex calls ThreadSanitizer does not see.)
    private let state = LockedValue<(exit: Exit?, waiters: [CheckedContinuation<Exit, Never>])>((nil, []))

    /// Starts `executable` (an absolute path) with `arguments` (not including argv[0]).
    /// - Parameters:
    ///   - environment: its environment (default: this process's).
    ///   - workingDirectory: where it starts (default: this process's).
    ///   - outputFile: a file that its standard output and error are appended to (created 0600);
    ///     default: this process's. Standard input is /dev/null.
    ///   - errorFile: a file of its own for standard error (created 0600, appended to); default:
    ///     `outputFile`.
    ///   - newSession: give it a session and process group of its own (the default).
    /// - Throws: `.executor` naming the executable and the reason.
    public static func spawn(
        executable: String, arguments: [String] = [], environment: [String: String]? = nil, workingDirectory: String? = nil,
        outputFile: String? = nil, errorFile: String? = nil, newSession: Bool = true
    ) throws(DataflowError) -> ChildProcess {
        var actions: [_Sys.FileAction] = [.open(path: "/dev/null", target: 0, flags: O_RDONLY, mode: 0)]
        if let outputFile {
            actions.append(.open(path: outputFile, target: 1, flags: O_WRONLY | O_CREAT | O_APPEND, mode: 0o600))
            if errorFile == nil { actions.append(.duplicate(source: 1, target: 2)) }
        }
        if let errorFile {
            actions.append(.open(path: errorFile, target: 2, flags: O_WRONLY | O_CREAT | O_APPEND, mode: 0o600))
        }
        let variables = environment.map { $0.map { "\($0.key)=\($0.value)" } } ?? _Sys.environment()
        switch _Sys.spawn(
            executable: executable, arguments: [executable] + arguments, environment: variables, actions: actions,
            workingDirectory: workingDirectory, newSession: newSession)
        {
        case .success(let pid):
            let child = ChildProcess(pid: pid, ownsProcessGroup: newSession)
            let reaper = Thread {
                _Sys.waitUntilEnded(pid)
                child.finish()
            }
            reaper.name = "dataflow-child-\(pid)"
            reaper.start()
            return child
        case .failure(let errno):
            throw DataflowError(.executor, "cannot start '\(executable)': posix_spawn failed: \(errno)")
        }
    }

    private init(pid: pid_t, ownsProcessGroup: Bool) {
        self.pid = pid
        self.ownsProcessGroup = ownsProcessGroup
    }

    /// Waits (suspended, no thread blocked) until the process has ended, and says how.
    public func exit() async -> Exit {
        await withCheckedContinuation { (continuation: CheckedContinuation<Exit, Never>) in
            let ended = state.withLock { state -> Exit? in
                if let exit = state.exit { return exit }
                state.waiters.append(continuation)
                return nil
            }
            if let ended { continuation.resume(returning: ended) }
        }
    }

    /// How it ended, if it has.
    public var exitIfEnded: Exit? { state.withLock { $0.exit } }

    /// Sends `signal` to the process (and its group, when it owns one). Once the process was
    /// reaped, only its group is signalled, if it owns one: members it left behind still carry
    /// the group id, and Linux does not reuse a pid that is a live group's id.
    public func signal(_ signal: Int32) {
        // Under the lock: the reaper cannot reap it (and the pid be reused) meanwhile.
        state.withLock { state in
            guard state.exit == nil || ownsProcessGroup else { return }
            _Sys.kill(pid, signal, group: ownsProcessGroup)
        }
    }

    /// Reaps the ended process under the lock (so `signal` never reaches a reused pid) and
    /// wakes the waiters.
    private func finish() {
        let (exit, waiters) = state.withLock { state -> (Exit, [CheckedContinuation<Exit, Never>]) in
            let exit = _Sys.reap(pid)
            state.exit = exit
            defer { state.waiters.removeAll() }
            return (exit, state.waiters)
        }
        for waiter in waiters { waiter.resume(returning: exit) }
    }
}
