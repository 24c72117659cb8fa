import Foundation

/// The layout of one run's directory, `<workdir>/runs/<run id>/`, and of the work directory
/// around it. The only type that knows these paths: the scheduler, the attempt runner, worker
/// processes, executors and the `dataflow` command all ask it.
///
///     <workdir>/runs/<run id>/
///         run.jsonl                      the run log (see `RunLog`)
///         logs/<task>.<attempt>.log      what an attempt logged (its standard output and error
///                                        too, on a worker)
///         values/<name>.dfspill          values kept by policy (`always`, `final` leaves, results)
///         exchange/<name>.dfspill|.bin   values for consumers that read files
///         exchange/<task>.<attempt>.out.dfspill   outputs of attempts without the run's store
///         shell/<task>.<attempt>/        the working directory of a shell task's attempt
///         workers/<task>.<attempt>.spec.json      what a worker process is asked to run
///         workers/<task>.<attempt>.result.json    its attempt record, written last
///     <workdir>/spill/<store>-<instance>/        spill files of the run's store
///
/// Task names become file names with every character other than letters, digits and `-_.[]`
/// replaced by `_` (see `fileName(for:)`), so no name leads out of the run directory.
///
/// - Note: A value type; thread-safe.
public struct RunDirectory: Sendable, Hashable, CustomStringConvertible {
    /// The run directory itself.
    public let path: String

    /// The run directory of run `runID` under `workdir` (the run id must be valid: see
    /// `RunOptions.validateRunID`).
    public init(workdir: String, runID: String) {
        self.init(path: "\(Self.runsDirectory(workdir: workdir))/\(runID)")
    }

    /// A run directory at `path` (as a worker or a tool is told it).
    public init(path: String) {
        self.path = path
        // Made once: every attempt asks for its log's directory.
        self.logsDirectory = "\(path)/logs"
    }

    public var description: String { path }

    /// `<workdir>/runs`: where every run's directory is.
    public static func runsDirectory(workdir: String) -> String { "\(workdir)/runs" }

    /// `<workdir>/spill`: the root of the stores' spill directories.
    public static func spillRoot(workdir: String) -> String { "\(workdir)/spill" }

    /// The run log.
    public var logPath: String { "\(path)/run.jsonl" }
    /// Attempt logs.
    public let logsDirectory: String
    /// Values kept by policy.
    public var valuesDirectory: String { "\(path)/values" }
    /// Values for consumers that read files.
    public var exchangeDirectory: String { "\(path)/exchange" }
    /// Working directories of shell tasks.
    public var shellDirectory: String { "\(path)/shell" }
    /// Worker specs and attempt records.
    public var workersDirectory: String { "\(path)/workers" }

    /// The log file of an attempt.
    public func attemptLogPath(task: String, attempt: Int) -> String {
        "\(logsDirectory)/\(Self.fileName(for: task)).\(attempt).log"
    }

    /// The working directory of a shell task's attempt.
    public func shellAttemptDirectory(task: String, attempt: Int) -> String {
        "\(shellDirectory)/\(Self.fileName(for: task)).\(attempt)"
    }

    /// Where the spec of a worker process running an attempt goes.
    public func workerSpecPath(task: String, attempt: Int) -> String {
        "\(workersDirectory)/\(Self.fileName(for: task)).\(attempt).spec.json"
    }

    /// Where a worker process writes its attempt record (`WorkerResult`), last.
    public func attemptRecordPath(task: String, attempt: Int) -> String {
        "\(workersDirectory)/\(Self.fileName(for: task)).\(attempt).result.json"
    }

    /// Where an attempt that cannot reach the run's store writes its output (a spill file).
    public func exchangeOutputPath(task: String, attempt: Int) -> String {
        "\(exchangeDirectory)/\(Self.fileName(for: task)).\(attempt).out.dfspill"
    }

    /// Creates the run directory and its subdirectories that every run has (mode 0700); the
    /// others (`workers/`, `exchange/`, `shell/`) are made when first needed.
    /// - Throws: `.runDirectory` naming the directory that cannot be made.
    func create() throws(DataflowError) {
        for directory in [path, logsDirectory] {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw DataflowError(.runDirectory, "cannot create run directory '\(directory)': \(error)")
            }
        }
    }

    /// `name` as a file-name stem: letters, digits and `-_.[]` kept, anything else `_`, at most
    /// 150 characters (UTF-8 bytes of ASCII).
    public static func fileName(for name: String) -> String {
        RunLog.safeFileName(name)
    }
}
