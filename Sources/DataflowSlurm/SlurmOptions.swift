import Dataflow
import Foundation

extension SlurmExecutor {
    /// How values reach a job.
    public enum ValuePassing: String, Sendable, CaseIterable {
        /// Jobs attach to the run's store on this node: inputs and output zero-copy. Only for
        /// jobs that run on this node (a single-node cluster, or a partition of this host).
        case store
        /// Jobs read inputs from, and write their output to, files in the shared run directory
        /// (jobs on other nodes).
        case files
        /// `store` when every node of the partition is this host, else `files` (decided by
        /// `connect()` from `sinfo`).
        case auto
    }

    /// Where job states come from.
    public enum StatusSource: String, Sendable, CaseIterable {
        /// `sacct` (slurmdbd accounting), or `squeue -t all` when the cluster says accounting is off.
        case auto
        case sacct
        /// `squeue -t all`: finished jobs stay visible for the cluster's `MinJobAge` only.
        case squeue
    }

    /// The executor's settings (the `[executor.<name>]` table of `type = "slurm"`). A task may
    /// override `partition`, `account`, `qos`, `time` and `sbatch_args` through
    /// `TaskOptions.executorSettings`.
    ///
    /// - Note: A value type; thread-safe.
    public struct Options: Sendable {
        public var partition: String?
        public var account: String?
        public var qos: String?
        /// A SLURM time limit (`MM`, `HH:MM:SS`, `D-HH:MM`, ...) for every job. Without it, a task
        /// with a timeout gets the timeout rounded up to whole minutes plus one minute (the task's
        /// own timeout is enforced by its worker; SLURM's limit is the backstop).
        public var timeLimit: String?
        /// More `sbatch` arguments, after the executor's own (e.g. `--constraint=avx512`).
        public var sbatchArguments: [String]
        /// Seconds between status queries: the first query comes this soon after a submission,
        /// the interval doubles while nothing changes, up to `pollIntervalMaxSeconds`, and is
        /// back to the minimum as soon as a job finishes.
        public var pollIntervalMinSeconds: Double
        public var pollIntervalMaxSeconds: Double
        /// Every SLURM command is killed after this many seconds (a hung slurmctld is an error, not a hang).
        public var commandTimeoutSeconds: Double
        public var values: ValuePassing
        public var statusSource: StatusSource
        /// Ready tasks of one `map` (`name[0]`, `name[1]`, ...) with the same resources and
        /// settings go out as one job array (first attempts only; retries go out alone).
        public var arrays: Bool
        /// At most this many tasks of one array run at once (`--array=0-N%throttle`); nil: no limit.
        public var arrayThrottle: Int?
        /// At most this many jobs of this executor in flight (submitted and not yet ended).
        public var maxJobs: Int
        /// How long a finished job's attempt record may take to appear (a shared filesystem
        /// shows files late): after that, the job's state alone decides.
        public var recordGraceSeconds: Double
        /// `--signal=B:USR2@<seconds>`: the worker hears that the time limit is near.
        public var warningSignalSeconds: Int
        /// The worker program (default: the program that runs the workflow) and arguments
        /// before the worker flag.
        public var executable: String?
        public var arguments: [String]
        /// Environment variables for every job, beside the minimal set (`PATH`, `HOME`, `LANG`,
        /// `TMPDIR`, `LD_LIBRARY_PATH`, and `DATAFLOW_DRIVER_PID` / `DATAFLOW_DRIVER_HOST` /
        /// `DATAFLOW_RUN_ID`).
        public var environment: [String: String]
        /// How long a submission round waits for more ready tasks after the first, so that a
        /// `map`'s tasks, launched one by one, go out as one array.
        public var gatherSeconds: Double

        public init(
            partition: String? = nil, account: String? = nil, qos: String? = nil, timeLimit: String? = nil, sbatchArguments: [String] = [],
            pollIntervalMinSeconds: Double = 0.5, pollIntervalMaxSeconds: Double = 10, commandTimeoutSeconds: Double = 60,
            values: ValuePassing = .auto, statusSource: StatusSource = .auto, arrays: Bool = true, arrayThrottle: Int? = nil,
            maxJobs: Int = 1_000, recordGraceSeconds: Double = 30, warningSignalSeconds: Int = 30, executable: String? = nil,
            arguments: [String] = [], environment: [String: String] = [:], gatherSeconds: Double = 0.05
        ) {
            self.partition = partition
            self.account = account
            self.qos = qos
            self.timeLimit = timeLimit
            self.sbatchArguments = sbatchArguments
            self.pollIntervalMinSeconds = pollIntervalMinSeconds
            self.pollIntervalMaxSeconds = pollIntervalMaxSeconds
            self.commandTimeoutSeconds = commandTimeoutSeconds
            self.values = values
            self.statusSource = statusSource
            self.arrays = arrays
            self.arrayThrottle = arrayThrottle
            self.maxJobs = maxJobs
            self.recordGraceSeconds = recordGraceSeconds
            self.warningSignalSeconds = warningSignalSeconds
            self.executable = executable
            self.arguments = arguments
            self.environment = environment
            self.gatherSeconds = gatherSeconds
        }

        /// Checks the settings.
        /// - Throws: `.invalidOption` naming the setting.
        public func validate() throws(DataflowError) {
            func bad(_ name: String, _ why: String) -> DataflowError { DataflowError(.invalidOption, "slurm executor: \(name) \(why)") }
            guard pollIntervalMinSeconds > 0, pollIntervalMaxSeconds >= pollIntervalMinSeconds else {
                throw bad("poll_interval_min/poll_interval_max", "must be positive, the maximum at least the minimum (\(pollIntervalMinSeconds), \(pollIntervalMaxSeconds))")
            }
            guard commandTimeoutSeconds > 0 else { throw bad("command_timeout", "must be positive, not \(commandTimeoutSeconds)") }
            guard maxJobs >= 1 else { throw bad("max_jobs", "must be at least 1, not \(maxJobs)") }
            if let throttle = arrayThrottle, throttle < 1 { throw bad("array_throttle", "must be at least 1, not \(throttle)") }
            guard recordGraceSeconds >= 0, warningSignalSeconds >= 0, gatherSeconds >= 0 else {
                throw bad("record_grace/warning_signal", "must not be negative")
            }
            if let timeLimit, !Self.isTimeLimit(timeLimit) {
                throw bad("time", "\(timeLimit.debugDescription) is no SLURM time limit (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS)")
            }
        }

        /// Whether `text` is a SLURM time limit.
        static func isTimeLimit(_ text: String) -> Bool {
            let pattern = #"^([0-9]+|[0-9]+:[0-9]{1,2}|[0-9]+:[0-9]{1,2}:[0-9]{1,2}|[0-9]+-[0-9]{1,2}|[0-9]+-[0-9]{1,2}:[0-9]{1,2}|[0-9]+-[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}|UNLIMITED|unlimited|infinite)$"#
            return text.range(of: pattern, options: .regularExpression) != nil
        }
    }

    /// The `TaskOptions.executorSettings` keys a task may set for its jobs.
    public static let taskSettingKeys: Set<String> = ["partition", "account", "qos", "time", "sbatch_args"]
}
