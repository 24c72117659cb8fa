import Dispatch
import Foundation
import Synchronization

/// SIGINT (Ctrl-C) and SIGTERM while a workflow program runs its workflow.
///
/// - The first one cancels the run: `onFirst` is called (the command line cancels the task that
///   runs the workflow; the scheduler then stops launching, each executor stops what it runs —
///   `scancel`, Ray's stop, a warm worker killed, a shell task's process group signalled — the
///   run log ends with `run-finished` (cancelled) and the store and exchange files go). The
///   program then exits with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
/// - A second one exits at once with that status, after writing `leftovers()` (what a run cut
///   short there leaves behind) to standard error.
///
/// While installed, both signals are ignored by the process and delivered to Dispatch sources
/// instead; `remove()` gives them their default actions back. Child processes the library starts
/// get default dispositions (`posix_spawn` with `POSIX_SPAWN_SETSIGDEF`).
///
/// - Note: Thread-safe: the handlers run on one serial Dispatch queue; the state is behind a
///   `Mutex`.
final class _RunInterruption: Sendable {
    /// The signals that interrupt a run.
    static let signals: [Int32] = [SIGINT, SIGTERM]

    private struct State {
        var received: Int32?
        var receivedAt: ContinuousClock.Instant?
        var onFirst: (@Sendable (Int32) -> Void)?
        var leftovers: (@Sendable () -> String)?
        var sources = _SignalSources(list: [])
    }

    private let state = Mutex(State())

    private init() {}

    /// Starts catching SIGINT and SIGTERM.
    /// - Parameters:
    ///   - onFirst: called once, on the handlers' queue, with the first signal.
    ///   - leftovers: what a run cut short by a second signal leaves, for the message.
    static func install(onFirst: @escaping @Sendable (Int32) -> Void, leftovers: @escaping @Sendable () -> String) -> _RunInterruption {
        let interruption = _RunInterruption()
        let queue = DispatchQueue(label: "dataflow-run-interruption")
        var sources = _SignalSources(list: [])
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            // Signals that arrive before the handler runs are coalesced: `data` counts them.
            // (The handler holds its source until `remove()` cancels it.)
            let held = _SignalSources(list: [source])
            source.setEventHandler { [weak interruption] in
                for _ in 0..<min(max(held.list[0].data, 1), 2) { interruption?.received(number) }
            }
            source.resume()
            sources.list.append(source)
        }
        interruption.state.withLock {
            $0.onFirst = onFirst
            $0.leftovers = leftovers
            $0.sources = sources
        }
        return interruption
    }

    /// The first signal received, if any.
    var received: Int32? { state.withLock { $0.received } }

    /// When the first signal came.
    var receivedAt: ContinuousClock.Instant? { state.withLock { $0.receivedAt } }

    /// The exit status for a run the first signal cancelled: 128 + its number.
    var exitStatus: Int32? { received.map { 128 + $0 } }

    /// Stops catching the signals: they have their default actions again.
    func remove() {
        let sources = state.withLock { state -> _SignalSources in
            defer { state.sources = _SignalSources(list: []) }
            return state.sources
        }
        for source in sources.list { source.cancel() }
        for number in Self.signals { signal(number, SIG_DFL) }
    }

    private func received(_ number: Int32) {
        let (first, onFirst, leftovers) = state.withLock { state -> (Int32?, (@Sendable (Int32) -> Void)?, (@Sendable () -> String)?) in
            let first = state.received
            if first == nil {
                state.received = number
                state.receivedAt = .now
            }
            return (first, state.onFirst, state.leftovers)
        }
        guard let first else {
            Self.write(
                "\n\(Self.name(of: number)): cancelling the run (stopping its tasks, removing its store); "
                    + "\(Self.name(of: number) == "SIGINT" ? "Ctrl-C" : "SIGINT or SIGTERM") again exits at once\n")
            onFirst?(number)
            return
        }
        Self.write("\n\(Self.name(of: number)) again: exiting at once, without waiting for the cancellation.\n\(leftovers?() ?? "")")
        fflush(nil)  // every output stream
        _exit(128 + first)  // at once: no atexit handlers, no waiting for the run's threads
    }

    /// `SIGINT`, `SIGTERM`, or the number.
    static func name(of number: Int32) -> String {
        switch number {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        default: "signal \(number)"
        }
    }

    private static func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}

/// Dispatch signal sources, kept to be cancelled.
struct _SignalSources: @unchecked Sendable {  // a Dispatch source's methods are thread-safe
    var list: [any DispatchSourceSignal]
}
