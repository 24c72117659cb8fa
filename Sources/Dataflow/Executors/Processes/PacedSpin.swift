import Foundation

/// How each side of a worker channel waits for the other: it polls its word for up to
/// `spinNanoseconds`, then blocks on its stream, and it polls only while the other side has lately
/// answered within that time (a moving average, each sample counted as at most four spins, so
/// that one slow request is forgotten after a few quick ones).
///
/// The samples come from the other side's own clock readings on the channel (when the parent
/// posted; how long the worker worked), not from how long this side waited: a side that stopped
/// polling, and so notices late, still sees the other come back quickly and starts polling again.
///
/// It polls with the CPU's pause instruction, never `sched_yield`: a yield hands the core to any
/// busy thread beside it for a whole time slice (with two CPU hogs on this 2-core VM, hops took
/// 1.4 ms instead of 20 µs), while a thread that blocks is woken at once.
///
/// - Note: A value type; its owner guards it.
struct _PacedSpin {
    /// The longest poll: in a chain of trivial tasks the other side answers within this, and
    /// taking the answer without sleeping saves a wake-up (two, in the parent) per hop.
    static let spinNanoseconds: UInt64 = 50_000
    private var typical: UInt64 = 0

    /// The other side answers within the spin, as a rule.
    var worthSpinning: Bool { typical <= Self.spinNanoseconds }

    /// Counts one answer that took `nanoseconds` on the other side.
    mutating func note(_ nanoseconds: UInt64) {
        typical = (3 * typical + min(nanoseconds, 4 * Self.spinNanoseconds)) / 4
    }

    /// `check`'s first non-nil result, polled for up to `spinNanoseconds` if that is worth it;
    /// nil once the time is up (then the caller blocks).
    func poll<Result>(_ check: () -> Result?) -> Result? {
        guard worthSpinning else { return check() }
        let spinUntil = DispatchTime.now().uptimeNanoseconds + Self.spinNanoseconds
        repeat {
            for _ in 0..<64 {
                if let result = check() { return result }
                _Sys.spinPause()
            }
        } while DispatchTime.now().uptimeNanoseconds < spinUntil
        return nil
    }
}
