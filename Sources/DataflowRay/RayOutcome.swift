import Dataflow
import Foundation

/// How a finished Ray job's attempt ended: Ray's status and `error_type` together with the
/// attempt record the worker wrote last.
///
/// | Ray says | outcome |
/// |---|---|
/// | (stopped by this run) | cancelled |
/// | SUCCEEDED | the record (none after the grace period: failed) |
/// | FAILED, JOB_ENTRYPOINT_COMMAND_ERROR | the record, with the exit code; without one: failed with the exit code |
/// | FAILED, JOB_SUPERVISOR_ACTOR_DIED / _UNKNOWN_FAILURE (its node died) | preempted |
/// | FAILED, RUNTIME_ENV_SETUP_FAILURE, JOB_SUPERVISOR_ACTOR_START_FAILURE / _START_TIMEOUT / _UNSCHEDULABLE, JOB_ENTRYPOINT_COMMAND_START_ERROR | error, quoting Ray's message |
/// | STOPPED by someone else | preempted |
///
/// - Note: A value type; thread-safe.
enum RayOutcome: Sendable {
    case record(WorkerResult, suffix: String)
    case decided(AttemptOutcome, String)
    case waitForRecord

    static let infrastructureLost: Set<String> = ["JOB_SUPERVISOR_ACTOR_DIED", "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE"]
    static let setupFailures: Set<String> = [
        "RUNTIME_ENV_SETUP_FAILURE", "JOB_SUPERVISOR_ACTOR_START_FAILURE", "JOB_SUPERVISOR_ACTOR_START_TIMEOUT",
        "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE", "JOB_ENTRYPOINT_COMMAND_START_ERROR",
    ]

    static func decide(
        status: String, errorType: String?, exitCode: Int?, message: String?, record: WorkerResult?, stoppedByRun: Bool, withinGrace: Bool,
        jobLabel: String
    ) -> RayOutcome {
        let rayMessage = String((message ?? "").prefix(400)).trimmingCharacters(in: .whitespacesAndNewlines)
        if stoppedByRun { return .decided(.cancelled, "run cancelled (\(jobLabel) \(status))") }
        let succeeded = record?.outcome == .succeeded
        switch status {
        case "SUCCEEDED":
            if let record { return .record(record, suffix: "") }
            return withinGrace ? .waitForRecord : .decided(.failed, "\(jobLabel) SUCCEEDED but its worker wrote no attempt record (see the attempt log)")
        case "STOPPED":
            if succeeded, let record { return .record(record, suffix: "") }
            return .decided(.preempted, "\(jobLabel) was stopped by someone outside this run")
        default:  // FAILED
            let exit = exitCode.map { $0 < 0 ? ", killed by signal \(-$0)" : ", exit code \($0)" } ?? ""
            if let type = errorType, infrastructureLost.contains(type) {
                if succeeded, let record { return .record(record, suffix: "") }
                return .decided(.preempted, "\(jobLabel) lost its supervisor (\(type): its node died?): \(rayMessage)")
            }
            if let type = errorType, setupFailures.contains(type) {
                return .decided(.error, "ray could not start \(jobLabel) (\(type)): \(rayMessage)")
            }
            if let record { return .record(record, suffix: " (\(jobLabel) FAILED\(exit))") }
            if withinGrace && (exitCode ?? 0) >= 0 { return .waitForRecord }
            return .decided(.failed, "\(jobLabel) FAILED\(exit) (\(errorType ?? "no error type")); no attempt record (see the attempt log)")
        }
    }
}
