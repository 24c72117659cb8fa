import Materialize

/// Resources a task declares; the scheduler never runs tasks whose sum exceeds the executor's.
///
/// - Note: A value type; thread-safe.
public struct Resources: Sendable, Hashable, Codable, CustomStringConvertible {
    /// CPU cores (fractions allowed).
    public var cpu: Double
    /// Bytes of memory.
    public var memoryBytes: Int
    /// GPUs (fractions allowed).
    public var gpu: Double
    /// Named amounts, e.g. ["license": 1].
    public var custom: [String: Double]

    public init(cpu: Double = 1, memoryBytes: Int = 0, gpu: Double = 0, custom: [String: Double] = [:]) {
        self.cpu = cpu
        self.memoryBytes = memoryBytes
        self.gpu = gpu
        self.custom = custom
    }

    /// The first amount below zero (or not a number), as "name amount", or nil.
    var negativeAmount: String? {
        if !(cpu >= 0) { return "cpu \(cpu)" }
        if memoryBytes < 0 { return "memory \(memoryBytes) bytes" }
        if !(gpu >= 0) { return "gpu \(gpu)" }
        for (name, amount) in custom.sorted(by: { $0.key < $1.key }) where !(amount >= 0) { return "\(name) \(amount)" }
        return nil
    }

    /// Whether `self` fits within `capacity` (every amount no larger).
    func fits(within capacity: Resources) -> Bool {
        // Numbers only: the scheduler asks this for every candidate it looks at.
        guard cpu <= capacity.cpu + 1e-9, memoryBytes <= capacity.memoryBytes, gpu <= capacity.gpu + 1e-9 else { return false }
        for (name, amount) in custom where amount > (capacity.custom[name] ?? 0) + 1e-9 { return false }
        return true
    }

    /// The first amount larger than `capacity`'s, as "name: wanted > available".
    func firstExcess(over capacity: Resources) -> String? {
        if cpu > capacity.cpu + 1e-9 { return "cpu \(cpu) > \(capacity.cpu)" }
        if memoryBytes > capacity.memoryBytes { return "memory \(memoryBytes) bytes > \(capacity.memoryBytes)" }
        if gpu > capacity.gpu + 1e-9 { return "gpu \(gpu) > \(capacity.gpu)" }
        for (name, amount) in custom.sorted(by: { $0.key < $1.key }) where amount > (capacity.custom[name] ?? 0) + 1e-9 {
            return "\(name) \(amount) > \(capacity.custom[name] ?? 0)"
        }
        return nil
    }

    // (The scheduler adds and subtracts a task's resources twice per task: a task with no custom
    // amounts, the usual case, costs no dictionary work.)
    static func + (lhs: Resources, rhs: Resources) -> Resources {
        Resources(cpu: lhs.cpu + rhs.cpu, memoryBytes: lhs.memoryBytes + rhs.memoryBytes, gpu: lhs.gpu + rhs.gpu,
                  custom: rhs.custom.isEmpty ? lhs.custom : lhs.custom.merging(rhs.custom, uniquingKeysWith: +))
    }

    static func - (lhs: Resources, rhs: Resources) -> Resources {
        Resources(cpu: lhs.cpu - rhs.cpu, memoryBytes: lhs.memoryBytes - rhs.memoryBytes, gpu: lhs.gpu - rhs.gpu,
                  custom: rhs.custom.isEmpty ? lhs.custom : lhs.custom.merging(rhs.custom.mapValues { -$0 }, uniquingKeysWith: +))
    }

    public var description: String {
        var parts = ["cpu \(cpu)"]
        if memoryBytes > 0 { parts.append("memory \(memoryBytes) B") }
        if gpu > 0 { parts.append("gpu \(gpu)") }
        for (name, amount) in custom.sorted(by: { $0.key < $1.key }) { parts.append("\(name) \(amount)") }
        return parts.joined(separator: ", ")
    }
}

/// How often a task is tried again, counted by cause: a failure (the task threw) and a
/// preemption (the executor stopped it) are counted apart. Waits `backoffSeconds × 2^(n-1)`
/// before the n-th retry, at most `maximumBackoffSeconds`.
public struct RetryPolicy: Sendable, Hashable, Codable {
    public var failures: Int
    public var preemptions: Int
    public var backoffSeconds: Double
    public var maximumBackoffSeconds: Double

    public init(failures: Int = 0, preemptions: Int = 3, backoffSeconds: Double = 0.1, maximumBackoffSeconds: Double = 30) {
        self.failures = failures
        self.preemptions = preemptions
        self.backoffSeconds = backoffSeconds
        self.maximumBackoffSeconds = maximumBackoffSeconds
    }

    /// Seconds to wait before retry number `retry` (1-based).
    func backoff(beforeRetry retry: Int) -> Double {
        min(maximumBackoffSeconds, backoffSeconds * pow2(retry - 1))
    }

    private func pow2(_ exponent: Int) -> Double { exponent >= 62 ? .infinity : Double(1 << max(0, exponent)) }
}

/// Per-task settings.
///
/// - Note: A value type; thread-safe.
public struct TaskOptions: Sendable {
    public var resources: Resources
    /// Overrides the workflow's policy for this task's output.
    public var policy: MaterializationPolicy?
    public var retries: RetryPolicy
    /// Seconds an attempt may run; then it is cancelled and counted as failed (timed out).
    public var timeoutSeconds: Double?
    /// The executor that runs this task, by its name in `RunOptions.executors` (nil: by label,
    /// else the run's default executor). An unknown name is an error before the run starts.
    public var executor: String?
    /// Labels that select an executor through `RunOptions.executorForLabel` (as Nextflow's
    /// `withLabel`).
    public var labels: [String]
    /// Settings for the engine that runs the task, by key (e.g. for SLURM `partition`, `time`,
    /// `sbatch_args`); each executor reads the keys it knows (`AttemptLaunch.executorSettings`).
    public var executorSettings: [String: String]
    /// The task's code version: bump it when the task's code changes, so that `--resume`
    /// (`RunOptions.resume`) runs it again instead of reusing a result the old code made.
    public var version: String
    /// Values the task's body depends on besides its inputs (e.g. a learning rate), by name:
    /// part of what makes a kept result current (see `RunOptions.resume`).
    public var parameters: [String: String]
    /// Files outside the graph that the task reads (paths; relative ones from the working
    /// directory): their content is part of what makes a kept result current.
    public var fileDependencies: [String]
    /// The task gives the same value for the same inputs. A lost value of a deterministic task
    /// is recomputed by running it again (lineage); one of a task marked non-deterministic is
    /// not (its consumers would see a different value), and its loss fails the run, naming it.
    public var deterministic: Bool

    public init(
        resources: Resources = Resources(), policy: MaterializationPolicy? = nil, retries: RetryPolicy = RetryPolicy(),
        timeoutSeconds: Double? = nil, executor: String? = nil, labels: [String] = [], executorSettings: [String: String] = [:],
        version: String = "", parameters: [String: String] = [:], fileDependencies: [String] = [], deterministic: Bool = true
    ) {
        self.version = version
        self.parameters = parameters
        self.fileDependencies = fileDependencies
        self.deterministic = deterministic
        self.executorSettings = executorSettings
        self.resources = resources
        self.policy = policy
        self.retries = retries
        self.timeoutSeconds = timeoutSeconds
        self.executor = executor
        self.labels = labels
    }
}
