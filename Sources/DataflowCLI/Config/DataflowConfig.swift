import Dataflow
import Foundation
import Materialize

/// A run's configuration from `dataflow.toml`: run settings, declared executors, and per-task
/// and per-label executors and resources. Parsed and checked in full when loaded (unknown keys,
/// wrong types, bad durations and sizes are errors naming the file, the key and its line), then
/// applied to a workflow and its `RunOptions` (`apply(to:options:)`).
///
///     [run]
///     workdir = ".dataflow"          # default: $DATAFLOW_WORKDIR, else ./.dataflow
///     policy = "auto"                # always | auto | never | final
///     concurrency = 4
///     keep_going = false
///     executor = "pool"              # the default executor: a declared name, or "local" / "processes"
///     store_capacity = "1GiB"
///     memory_wait = "60s"
///
///     [executor.pool]
///     type = "processes"
///     workers = 4
///
///     [executor.hpc]
///     type = "slurm"
///     partition = "batch"
///     time = "01:00:00"
///
///     [task."train"]
///     executor = "hpc"
///     resources = { cpu = 4, memory = "8GiB", gpu = 1 }
///
///     [label.small]
///     executor = "pool"
///
/// Precedence: command-line flags over environment variables (`DATAFLOW_WORKDIR`,
/// `DATAFLOW_CONCURRENCY`, `DATAFLOW_POLICY`, `DATAFLOW_EXECUTOR`, `DATAFLOW_KEEP_GOING`) over
/// the file.
///
/// - Note: A value type; thread-safe.
public struct DataflowConfig: Sendable {
    /// The `[run]` table.
    public struct RunSettings: Sendable, Equatable {
        public var workdir: String?
        public var policy: MaterializationPolicy?
        public var concurrency: Int?
        public var keepGoing: Bool?
        /// The default executor's name.
        public var executor: String?
        public var storeCapacityBytes: Int?
        /// The most objects the run's own store holds at once (`RunOptions.maxObjects`).
        public var maxObjects: Int?
        public var memoryWaitSeconds: Double?
        public init() {}
    }

    /// One `[executor.<name>]` table.
    public struct ExecutorDeclaration: Sendable {
        public var name: String
        /// `local`, `processes`, `slurm`, `ray`, or a registered custom type.
        public var type: String
        public var settings: ExecutorSettings
    }

    /// An executor table's settings, by type.
    public enum ExecutorSettings: Sendable {
        case local
        case processes(ProcessesSettings)
        case slurm(SlurmSettings)
        case ray(RaySettings)
        /// A registered custom type: its keys, as checked by its registration.
        case custom([String: ConfigValue])
    }

    /// `type = "processes"`.
    public struct ProcessesSettings: Sendable, Equatable {
        public var workers: Int?
        public var executable: String?
        public var arguments: [String] = []
        public var prefaultStore: Bool?
    }

    /// `type = "slurm"` (the settings OxyMake documents, and extra `sbatch` arguments).
    public struct SlurmSettings: Sendable, Equatable {
        public var partition: String?
        public var account: String?
        public var qos: String?
        /// A SLURM time limit: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or `D-HH:MM:SS`.
        public var time: String?
        public var sbatchArguments: [String] = []
        /// `poll_interval_min` (or `poll_interval`).
        public var pollIntervalSeconds: Double?
        public var pollIntervalMaxSeconds: Double?
        public var commandTimeoutSeconds: Double?
        /// `store`, `files` or `auto`.
        public var values: String?
        /// `auto`, `sacct` or `squeue`.
        public var status: String?
        public var arrays: Bool?
        public var arrayThrottle: Int?
        public var maxJobs: Int?
        public var recordGraceSeconds: Double?
        public var warningSignalSeconds: Double?
        public var executable: String?
        public var arguments: [String] = []
        public var environment: [String: String] = [:]
    }

    /// `type = "ray"` (the settings OxyMake documents).
    public struct RaySettings: Sendable, Equatable {
        public var dashboardAddress: String?
        public var workingDirectory: String?
        public var pollIntervalMinSeconds: Double?
        public var pollIntervalMaxSeconds: Double?
        public var maxSubmit: Int?
        public var autoscalerAware: Bool?
        public var token: String?
        public var tokenFile: String?
        public var reachesStore: Bool?
        public var executable: String?
        public var arguments: [String] = []
        public var environment: [String: String] = [:]
    }

    /// `[task."<name>"]` or `[label.<name>]`.
    public struct TaskSettings: Sendable, Equatable {
        public var executor: String?
        public var resources: Resources?
        /// `settings = { partition = "gpu", time = "02:00:00" }`: the engine's settings for the
        /// task (`TaskOptions.executorSettings`).
        public var executorSettings: [String: String]?
        public init(executor: String? = nil, resources: Resources? = nil) {
            self.executor = executor
            self.resources = resources
        }
    }

    /// The file it came from (nil: built in code).
    public var path: String?
    public var run = RunSettings()
    public var executors: [String: ExecutorDeclaration] = [:]
    public var tasks: [String: TaskSettings] = [:]
    public var labels: [String: TaskSettings] = [:]
    /// The lines of the keys that name executors (`run.executor`, `label.<L>.executor`,
    /// `task.<T>.executor`), for messages.
    var keyLines: [String: Int] = [:]

    public init() {}

    /// The environment variable that names the configuration file.
    public static let fileEnvironmentVariable = "DATAFLOW_CONFIG"
    /// The file looked for in the current directory.
    public static let defaultFileName = "dataflow.toml"

    /// The configuration file to use: `explicit` (`--config`), else `$DATAFLOW_CONFIG`, else
    /// `./dataflow.toml` if it exists; nil if none.
    public static func locate(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let explicit { return explicit }
        if let named = environment[fileEnvironmentVariable], !named.isEmpty { return named }
        let local = FileManager.default.currentDirectoryPath + "/" + defaultFileName
        return FileManager.default.fileExists(atPath: local) ? local : nil
    }

    /// Reads and checks the file at `path`.
    /// - Throws: `ConfigError` naming the file, the key and (where known) the line.
    public static func load(path: String, registry: ExecutorRegistry = .shared) throws(ConfigError) -> DataflowConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, key: nil, line: nil, message: "cannot read the configuration file (missing or unreadable)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, key: nil, line: nil, message: "the configuration file is not UTF-8 text")
        }
        return try parse(text, path: path, registry: registry)
    }

    /// Environment variables over the file: `DATAFLOW_WORKDIR`, `DATAFLOW_CONCURRENCY`,
    /// `DATAFLOW_POLICY`, `DATAFLOW_EXECUTOR`, `DATAFLOW_KEEP_GOING` (1/0, true/false).
    /// - Throws: `ConfigError` naming the variable with a bad value.
    public mutating func applyEnvironment(_ environment: [String: String]) throws(ConfigError) {
        func bad(_ name: String, _ value: String, _ why: String) -> ConfigError {
            ConfigError(file: "$\(name)", key: name, line: nil, message: "\(_quote(value)): \(why)")
        }
        if let workdir = environment[RunOptions.workdirEnvironmentVariable], !workdir.isEmpty { run.workdir = workdir }
        if let text = environment["DATAFLOW_CONCURRENCY"], !text.isEmpty {
            guard let value = Int(text), value >= 1 else { throw bad("DATAFLOW_CONCURRENCY", text, "expected a whole number, at least 1") }
            run.concurrency = value
        }
        if let text = environment["DATAFLOW_POLICY"], !text.isEmpty {
            guard let value = MaterializationPolicy(rawValue: text) else { throw bad("DATAFLOW_POLICY", text, "expected always, auto, never or final") }
            run.policy = value
        }
        if let text = environment["DATAFLOW_EXECUTOR"], !text.isEmpty { run.executor = text }
        if let text = environment["DATAFLOW_KEEP_GOING"], !text.isEmpty {
            switch text.lowercased() {
            case "1", "true", "yes": run.keepGoing = true
            case "0", "false", "no": run.keepGoing = false
            default: throw bad("DATAFLOW_KEEP_GOING", text, "expected 1 or 0 (true or false)")
            }
        }
    }

    /// Applies the configuration: run settings to `options` (workdir, concurrency, keep-going,
    /// store capacity, memory wait), the policy to `workflow`, every declared executor (made by
    /// its type's registration) to `options.executors`, the default executor, per-label
    /// executors, and per-task and per-label executors and resources to `workflow`'s tasks.
    /// - Throws: `ConfigError` for an unknown task, an executor name that is declared nowhere,
    ///   or an executor that cannot be made.
    public func apply(to workflow: Workflow, options: inout RunOptions, registry: ExecutorRegistry = .shared) throws(ConfigError) {
        let file = path ?? "configuration"
        if let workdir = run.workdir { options.workdir = workdir }
        if let concurrency = run.concurrency { options.concurrency = concurrency }
        if let keepGoing = run.keepGoing { options.onFailure = keepGoing ? .keepGoing : .stopScheduling }
        if let capacity = run.storeCapacityBytes { options.storeCapacityBytes = capacity }
        if let maxObjects = run.maxObjects { options.maxObjects = maxObjects }
        if let wait = run.memoryWaitSeconds { options.memoryWaitSeconds = wait }
        if let policy = run.policy { workflow.defaultPolicy = policy }
        // Only the executors the run can use are made (a declared `slurm` table is checked,
        // but needs its executor only when a task may run on it).
        var used = workflow.requestedExecutorNames.union(tasks.values.compactMap(\.executor)).union(labels.values.compactMap(\.executor))
        if let name = run.executor { used.insert(name) }
        for (name, declaration) in executors.sorted(by: { $0.key < $1.key }) where used.contains(name) {
            do {
                options.executors[name] = try registry.make(declaration, concurrency: options.concurrency)
            } catch {
                throw ConfigError(file: file, key: "executor.\(name)", line: nil, message: error.message)
            }
        }
        if let name = run.executor {
            options.executor = try executor(named: name, options: options, registry: registry, key: "run.executor")
        }
        for (label, settings) in labels {
            if let executor = settings.executor {
                guard options.executors[executor] != nil || ExecutorRegistry.builtInKinds.contains(executor) else {
                    let carriers = workflow.taskNames(labelled: label)
                    let shown = carriers.prefix(5).map { _quote($0) }.joined(separator: ", ") + (carriers.count > 5 ? " and \(carriers.count - 5) more" : "")
                    throw ConfigError(
                        file: file, key: "label.\(label).executor", line: keyLines["label.\(label).executor"],
                        message: "label \(_quote(label)) is mapped to executor \(_quote(executor)), which is not declared (\(knownExecutors(registry: registry))); "
                            + (carriers.isEmpty ? "no task of workflow '\(workflow.name)' carries the label" : "tasks carrying the label: \(shown)"))
                }
                if options.executors[executor] == nil { options.executors[executor] = try self.executor(named: executor, options: options, registry: registry, key: "label.\(label).executor") }
                options.executorForLabel[label] = executor
            }
            if let resources = settings.resources { workflow.overrideResources(ofTasksLabelled: label, resources) }
            if let engine = settings.executorSettings { workflow.overrideExecutorSettings(ofTasksLabelled: label, engine) }
        }
        for (task, settings) in tasks.sorted(by: { $0.key < $1.key }) {
            if let executor = settings.executor, options.executors[executor] == nil {
                guard ExecutorRegistry.builtInKinds.contains(executor) else {
                    throw ConfigError(
                        file: file, key: "task.\(task).executor", line: keyLines["task.\(task).executor"],
                        message: "task \(_quote(task)) is mapped to executor \(_quote(executor)), which is not declared (\(knownExecutors(registry: registry)))")
                }
                options.executors[executor] = try self.executor(named: executor, options: options, registry: registry, key: "task.\(task).executor")
            }
            do {
                try workflow.overrideOptions(ofTask: task, executor: settings.executor, resources: settings.resources, executorSettings: settings.executorSettings)
            } catch {
                throw ConfigError(file: file, key: "task.\(task)", line: nil, message: error.message)
            }
        }
    }

    /// "declared: a, b; built in: local, processes, slurm, ray", for messages.
    func knownExecutors(registry: ExecutorRegistry) -> String {
        let declared = executors.keys.sorted()
        return (declared.isEmpty ? "none declared" : "declared: " + declared.joined(separator: ", "))
            + "; built in: " + ExecutorRegistry.builtInKinds.sorted().joined(separator: ", ")
    }

    /// The executor `name` stands for: a declared one, or a built-in kind (`local`, or
    /// `processes` with one worker per allowed concurrent task).
    func executor(named name: String, options: RunOptions, registry: ExecutorRegistry, key: String) throws(ConfigError) -> any Executor {
        if let declared = options.executors[name] { return declared }
        do {
            return try registry.makeBuiltIn(kind: name, concurrency: options.concurrency)
        } catch {
            throw ConfigError(file: path ?? "configuration", key: key, line: nil, message: error.message)
        }
    }
}

/// A bad configuration: the file (or environment variable), the key, the line where known, and
/// what is wrong.
///
/// - Note: A value type; thread-safe.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// The key at fault, dotted (`executor.hpc.time`), if any.
    public var key: String?
    /// Its line in the file, 1-based, where known.
    public var line: Int?
    /// Its column, 1-based, where known (TOML syntax errors).
    public var column: Int? = nil
    public var message: String

    public var description: String {
        var place = file
        if let line { place += ":\(line)" }
        if let line, line > 0, let column { place += ":\(column)" }
        if let key { place += ": \(key)" }
        return "\(place): \(message)"
    }
}

/// A configuration value kept as written, for custom executor types.
public enum ConfigValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case array([ConfigValue])
    case table([String: ConfigValue])
}

/// `text` in single quotes, control characters escaped.
func _quote(_ text: String) -> String { DataflowError.quote(text) }
