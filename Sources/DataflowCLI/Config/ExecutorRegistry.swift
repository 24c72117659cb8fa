import Dataflow
import DataflowRay
import DataflowSlurm
import Foundation
import Synchronization

/// The executor types a configuration file may declare (`type = "..."`), and how each is made
/// from its table. `local`, `processes`, `slurm` and `ray` are built in; a program registers its own
/// types (e.g. the example `FreshProcessExecutor`) before it loads a configuration.
///
///     ExecutorRegistry.shared.register(type: "fresh-process", keys: ["reaches_store"]) { settings in
///         FreshProcessExecutor(.init(reachesStore: settings["reaches_store"] != .bool(false)))
///     }
///
/// - Note: Thread-safe.
public final class ExecutorRegistry: Sendable {
    /// The registry `DataflowConfig` and `WorkflowCommandLine` use by default.
    public static let shared = ExecutorRegistry()

    /// Types that need no registration.
    public static let builtInKinds: Set<String> = ["local", "processes", "slurm", "ray"]
    /// Types whose settings are parsed and checked here, made once their target registers them.
    public static let declaredKinds: Set<String> = []

    /// How a registered type is made from its table's keys (without `type`).
    public typealias Maker = @Sendable (_ settings: [String: ConfigValue]) throws -> any Executor

    private struct Registration {
        /// The keys its table may have (nil: any).
        let keys: Set<String>?
        let make: Maker
    }

    private let registrations = Mutex<[String: Registration]>([:])

    public init() {}

    /// Registers executor type `type`: tables with `type = "<type>"` may have `keys` (nil: any)
    /// and are made by `make`. Registering `slurm` or `ray` makes those types available.
    public func register(type: String, keys: Set<String>? = nil, make: @escaping Maker) {
        registrations.withLock { $0[type] = Registration(keys: keys, make: make) }
    }

    /// Whether `type` may be declared.
    func isKnown(_ type: String) -> Bool {
        Self.builtInKinds.contains(type) || Self.declaredKinds.contains(type) || registrations.withLock { $0[type] != nil }
    }

    /// The keys a registered custom type allows (nil: any, or not registered).
    func allowedKeys(ofType type: String) -> Set<String>? {
        registrations.withLock { $0[type]?.keys }
    }

    /// Known types, for messages.
    var knownTypes: [String] {
        (Array(Self.builtInKinds) + Array(Self.declaredKinds) + registrations.withLock { Array($0.keys) }).sorted()
    }

    /// Makes the executor a declaration describes.
    /// - Throws: `.executor` naming the executor and why it cannot be made.
    func make(_ declaration: DataflowConfig.ExecutorDeclaration, concurrency: Int) throws(DataflowError) -> any Executor {
        let registration = registrations.withLock { $0[declaration.type] }
        switch declaration.settings {
        case .local:
            return LocalExecutor()
        case .processes(let settings):
            return try ProcessExecutor(.init(
                workerCount: settings.workers ?? concurrency, executable: settings.executable, arguments: settings.arguments,
                prefaultStore: settings.prefaultStore ?? false))
        case .slurm(let settings):
            do {
                return try SlurmExecutor(Self.slurmOptions(settings))
            } catch {
                throw DataflowError(.executor, "executor '\(declaration.name)' (slurm) cannot be made: \(error.message)")
            }
        case .ray(let settings):
            do {
                return try RayExecutor(Self.rayOptions(settings))
            } catch {
                throw DataflowError(.executor, "executor '\(declaration.name)' (ray) cannot be made: \(error.message)")
            }
        case .custom:
            guard let registration else {
                throw DataflowError(
                    .executor,
                    "executor '\(declaration.name)' has type '\(declaration.type)', which this program does not include"
                        + (Self.declaredKinds.contains(declaration.type) ? " (its settings are valid; the \(declaration.type) executor is not part of this build)" : ""))
            }
            do {
                return try registration.make(Self.rawSettings(of: declaration.settings))
            } catch let error as DataflowError {
                throw error
            } catch {
                throw DataflowError(.executor, "executor '\(declaration.name)' (\(declaration.type)) cannot be made: \(error)")
            }
        }
    }

    /// A built-in executor by kind: `local`, `processes` with `concurrency` workers, or `slurm`
    /// with its defaults.
    /// - Throws: `.unknownExecutor` for any other name.
    func makeBuiltIn(kind: String, concurrency: Int) throws(DataflowError) -> any Executor {
        switch kind {
        case "local": return LocalExecutor()
        case "processes": return try ProcessExecutor(.init(workerCount: concurrency))
        case "slurm": return try SlurmExecutor()
        case "ray": return try RayExecutor()
        default:
            throw DataflowError(.unknownExecutor, "no executor named \(_quote(kind)) is declared, and it is no built-in kind (local, processes, slurm, ray)")
        }
    }

    /// A `ray` table's settings as the executor's options.
    static func rayOptions(_ settings: DataflowConfig.RaySettings) -> RayExecutor.Options {
        var options = RayExecutor.Options(dashboardAddress: settings.dashboardAddress, token: settings.token, tokenFile: settings.tokenFile, workingDirectory: settings.workingDirectory)
        if let value = settings.pollIntervalMinSeconds { options.pollIntervalMinSeconds = value }
        if let value = settings.pollIntervalMaxSeconds { options.pollIntervalMaxSeconds = value }
        options.pollIntervalMaxSeconds = max(options.pollIntervalMaxSeconds, options.pollIntervalMinSeconds)
        if let value = settings.maxSubmit { options.maxSubmit = value }
        if let value = settings.autoscalerAware { options.autoscalerAware = value }
        options.reachesStore = settings.reachesStore
        options.executable = settings.executable
        options.arguments = settings.arguments
        options.environment = settings.environment
        return options
    }

    /// A `slurm` table's settings as the executor's options.
    static func slurmOptions(_ settings: DataflowConfig.SlurmSettings) -> SlurmExecutor.Options {
        var options = SlurmExecutor.Options(
            partition: settings.partition, account: settings.account, qos: settings.qos, timeLimit: settings.time,
            sbatchArguments: settings.sbatchArguments)
        if let value = settings.pollIntervalSeconds { options.pollIntervalMinSeconds = value }
        if let value = settings.pollIntervalMaxSeconds { options.pollIntervalMaxSeconds = value }
        options.pollIntervalMaxSeconds = max(options.pollIntervalMaxSeconds, options.pollIntervalMinSeconds)
        if let value = settings.commandTimeoutSeconds { options.commandTimeoutSeconds = value }
        if let value = settings.values.flatMap(SlurmExecutor.ValuePassing.init(rawValue:)) { options.values = value }
        if let value = settings.status.flatMap(SlurmExecutor.StatusSource.init(rawValue:)) { options.statusSource = value }
        if let value = settings.arrays { options.arrays = value }
        options.arrayThrottle = settings.arrayThrottle
        if let value = settings.maxJobs { options.maxJobs = value }
        if let value = settings.recordGraceSeconds { options.recordGraceSeconds = value }
        if let value = settings.warningSignalSeconds { options.warningSignalSeconds = Int(value.rounded(.up)) }
        options.executable = settings.executable
        options.arguments = settings.arguments
        options.environment = settings.environment
        return options
    }

    /// The settings of a `slurm` or `ray` table as raw values, for a registered maker.
    private static func rawSettings(of settings: DataflowConfig.ExecutorSettings) -> [String: ConfigValue] {
        var raw: [String: ConfigValue] = [:]
        switch settings {
        case .custom(let values): return values
        case .local, .processes, .slurm, .ray:
            break
        }
        return raw
    }
}
