import Dataflow
import Foundation

/// How a finished job's attempt ended, from two sources: the attempt record its worker wrote
/// last (after its output; fsynced and renamed) and SLURM's final state. SLURM's state wins
/// where it knows more than the worker could (out of memory, time limit, preemption, node
/// failure, a cancellation); the record wins where it is the only one that knows (which value,
/// which error the task threw).
///
/// | SLURM state | with a record | without one (after the grace period) |
/// |---|---|---|
/// | (cancelled by this run) | cancelled | cancelled |
/// | COMPLETED | the record | failed: no attempt record |
/// | FAILED | the record, with the exit code | failed, with the exit code |
/// | OUT_OF_MEMORY | failed "out of memory" | failed "out of memory" |
/// | TIMEOUT, DEADLINE | a succeeded record, else failed "time limit" | failed "time limit" |
/// | PREEMPTED, NODE_FAIL, BOOT_FAIL | a succeeded record, else preempted | preempted |
/// | CANCELLED by someone else | before the job started: preempted; after: a succeeded record, else failed | same |
///
/// - Note: A value type; thread-safe.
enum SlurmOutcome: Sendable {
    /// The attempt record decides (its message gets `suffix`).
    case record(WorkerResult, suffix: String)
    /// This outcome and message, whatever the record says.
    case decided(AttemptOutcome, String)
    /// The record may still appear (a shared filesystem shows it late): ask again later.
    case waitForRecord

    /// Decides. `withinGrace`: the grace period for a late record has not passed.
    static func decide(
        status: SlurmJobStatus, record: WorkerResult?, cancelledByRun: Bool, started: Bool, withinGrace: Bool, jobLabel: String
    ) -> SlurmOutcome {
        let exit = exitText(status)
        if cancelledByRun {
            return .decided(.cancelled, "run cancelled (\(jobLabel) \(status.state))")
        }
        let succeeded = record.map { $0.outcome == .succeeded } ?? false
        switch status.state {
        case "OUT_OF_MEMORY":
            return .decided(.failed, "out of memory: SLURM ended \(jobLabel) (OUT_OF_MEMORY; it used more than its --mem)\(exit)")
        case "COMPLETED":
            if let record { return .record(record, suffix: "") }
            return withinGrace
                ? .waitForRecord
                : .decided(.failed, "\(jobLabel) COMPLETED but its worker wrote no attempt record (see the attempt log)")
        case "FAILED":
            if let record { return .record(record, suffix: " (\(jobLabel) FAILED\(exit))") }
            if withinGrace && status.signal == nil { return .waitForRecord }
            return .decided(.failed, "\(jobLabel) FAILED\(exit), reason \(status.reason ?? "none"); no attempt record (see the attempt log)")
        case "TIMEOUT", "DEADLINE":
            if succeeded, let record { return .record(record, suffix: "") }
            return .decided(.failed, "time limit: SLURM ended \(jobLabel) at its time limit (\(status.state))")
        case "PREEMPTED", "NODE_FAIL", "BOOT_FAIL":
            if succeeded, let record { return .record(record, suffix: "") }
            return .decided(.preempted, "SLURM ended \(jobLabel): \(status.state)\(status.node.map { " on node \($0)" } ?? "")")
        case "CANCELLED":
            let who = status.cancelledBy.map { "uid \($0)" } ?? "someone outside this run"
            if !started { return .decided(.preempted, "\(jobLabel) was cancelled by \(who) before it started (counted as a preemption)") }
            if succeeded, let record { return .record(record, suffix: "") }
            return .decided(.failed, "\(jobLabel) was cancelled by \(who) while it ran")
        default:
            if succeeded, let record { return .record(record, suffix: "") }
            return .decided(.failed, "\(jobLabel) ended in state \(status.state)\(exit)")
        }
    }

    /// ", exit code 3" / ", signal 9" / "".
    static func exitText(_ status: SlurmJobStatus) -> String {
        var parts: [String] = []
        if let code = status.exitStatus, code != 0 { parts.append("exit code \(code)") }
        if let signal = status.signal { parts.append("signal \(signal)") }
        return parts.isEmpty ? "" : ", " + parts.joined(separator: ", ")
    }
}
