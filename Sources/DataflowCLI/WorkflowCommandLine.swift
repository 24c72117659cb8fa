import ArgumentParser
import Dataflow
import Foundation
import Materialize
import ObjectStore
import Synchronization

/// The `dataflow`-style command line of any workflow program: one call in `main` serves the
/// worker modes and otherwise runs the workflow, so that the same binary runs on threads, on
/// warm workers or (later) on a cluster by switching `--executor`.
///
///     // main.swift
///     import Dataflow
///     import DataflowCLI
///
///     func makeWorkflow() -> Workflow { ... }   // no side effects: workers build it again
///     await WorkflowCommandLine.main(makeWorkflow)
///
/// Options (`--help` lists them): `--executor NAME` (a declared executor, or `local` /
/// `processes`), `--config FILE` (else `$DATAFLOW_CONFIG`, else `./dataflow.toml`), `-j/--jobs
/// N`, `--workdir DIR`, `--keep-going`, `--policy P`, `--results a,b`, `--dry-run` (prints the
/// plan: each task, its executor and resources, where each value will live and why),
/// `--progress auto|always|never`. Flags override environment variables, which override the
/// file. It prints the progress line while it runs and a summary at the end, and exits 0 when
/// every task succeeded, 1 otherwise (and for bad options, with a message naming them).
public enum WorkflowCommandLine {
    /// Serves a worker mode (if this process was started as a worker) or runs the workflow `make`
    /// builds with the options of `arguments`; then exits the process.
    public static func main(
        _ make: @escaping @Sendable () -> Workflow, arguments: [String] = CommandLine.arguments,
        registry: ExecutorRegistry = .shared
    ) async -> Never {
        let workflow = make()
        await Workflow.runWorkerIfRequested([workflow], arguments: arguments)
        exit(await run(workflow, arguments: Array(arguments.dropFirst()), registry: registry))
    }

    /// Parses `arguments` (without the program name) and runs `workflow` with them; prints the
    /// summary (or the plan) to standard output and errors to standard error.
    /// - Returns: the exit status: 0 when every task succeeded (or for `--help` and
    ///   `--dry-run`), 1 otherwise.
    public static func run(_ workflow: Workflow, arguments: [String], registry: ExecutorRegistry = .shared) async -> Int32 {
        let parsed: WorkflowRunArguments
        do {
            parsed = try WorkflowRunArguments.parse(arguments)
        } catch {
            let message = WorkflowRunArguments.fullMessage(for: error)
            if WorkflowRunArguments.exitCode(for: error) == .success {
                print(message)
                return 0
            }
            FileHandle.standardError.write(Data("\(message)\n".utf8))
            return 1
        }
        var options: RunOptions
        do {
            options = try parsed.runOptions(for: workflow, registry: registry)
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            return 1
        }
        // The run id is known before the run starts, so that a second Ctrl-C can say what the
        // run leaves.
        let runID = options.runID ?? RunOptions.makeRunID(workflow: workflow.name)
        options.runID = runID
        let started = ContinuousClock.now
        let work = LockedTask()
        let interruption = _RunInterruption.install(
            onFirst: { _ in work.cancel() },
            leftovers: { [options] in Self.leftovers(runID: runID, options: options) })
        defer { interruption.remove() }
        let running = Task { [options] in
            _ = try await parsed.execute(workflow, options: options) { print($0, terminator: "") }
        }
        work.set(running)
        do {
            try await running.value
            return 0
        } catch let error as DataflowError where error.code == .runCancelled && interruption.received != nil {
            let signal = interruption.received ?? SIGINT
            FileHandle.standardError.write(Data(Self.cancellationSummary(
                runID: runID, options: options, signal: signal, seconds: (ContinuousClock.now - started).secondsValue,
                stoppingSeconds: interruption.receivedAt.map { (ContinuousClock.now - $0).secondsValue }).utf8))
            return 128 + signal
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            return interruption.exitStatus ?? 1
        }
    }

    /// What a run cancelled by `signal` did, for standard error: its tasks by outcome (from the
    /// run log's last line), how long stopping took, and where its log is.
    static func cancellationSummary(runID: String, options: RunOptions, signal: Int32, seconds: Double, stoppingSeconds: Double?) -> String {
        let directory = RunDirectory(workdir: options.workdir, runID: runID)
        let logPath = directory.logPath
        // The run log's last line (the run's summary), not the whole log.
        let finished = (try? RunLog.readEnds(at: logPath))?.finished
        let outcomes = finished.map { "\($0.succeeded ?? 0) succeeded, \($0.failed ?? 0) failed, \($0.skipped ?? 0) not run" } ?? "unknown"
        let storeLeft = SharedObjectStore.exists(named: RunOptions.storeName(runID: runID))
        let stopping = stoppingSeconds.map { " (stopping took \(String(format: "%.2f", $0)) s)" } ?? ""
        return "run \(runID) cancelled by \(_RunInterruption.name(of: signal)) after \(String(format: "%.2f", seconds)) s\(stopping): "
            + "tasks \(outcomes)\n"
            + "  run log: \(logPath)\n"
            + (storeLeft ? "  the run's store is still in /dev/shm: dataflow.\(RunOptions.storeName(runID: runID))\n" : "")
    }

    /// What a run cut short by a second signal leaves behind, one item a line.
    static func leftovers(runID: String, options: RunOptions) -> String {
        let directory = RunDirectory(workdir: options.workdir, runID: runID)
        var lines = ["left behind by run \(runID):",
                     "  its run directory \(directory.path) (the run log ends without run-finished; --resume reuses the results already in files there)"]
        let storeName = RunOptions.storeName(runID: runID)
        if options.store == nil && SharedObjectStore.exists(named: storeName) {
            lines.append("  its store /dev/shm/dataflow.\(storeName) (remove it: rm /dev/shm/dataflow.\(storeName))")
        }
        let exchange = (try? FileManager.default.contentsOfDirectory(atPath: directory.exchangeDirectory)) ?? []
        if !exchange.isEmpty {
            lines.append("  \(exchange.count) exchange file(s) in \(directory.exchangeDirectory)")
        }
        var seen = Set<ObjectIdentifier>()
        for executor in [options.executor] + options.executors.sorted(by: { $0.key < $1.key }).map(\.value)
        where seen.insert(ObjectIdentifier(executor)).inserted {
            if let text = executor.leftovers(runID: runID) { lines.append("  \(text)") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// The task that runs the workflow, set once it exists, cancelled by the first signal (which
/// may come before it is set: then it is cancelled as it is set).
///
/// - Note: Thread-safe (a `Mutex`).
final class LockedTask: Sendable {
    private let state = Mutex<(task: Task<Void, any Error>?, cancelled: Bool)>((nil, false))

    func set(_ task: Task<Void, any Error>) {
        let cancel = state.withLock { state -> Bool in
            state.task = task
            return state.cancelled
        }
        if cancel { task.cancel() }
    }

    func cancel() {
        let task = state.withLock { state -> Task<Void, any Error>? in
            state.cancelled = true
            return state.task
        }
        task?.cancel()
    }
}

/// The options every workflow program's command line has (an `@OptionGroup` for a command of
/// your own: `dataflow demo` uses it).
public struct WorkflowRunArguments: ParsableArguments, Sendable {
    @Option(name: .long, help: ArgumentHelp("The default executor: a name declared in the configuration, or local or processes.", valueName: "name"))
    public var executor: String?

    @Option(name: .long, help: ArgumentHelp("Configuration file (default: $DATAFLOW_CONFIG, else ./dataflow.toml if it exists).", valueName: "file"))
    public var config: String?

    @Option(name: [.customShort("j"), .long], parsing: .unconditional, help: ArgumentHelp("Tasks running at once (default: the machine's cores).", valueName: "n"))
    public var jobs: Int?

    @Option(name: .long, help: ArgumentHelp("Work directory holding runs/ and spill/ (default: $DATAFLOW_WORKDIR, else ./.dataflow).", valueName: "dir"))
    public var workdir: String?

    @Flag(name: .long, help: "Go on with every task that does not depend on a failed one.")
    public var keepGoing = false

    @Option(name: .long, help: ArgumentHelp("The workflow's materialization policy: always, auto, never or final.", valueName: "policy"))
    public var policy: String?

    @Option(name: .long, help: ArgumentHelp("Tasks whose results to keep, comma-separated (default: every leaf).", valueName: "tasks"))
    public var results: String?

    @Flag(name: .long, help: "Print the plan (each task's executor and resources, where each value will live and why) and run nothing.")
    public var dryRun = false

    @Flag(name: .long, help: "Reuse the kept results of earlier runs in the work directory that are still current (same task version, parameters, file dependencies and inputs); with --dry-run, say what would run and why.")
    public var resume = false

    @Option(name: .long, help: ArgumentHelp("With --resume: tasks to run even if their kept results are current, comma-separated.", valueName: "tasks"))
    public var rerun: String?

    @Option(name: .long, help: ArgumentHelp("When to show the progress line: auto (on a terminal), always or never.", valueName: "when"))
    public var progress: String = "auto"

    public init() {}

    public func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("invalid value '\(jobs)' for -j/--jobs: must be at least 1") }
        if rerun != nil && !resume { throw ValidationError("--rerun needs --resume") }
        if let policy, MaterializationPolicy(rawValue: policy) == nil {
            throw ValidationError("invalid value '\(policy)' for --policy: use always, auto, never or final")
        }
        guard RunOptions.ProgressMode(rawValue: progress == "auto" ? "automatic" : progress) != nil else {
            throw ValidationError("invalid value '\(progress)' for --progress: use auto, always or never")
        }
    }

    /// The run's options from the configuration file, the environment and these flags (in
    /// that order of precedence, lowest first), with per-task and per-label settings applied
    /// to `workflow`.
    /// - Throws: `ConfigError`, `DataflowError`.
    public func runOptions(for workflow: Workflow, registry: ExecutorRegistry = .shared,
                           environment: [String: String] = ProcessInfo.processInfo.environment) throws -> RunOptions {
        var config = DataflowConfig()
        if let path = DataflowConfig.locate(explicit: self.config, environment: environment) {
            config = try DataflowConfig.load(path: path, registry: registry)
        }
        try config.applyEnvironment(environment)
        if let workdir { config.run.workdir = workdir }
        if let jobs { config.run.concurrency = jobs }
        if keepGoing { config.run.keepGoing = true }
        if let policy { config.run.policy = MaterializationPolicy(rawValue: policy) }
        if let executor { config.run.executor = executor }
        // An executor named on the command line or in the environment that nothing declares:
        // say where the name came from and which names there are.
        if let name = config.run.executor, config.executors[name] == nil, !ExecutorRegistry.builtInKinds.contains(name) {
            let source = executor != nil ? "--executor" : (environment["DATAFLOW_EXECUTOR"].map { !$0.isEmpty } == true ? "$DATAFLOW_EXECUTOR" : nil)
            if let source {
                let declared = config.executors.keys.sorted()
                let declaredText = config.path.map { "declared in \($0): \(declared.isEmpty ? "none" : declared.joined(separator: ", "))" }
                    ?? "none declared (no configuration file: --config FILE, $DATAFLOW_CONFIG or ./dataflow.toml)"
                throw ConfigError(
                    file: source, key: nil, line: nil,
                    message: "no executor named \(_quote(name)): \(declaredText); built in: \(ExecutorRegistry.builtInKinds.sorted().joined(separator: ", "))")
            }
        }
        var options = RunOptions()
        try config.apply(to: workflow, options: &options, registry: registry)
        if let results { options.results = results.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        options.progress = RunOptions.ProgressMode(rawValue: progress == "auto" ? "automatic" : progress) ?? .automatic
        options.resume = resume
        if let rerun { options.rerun = Set(rerun.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }
        return options
    }

    /// What `--dry-run` prints: the run plan, and with `--resume`, what would run and why.
    /// - Throws: `DataflowError`.
    public func planText(_ workflow: Workflow, _ options: RunOptions) throws -> String {
        var text = try workflow.plan(options).description
        guard options.resume else { return text }
        let decisions = try workflow.resumePlan(options)
        let width = decisions.map(\.task.count).max() ?? 0
        text += "\nwith --resume, \(decisions.filter { $0.action == .run }.count) of \(decisions.count) task(s) run:\n"
        for decision in decisions {
            let from = decision.fromRun.map { " [run \($0)]" } ?? ""
            text += "  \(decision.task.padding(toLength: width, withPad: " ", startingAt: 0))  \(decision.action.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0))  \(decision.reason)\(from)\n"
        }
        return text
    }

    /// Runs `workflow` with these options, or prints its plan (`--dry-run`); `write` gets the
    /// plan or the summary.
    /// - Returns: the run (nil for a dry run).
    /// - Throws: the run's `DataflowError` (its message lists every failed task), `ConfigError`.
    @discardableResult
    public func execute(_ workflow: Workflow, registry: ExecutorRegistry = .shared, write: (String) -> Void) async throws -> WorkflowRun? {
        try await execute(workflow, options: try runOptions(for: workflow, registry: registry), write: write)
    }

    /// `execute` with options already resolved (`runOptions(for:)`).
    func execute(_ workflow: Workflow, options: RunOptions, write: (String) -> Void) async throws -> WorkflowRun? {
        if dryRun {
            write(try planText(workflow, options))
            return nil
        }
        let started = ContinuousClock.now
        let run = try await workflow.run(options)
        write(RunReport(run: run, seconds: (ContinuousClock.now - started).secondsValue).description)
        return run
    }
}

/// The summary a workflow program prints after a run: its id, tasks by outcome (and reused),
/// executors, wall time, where its directory is, and each result: its size, where it is (in
/// memory, in a file, or reused from an earlier run's file) and, for scalars, strings, tensors
/// and JSON values, a short view of the value itself (`_ValuePreview`). When a result lives only
/// in memory, it says how to keep it.
public struct RunReport: CustomStringConvertible, Sendable {
    public let run: WorkflowRun
    public let seconds: Double

    public init(run: WorkflowRun, seconds: Double) {
        self.run = run
        self.seconds = seconds
    }

    public var description: String {
        // From the run's summary (the run log's last line), not the whole log: a run of a
        // million tasks prints this at once.
        let summary = run.summary
        let executors = summary.executors ?? []
        let reusedCount = summary.reused ?? 0
        var out = "run \(run.runID): \(summary.succeeded ?? 0) succeeded, \(summary.failed ?? 0) failed, \(summary.skipped ?? 0) skipped"
        if reusedCount > 0 { out += ", \(reusedCount) reused" }
        out += " in \(String(format: "%.2f", seconds)) s "
            + (executors.isEmpty ? (reusedCount > 0 ? "(nothing ran: every result is reused from an earlier run)" : "on no executor") : "on \(executors.joined(separator: ", "))")
            + "\n"
        out += "  run directory: \(run.directory)\n"
        var onlyInMemory = 0
        let entries = summary.results ?? []
        for entry in entries {
            let place: String
            if let files = entry.files, !files.isEmpty {
                place = "in \(files.joined(separator: ", "))"
            } else if let from = entry.fromRun {
                place = "reused from run \(from)" + (entry.keptFile.map { " (\($0))" } ?? "")
            } else {
                place = "in memory"
                onlyInMemory += 1
            }
            let value = (try? run.handle(named: entry.task)).flatMap(_ValuePreview.text(of:)).map { " = \($0)" } ?? ""
            out += "  result \(entry.task): \(ByteSize.human(entry.byteCount)) \(place)\(value)\n"
        }
        if let count = summary.resultCount, count > entries.count {
            out += "  ... and \(count - entries.count) more result(s) (WorkflowRun.resultNames; `dataflow runs show \(run.runID)`)\n"
        }
        if onlyInMemory > 0 {
            out += "  (a result only in memory is gone when this program exits: --policy final also writes the results to "
                + "\(run.directory)/values, and --results a,b chooses which tasks' results to keep)\n"
        }
        return out
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var secondsValue: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) * 1e-18
    }
}
