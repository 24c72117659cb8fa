import Foundation

/// One job (or array task) as a status query reports it.
///
/// - Note: A value type; thread-safe.
struct SlurmJobStatus: Sendable, Equatable {
    init(key: String, state: String, cancelledBy: String? = nil, exitStatus: Int32? = nil, signal: Int32? = nil, node: String? = nil, reason: String? = nil) {
        self.key = key
        self.state = state
        self.cancelledBy = cancelledBy
        self.exitStatus = exitStatus
        self.signal = signal
        self.node = node
        self.reason = reason
    }

    /// How the run finds it: `123` for a job, `123_4` for task 4 of array 123.
    var key: String
    /// SLURM's state word: `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, ... (for
    /// `CANCELLED by 0` the first word; `cancelledBy` keeps the uid).
    var state: String
    /// `CANCELLED by <uid>`: who cancelled it (sacct only).
    var cancelledBy: String?
    /// The exit status and the signal (`ExitCode` is `status:signal`), if known.
    var exitStatus: Int32?
    var signal: Int32?
    /// Where it ran (empty while pending).
    var node: String?
    /// SLURM's reason (e.g. `NonZeroExitCode`, `TimeLimit`, `Resources`).
    var reason: String?

    /// The job has ended (SLURM will not run it again under this id).
    var isFinal: Bool { Self.finalStates.contains(state) }

    /// States after which a job does not run again (SLURM's job state codes; `REQUEUED` and
    /// `PREEMPTED` under `PreemptMode=REQUEUE` come back as `PENDING`).
    static let finalStates: Set<String> = [
        "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED",
        "SPECIAL_EXIT", "REVOKED",
    ]

    /// Pending reasons that mean the job can never start as submitted (instead of waiting
    /// forever on a cluster without `EnforcePartLimits`).
    static let impossibleReasons: Set<String> = [
        "PartitionConfig", "BadConstraints", "PartitionNodeLimit", "PartitionTimeLimit", "InvalidAccount", "InvalidQOS",
        "QOSMaxCpuPerJobLimit", "QOSMaxMemoryPerJob", "ReqNodeNotAvail, UnavailableNodes", "DependencyNeverSatisfied",
    ]

    /// Parses `sacct -X --parsable2 --noheader --format=JobID,State,ExitCode,NodeList,Reason`
    /// lines. A pending array's remainder (`123_[5-49%10]`) is no job of its own: skipped (its
    /// tasks are pending until listed).
    static func parseSacct(_ text: String) -> [SlurmJobStatus] {
        text.split(whereSeparator: \.isNewline).compactMap { line -> SlurmJobStatus? in
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 5, !fields[0].contains("[") else { return nil }
            var words = fields[1].split(separator: " ").map(String.init)
            let state = words.isEmpty ? "UNKNOWN" : words.removeFirst()
            let by = words.count >= 2 && words[0] == "by" ? words[1] : nil
            let (status, signal) = parseExitCode(fields[2])
            return SlurmJobStatus(
                key: fields[0], state: state.trimmingCharacters(in: CharacterSet(charactersIn: "+")), cancelledBy: by,
                exitStatus: status, signal: signal, node: nonEmpty(fields[3]), reason: nonEmpty(fields[4]))
        }
    }

    /// Parses `squeue -h -t all -O 'JobArrayID:|,State:|,Reason:|,exit_code:|,NodeList:|'` lines
    /// (`exit_code` is the raw wait status: 256 is exit 1, 15 is SIGTERM).
    static func parseSqueue(_ text: String) -> [SlurmJobStatus] {
        text.split(whereSeparator: \.isNewline).compactMap { line -> SlurmJobStatus? in
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count >= 5, !fields[0].contains("[") else { return nil }
            var status: Int32?
            var signal: Int32?
            if let raw = Int32(fields[3]) {
                if raw & 0x7f != 0 { signal = raw & 0x7f } else { status = (raw >> 8) & 0xff }
            }
            return SlurmJobStatus(
                key: fields[0], state: fields[1], cancelledBy: nil, exitStatus: status, signal: signal,
                node: nonEmpty(fields[4]), reason: nonEmpty(fields[2]))
        }
    }

    /// `ExitCode` "status:signal" → both (nil when absent or zero signal).
    static func parseExitCode(_ text: String) -> (Int32?, Int32?) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let status = Int32(parts[0]), let signal = Int32(parts[1]) else { return (nil, nil) }
        return (status, signal == 0 ? nil : signal)
    }

    private static func nonEmpty(_ text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty || trimmed == "None" || trimmed == "None assigned" || trimmed == "(null)" ? nil : trimmed
    }
}
