import Foundation
import Logging
import Materialize
import ObjectStore
import Synchronization

/// The run directory `<workdir>/runs/<run id>/`:
///
///     run.jsonl                  the run log: one JSON object per line (see `RunLogEvent`)
///     logs/<task>.<attempt>.log  what each attempt logged through `TaskContext.logger`
///     values/                    values written for `always` and `final` leaves (spill files)
///     exchange/                  values written for consumers that read files
///
/// - Note: Thread-safe. Appending only queues the event (a struct copy under a lock); a
///   background thread turns queued events into JSON lines and writes them every few
///   milliseconds, so that a lane running trivial tasks does not format JSON on its way to the
///   next one. `flush()` writes everything queued before it returns.
public final class RunLog: @unchecked Sendable {  // all mutable state is in `writer`
    public let directory: String
    public let logPath: String
    public let logsDirectory: String
    /// The run directory's layout.
    public let runDirectory: RunDirectory

    private let writer: _RunLogWriter

    /// A run log in `directory`, for tools and tests that write one outside a run.
    public convenience init(testingDirectory directory: String) throws(DataflowError) {
        try self.init(RunDirectory(path: directory))
    }

    /// Creates the run directory (see `RunDirectory.create`) and its run log.
    init(_ runDirectory: RunDirectory) throws(DataflowError) {
        self.runDirectory = runDirectory
        self.directory = runDirectory.path
        self.logPath = runDirectory.logPath
        self.logsDirectory = runDirectory.logsDirectory
        let directory = runDirectory.path
        try runDirectory.create()
        let file: FileHandle
        do {
            guard FileManager.default.createFile(atPath: runDirectory.logPath, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw DataflowError(.runDirectory, "cannot create run log '\(runDirectory.logPath)'")
            }
            file = try FileHandle(forWritingTo: URL(fileURLWithPath: runDirectory.logPath))
        } catch let error as DataflowError {
            throw error
        } catch {
            throw DataflowError(.runDirectory, "cannot create run directory '\(directory)': \(error)")
        }
        writer = _RunLogWriter(file: file)
        writer.startBackgroundThread(name: "dataflow-runlog")
    }

    deinit {
        writer.close()
    }

    /// Queues one event (written within milliseconds; see `flush`).
    public func append(_ event: RunLogEvent) {
        writer.enqueue(CollectionOfOne(event))
    }

    /// Queues events, in order and together (written within milliseconds; see `flush`).
    public func append(contentsOf events: some Collection<RunLogEvent>) {
        writer.enqueue(events)
    }

    /// Queues `events` and leaves an empty array in their place: the array itself moves into the
    /// queue, without copying an event (what the scheduler's lanes use).
    func append(moving events: inout [RunLogEvent]) {
        writer.enqueue(moving: &events)
    }

    /// Writes every queued event to the file before returning. The scheduler flushes at the end
    /// of a run and after every event that fails a task for good, so a crash loses little.
    public func flush() {
        writer.drain()
    }

    /// The path of an attempt's log file.
    func attemptLogPath(task: String, attempt: Int) -> String {
        runDirectory.attemptLogPath(task: task, attempt: attempt)
    }

    /// `name` as a file-name stem: letters, digits and `-_.[]` kept, anything else `_`, at most
    /// 150 characters.
    static func safeFileName(_ name: String) -> String {
        // Fast path (checked on the UTF-8 bytes): a short ASCII name that needs no change.
        if name.utf8.count <= 150 && name.utf8.allSatisfy({ byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "["), UInt8(ascii: "]"):
                return true
            default:
                return false
            }
        }) {
            return name
        }
        return String(name.map { $0.isLetter || $0.isNumber || "-_.[]".contains($0) ? $0 : "_" }.prefix(150))
    }

    /// Reads a run log back (for `dataflow runs show` and tests), with every event's `runID`
    /// filled in. A last line cut short (the program died while writing it) is left out; any
    /// other line that does not decode is an error.
    public static func read(at path: String) throws -> [RunLogEvent] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try decode(lines: data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true), toleratingCutLastLine: true)
    }

    /// Decodes run-log lines; fills in `runID` from the run-started or run-finished event.
    static func decode(lines: [Data.SubSequence], toleratingCutLastLine: Bool) throws -> [RunLogEvent] {
        var events: [RunLogEvent] = []
        events.reserveCapacity(lines.count)
        for (index, line) in lines.enumerated() {
            do {
                events.append(try decoder.decode(RunLogEvent.self, from: Data(line)))
            } catch {
                if toleratingCutLastLine && index == lines.count - 1 { break }
                throw error
            }
        }
        let runID = events.first { !$0.runID.isEmpty }?.runID ?? ""
        for index in events.indices where events[index].runID.isEmpty { events[index].runID = runID }
        return events
    }

    /// The run-started and run-finished events of the log at `path`, reading its first and last
    /// lines only (a few KB whatever the run's size): what `dataflow runs list`, the end-of-run
    /// summary and resumed runs need. `finished` is nil for a run that did not finish (it still
    /// runs, or its program died).
    public static func readEnds(at path: String) throws -> (started: RunLogEvent?, finished: RunLogEvent?) {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        guard size > 0 else { return (nil, nil) }
        // The first line.
        try handle.seek(toOffset: 0)
        var head = Data()
        while !head.contains(UInt8(ascii: "\n")), let chunk = try handle.read(upToCount: 64 << 10), !chunk.isEmpty {
            head.append(chunk)
        }
        let firstLine = head.split(separator: UInt8(ascii: "\n"), maxSplits: 1, omittingEmptySubsequences: true).first
        let started = firstLine.flatMap { try? decoder.decode(RunLogEvent.self, from: Data($0)) }
        // The last complete line: read backwards in growing chunks until one holds a newline
        // before the last line.
        var chunkSize: UInt64 = 64 << 10
        var finished: RunLogEvent?
        while true {
            let offset = size > chunkSize ? size - chunkSize : 0
            try handle.seek(toOffset: offset)
            let tail = try handle.readToEnd() ?? Data()
            var lines = tail.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
            if offset > 0 && lines.count < 2 && chunkSize < size {
                chunkSize *= 4
                continue
            }
            if offset > 0 { lines.removeFirst() }  // may start mid-line
            // The last line, or the one before it if the last was cut short.
            for line in lines.suffix(2).reversed() {
                if let event = try? decoder.decode(RunLogEvent.self, from: Data(line)) {
                    if event.kind == .runFinished { finished = event }
                    break
                }
            }
            break
        }
        if var event = finished, event.runID.isEmpty, let runID = started?.runID {
            event.runID = runID
            finished = event
        }
        return (started, finished)
    }

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return decoder
    }()
}

/// One line of the run log.
public struct RunLogEvent: Codable, Sendable, Equatable {  // `details` is copied on write
    public enum Kind: String, Codable, Sendable {
        case runStarted = "run-started"
        case attempt
        case valueFreed = "value-freed"
        /// A task runs again to recompute a value of its that a consumer found lost; `message`
        /// says which value, why, and for whom.
        case recompute
        /// A task was not run (`RunOptions.resume`): its kept result is current (`message` says
        /// from which run and file), or nothing that runs needs it.
        case reused
        case runFinished = "run-finished"
    }

    public var kind: Kind
    public var time: Date
    public var runID: String
    /// For attempts and values.
    public var task: String?
    /// Every other field, in one object (copied before a write when shared): a value-freed
    /// event has none, so that the million such events a gather of a million values makes at
    /// once take about 60 bytes each, not 600.
    private var details: _RunLogEventDetails?

    private mutating func uniqueDetails() -> _RunLogEventDetails {
        if details == nil {
            details = _RunLogEventDetails()
        } else if !isKnownUniquelyReferenced(&details) {
            details = details!.copy()
        }
        return details!
    }

    public static func == (left: RunLogEvent, right: RunLogEvent) -> Bool {
        left.kind == right.kind && left.time == right.time && left.runID == right.runID && left.task == right.task
            && (left.details ?? _RunLogEventDetails.empty).sameFields(as: right.details ?? _RunLogEventDetails.empty)
    }
    /// The executor's name in the run (`default`, or its key in `RunOptions.executors`).
    public var executor: String? {
        get { details?.executor }
        set { if newValue != nil || details != nil { uniqueDetails().executor = newValue } }
    }
    /// Where the attempt ran (a host name), when the executor says.
    public var node: String? {
        get { details?.node }
        set { if newValue != nil || details != nil { uniqueDetails().node = newValue } }
    }
    /// The worker's exit status or the signal that ended it, when the executor says.
    public var exitStatus: Int? {
        get { details?.exitStatus }
        set { if newValue != nil || details != nil { uniqueDetails().exitStatus = newValue } }
    }
    public var signal: Int? {
        get { details?.signal }
        set { if newValue != nil || details != nil { uniqueDetails().signal = newValue } }
    }
    /// The engine's final state (e.g. a batch system's job state), when the executor says.
    public var engineState: String? {
        get { details?.engineState }
        set { if newValue != nil || details != nil { uniqueDetails().engineState = newValue } }
    }
    public var attempt: Int? {
        get { details?.attempt }
        set { if newValue != nil || details != nil { uniqueDetails().attempt = newValue } }
    }
    public var start: Date? {
        get { details?.start }
        set { if newValue != nil || details != nil { uniqueDetails().start = newValue } }
    }
    public var end: Date? {
        get { details?.end }
        set { if newValue != nil || details != nil { uniqueDetails().end = newValue } }
    }
    public var outcome: AttemptOutcome? {
        get { details?.outcome }
        set { if newValue != nil || details != nil { uniqueDetails().outcome = newValue } }
    }
    public var message: String? {
        get { details?.message }
        set { if newValue != nil || details != nil { uniqueDetails().message = newValue } }
    }
    public var bytesIn: Int? {
        get { details?.bytesIn }
        set { if newValue != nil || details != nil { uniqueDetails().bytesIn = newValue } }
    }
    public var bytesOut: Int? {
        get { details?.bytesOut }
        set { if newValue != nil || details != nil { uniqueDetails().bytesOut = newValue } }
    }
    /// Where the output went and why (policy, files, reason).
    public var value: Materializer.ValueRecord? {
        get { details?.value }
        set { if newValue != nil || details != nil { uniqueDetails().value = newValue } }
    }
    public var logFile: String? {
        get { details?.logFile }
        set { if newValue != nil || details != nil { uniqueDetails().logFile = newValue } }
    }
    /// For run-started / run-finished.
    public var taskCount: Int? {
        get { details?.taskCount }
        set { if newValue != nil || details != nil { uniqueDetails().taskCount = newValue } }
    }
    public var succeeded: Int? {
        get { details?.succeeded }
        set { if newValue != nil || details != nil { uniqueDetails().succeeded = newValue } }
    }
    public var failed: Int? {
        get { details?.failed }
        set { if newValue != nil || details != nil { uniqueDetails().failed = newValue } }
    }
    public var skipped: Int? {
        get { details?.skipped }
        set { if newValue != nil || details != nil { uniqueDetails().skipped = newValue } }
    }
    /// Tasks not run because their kept results were current, or nothing that ran needed them
    /// (`RunOptions.resume`).
    public var reused: Int? {
        get { details?.reused }
        set { if newValue != nil || details != nil { uniqueDetails().reused = newValue } }
    }
    /// The workflow's name (on run-started).
    public var workflow: String? {
        get { details?.workflow }
        set { if newValue != nil || details != nil { uniqueDetails().workflow = newValue } }
    }
    /// What made a succeeded or reused task's result what it is (`RunOptions.resume` compares it).
    public var lineage: TaskLineage? {
        get { details?.lineage }
        set { if newValue != nil || details != nil { uniqueDetails().lineage = newValue } }
    }
    /// On run-finished, the run's summary (so that the end-of-run summary, `dataflow runs list`
    /// and the first screen of `runs show` read the log's last line, not all of it): the
    /// results (the first `summaryLimit`) and how many there are, the executors that ran
    /// attempts, the first failures, and where the values ended. `start` and `end` are the run's.
    public var results: [ResultEntry]? {
        get { details?.results }
        set { if newValue != nil || details != nil { uniqueDetails().results = newValue } }
    }
    public var resultCount: Int? {
        get { details?.resultCount }
        set { if newValue != nil || details != nil { uniqueDetails().resultCount = newValue } }
    }
    public var executors: [String]? {
        get { details?.executors }
        set { if newValue != nil || details != nil { uniqueDetails().executors = newValue } }
    }
    public var failures: [FailureEntry]? {
        get { details?.failures }
        set { if newValue != nil || details != nil { uniqueDetails().failures = newValue } }
    }
    public var valueCounts: ValueCounts? {
        get { details?.valueCounts }
        set { if newValue != nil || details != nil { uniqueDetails().valueCounts = newValue } }
    }

    /// How many results and failures the run-finished summary lists at most.
    public static let summaryLimit = 100

    /// One result in the run-finished summary.
    public struct ResultEntry: Codable, Sendable, Equatable {
        public var task: String
        public var byteCount: Int
        /// Files its policy kept it in (under `values/`).
        public var files: [String]?
        /// For a result a resumed run reused: the run that made it, and the file it came from.
        public var fromRun: String?
        public var keptFile: String?

        public init(task: String, byteCount: Int, files: [String]? = nil, fromRun: String? = nil, keptFile: String? = nil) {
            self.task = task
            self.byteCount = byteCount
            self.files = files
            self.fromRun = fromRun
            self.keptFile = keptFile
        }
    }

    /// One task that failed for good, in the run-finished summary.
    public struct FailureEntry: Codable, Sendable, Equatable {
        public var task: String
        public var outcome: AttemptOutcome
        public var attempts: Int
        public var message: String

        public init(task: String, outcome: AttemptOutcome, attempts: Int, message: String) {
            self.task = task
            self.outcome = outcome
            self.attempts = attempts
            self.message = message
        }
    }

    /// Where a run's values were when it ended: still in memory (results, values of a run that
    /// stopped early), kept in files by a policy, freed.
    public struct ValueCounts: Codable, Sendable, Equatable {
        public var inMemory: Int
        public var inFiles: Int
        public var freed: Int

        public init(inMemory: Int, inFiles: Int, freed: Int) {
            self.inMemory = inMemory
            self.inFiles = inFiles
            self.freed = freed
        }
    }

    init(kind: Kind, runID: String, time: Date = Date()) {
        self.kind = kind
        self.time = time
        self.runID = runID
    }

    private enum CodingKeys: String, CodingKey {
        case kind, time, runID, task, executor, node, exitStatus, signal, engineState, attempt, start, end, outcome, message
        case bytesIn, bytesOut, value, logFile, taskCount, succeeded, failed, skipped, reused, workflow, lineage
        case results, resultCount, executors, failures, valueCounts
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        try container.encode(time, forKey: .time)
        try container.encode(runID, forKey: .runID)
        try container.encodeIfPresent(task, forKey: .task)
        try container.encodeIfPresent(executor, forKey: .executor)
        try container.encodeIfPresent(node, forKey: .node)
        try container.encodeIfPresent(exitStatus, forKey: .exitStatus)
        try container.encodeIfPresent(signal, forKey: .signal)
        try container.encodeIfPresent(engineState, forKey: .engineState)
        try container.encodeIfPresent(attempt, forKey: .attempt)
        try container.encodeIfPresent(start, forKey: .start)
        try container.encodeIfPresent(end, forKey: .end)
        try container.encodeIfPresent(outcome, forKey: .outcome)
        try container.encodeIfPresent(message, forKey: .message)
        try container.encodeIfPresent(bytesIn, forKey: .bytesIn)
        try container.encodeIfPresent(bytesOut, forKey: .bytesOut)
        try container.encodeIfPresent(value, forKey: .value)
        try container.encodeIfPresent(logFile, forKey: .logFile)
        try container.encodeIfPresent(taskCount, forKey: .taskCount)
        try container.encodeIfPresent(succeeded, forKey: .succeeded)
        try container.encodeIfPresent(failed, forKey: .failed)
        try container.encodeIfPresent(skipped, forKey: .skipped)
        try container.encodeIfPresent(reused, forKey: .reused)
        try container.encodeIfPresent(workflow, forKey: .workflow)
        try container.encodeIfPresent(lineage, forKey: .lineage)
        try container.encodeIfPresent(results, forKey: .results)
        try container.encodeIfPresent(resultCount, forKey: .resultCount)
        try container.encodeIfPresent(executors, forKey: .executors)
        try container.encodeIfPresent(failures, forKey: .failures)
        try container.encodeIfPresent(valueCounts, forKey: .valueCounts)
    }

    /// Reads what `jsonLine` writes. Lines leave out what they share with the run (`runID`
    /// outside run-started and run-finished; an attempt's `time`, which is its `end`; a
    /// value's `name`, which is its task's): `RunLog.read` fills them in.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        kind = try container.decode(Kind.self, forKey: .kind)
        runID = try container.decodeIfPresent(String.self, forKey: .runID) ?? ""
        task = try container.decodeIfPresent(String.self, forKey: .task)
        time = Date(timeIntervalSince1970: 0)  // below, once `end` is known
        executor = try container.decodeIfPresent(String.self, forKey: .executor)
        node = try container.decodeIfPresent(String.self, forKey: .node)
        exitStatus = try container.decodeIfPresent(Int.self, forKey: .exitStatus)
        signal = try container.decodeIfPresent(Int.self, forKey: .signal)
        engineState = try container.decodeIfPresent(String.self, forKey: .engineState)
        attempt = try container.decodeIfPresent(Int.self, forKey: .attempt)
        start = try container.decodeIfPresent(Date.self, forKey: .start)
        end = try container.decodeIfPresent(Date.self, forKey: .end)
        time = try container.decodeIfPresent(Date.self, forKey: .time) ?? end ?? start ?? Date(timeIntervalSince1970: 0)
        outcome = try container.decodeIfPresent(AttemptOutcome.self, forKey: .outcome)
        message = try container.decodeIfPresent(String.self, forKey: .message)
        bytesIn = try container.decodeIfPresent(Int.self, forKey: .bytesIn)
        bytesOut = try container.decodeIfPresent(Int.self, forKey: .bytesOut)
        value = try container.decodeIfPresent(Materializer.ValueRecord.self, forKey: .value)
        if var record = value, record.name.isEmpty, let task {
            record.name = task
            value = record
        }
        logFile = try container.decodeIfPresent(String.self, forKey: .logFile)
        taskCount = try container.decodeIfPresent(Int.self, forKey: .taskCount)
        succeeded = try container.decodeIfPresent(Int.self, forKey: .succeeded)
        failed = try container.decodeIfPresent(Int.self, forKey: .failed)
        skipped = try container.decodeIfPresent(Int.self, forKey: .skipped)
        reused = try container.decodeIfPresent(Int.self, forKey: .reused)
        workflow = try container.decodeIfPresent(String.self, forKey: .workflow)
        lineage = try container.decodeIfPresent(TaskLineage.self, forKey: .lineage)
        results = try container.decodeIfPresent([ResultEntry].self, forKey: .results)
        resultCount = try container.decodeIfPresent(Int.self, forKey: .resultCount)
        executors = try container.decodeIfPresent([String].self, forKey: .executors)
        failures = try container.decodeIfPresent([FailureEntry].self, forKey: .failures)
        valueCounts = try container.decodeIfPresent(ValueCounts.self, forKey: .valueCounts)
    }

    /// An event for tests and tools, at a time that survives the run log's seconds encoding.
    public static func testing(kind: Kind, runID: String) -> RunLogEvent {
        var event = RunLogEvent(kind: kind, runID: runID)
        event.time = Date(timeIntervalSince1970: 1_763_758_000.5)
        return event
    }
}

/// The fields of a `RunLogEvent` beyond its kind, time, run and task.
///
/// - Note: Not thread-safe by itself: an event writes to it only while it holds the only
///   reference (`isKnownUniquelyReferenced`), and copies it first otherwise; so events that
///   share one may be read from any thread.
final class _RunLogEventDetails: @unchecked Sendable {
    var executor: String?
    var node: String?
    var exitStatus: Int?
    var signal: Int?
    var engineState: String?
    var attempt: Int?
    var start: Date?
    var end: Date?
    var outcome: AttemptOutcome?
    var message: String?
    var bytesIn: Int?
    var bytesOut: Int?
    var value: Materializer.ValueRecord?
    var logFile: String?
    var taskCount: Int?
    var succeeded: Int?
    var failed: Int?
    var skipped: Int?
    var reused: Int?
    var workflow: String?
    var lineage: TaskLineage?
    var results: [RunLogEvent.ResultEntry]?
    var resultCount: Int?
    var executors: [String]?
    var failures: [RunLogEvent.FailureEntry]?
    var valueCounts: RunLogEvent.ValueCounts?

    static let empty = _RunLogEventDetails()

    init() {}

    func copy() -> _RunLogEventDetails {
        let copy = _RunLogEventDetails()
        copy.executor = executor
        copy.node = node
        copy.exitStatus = exitStatus
        copy.signal = signal
        copy.engineState = engineState
        copy.attempt = attempt
        copy.start = start
        copy.end = end
        copy.outcome = outcome
        copy.message = message
        copy.bytesIn = bytesIn
        copy.bytesOut = bytesOut
        copy.value = value
        copy.logFile = logFile
        copy.taskCount = taskCount
        copy.succeeded = succeeded
        copy.failed = failed
        copy.skipped = skipped
        copy.reused = reused
        copy.workflow = workflow
        copy.lineage = lineage
        copy.results = results
        copy.resultCount = resultCount
        copy.executors = executors
        copy.failures = failures
        copy.valueCounts = valueCounts
        return copy
    }

    func sameFields(as other: _RunLogEventDetails) -> Bool {
        executor == other.executor && node == other.node && exitStatus == other.exitStatus && signal == other.signal && engineState == other.engineState && attempt == other.attempt && start == other.start && end == other.end && outcome == other.outcome && message == other.message && bytesIn == other.bytesIn && bytesOut == other.bytesOut && value == other.value && logFile == other.logFile && taskCount == other.taskCount && succeeded == other.succeeded && failed == other.failed && skipped == other.skipped && reused == other.reused && workflow == other.workflow && lineage == other.lineage && results == other.results && resultCount == other.resultCount && executors == other.executors && failures == other.failures && valueCounts == other.valueCounts
    }
}

/// A swift-log handler that writes an attempt's log lines to its log file.
/// (Dates in its lines are ISO 8601 for people; the run log's are seconds since 1970.)
struct _AttemptLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    let sink: _LogSink

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        sink.write("\(ISO8601DateFormatter().string(from: Date())) \(event.level) \(event.message)\n")
    }
}

/// An attempt's append-only log file, opened on first write; most attempts never write, and
/// pay for nothing but this object. Each line goes out in one `write` (O_APPEND), so lines from
/// threads of the attempt, and the standard output of a pool worker, do not tear.
///
/// - Note: Thread-safe: the file descriptor is published once, atomically.
final class _LogSink: Sendable {
    private let directory: String
    private let taskName: String
    private let attempt: Int
    /// -1 until the file is opened.
    private let descriptor = Atomic<Int32>(-1)

    init(directory: String, taskName: String, attempt: Int) {
        self.directory = directory
        self.taskName = taskName
        self.attempt = attempt
    }

    /// `<directory>/<task>.<attempt>.log`.
    var path: String { "\(directory)/\(RunLog.safeFileName(taskName)).\(attempt).log" }

    /// Whether anything was written (so the file exists), without asking the file system.
    var wroteAnything: Bool { descriptor.load(ordering: .acquiring) >= 0 }

    func write(_ text: String) {
        var fd = descriptor.load(ordering: .acquiring)
        if fd < 0 {
            // Append, never replace: a pool worker's standard output may already go to this file.
            let opened = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            guard opened >= 0 else { return }
            let (exchanged, current) = descriptor.compareExchange(expected: -1, desired: opened, ordering: .acquiringAndReleasing)
            if exchanged {
                fd = opened
            } else {
                close(opened)  // another thread opened it first
                fd = current
            }
        }
        var line = text
        _ = line.withUTF8 { _Sys.writeAll(fd, UnsafeRawBufferPointer($0)) }
    }

    deinit {
        let fd = descriptor.load(ordering: .acquiring)
        if fd >= 0 { close(fd) }
    }
}

/// The run log's queue and file. Events wait in `pending` (guarded by `pendingLock`) until the
/// background thread, or a `drain()` call, formats and writes them (serialised by `writeLock`,
/// so lines keep their queue order).
///
/// A lane hands over its events as a whole array (`enqueue(moving:)`): the array moves into the
/// queue, and the lane gets an empty one with room back, so no event is copied on the way.
///
/// - Note: Thread-safe. The background thread holds this object, not the `RunLog`, and ends
///   after `close()`.
final class _RunLogWriter: @unchecked Sendable {  // `pending*`, `spare`, `stopped` under `pendingLock`; `file`, `closed`, `lines` under `writeLock`
    private let pendingLock = _AdaptiveLock()
    /// Queued events, in batches, oldest first.
    private var pending: [[RunLogEvent]] = []
    private var pendingCount = 0
    /// Emptied batch arrays (with their capacity) to give back to producers.
    private var spare: [[RunLogEvent]] = []
    private var stopped = false
    private let writeLock = NSLock()
    private let file: FileHandle
    private var closed = false
    private var lines = _ByteBuffer()
    /// A producer that finds this many events queued writes them itself (backpressure).
    private static let queueLimit = 65_536
    private static let pollIntervalMicroseconds: UInt32 = 2_000

    init(file: FileHandle) {
        self.file = file
    }

    deinit {
        lines.deallocate()
    }

    func startBackgroundThread(name: String) {
        let thread = Thread { [self] in
            while !pendingLock.withLock({ stopped }) {
                usleep(Self.pollIntervalMicroseconds)
                drain()
            }
        }
        thread.name = name
        thread.start()
    }

    func enqueue(_ events: some Collection<RunLogEvent>) {
        var batch = Array(events)
        enqueue(moving: &batch)
    }

    /// Queues `events` (in order, together) and leaves an empty array in their place.
    func enqueue(moving events: inout [RunLogEvent]) {
        guard !events.isEmpty else { return }
        let full = pendingLock.withLock { () -> Bool in
            pendingCount += events.count
            pending.append(events)
            events = spare.popLast() ?? []
            return pendingCount >= Self.queueLimit
        }
        if full { drain() }
    }

    /// Formats and writes every queued event.
    func drain() {
        writeLock.withLock {
            guard !closed else { return }
            var batches: [[RunLogEvent]] = []
            pendingLock.withLock {
                swap(&batches, &pending)
                pendingCount = 0
            }
            guard !batches.isEmpty else { return }
            lines.removeAll()
            for index in batches.indices {
                batches[index].withUnsafeBufferPointer { events in
                    for position in events.indices { events[position].jsonLine(into: &lines) }
                }
                batches[index].removeAll(keepingCapacity: true)
            }
            _ = _Sys.writeAll(file.fileDescriptor, lines.bytes)
            pendingLock.withLock {
                if spare.count < 16 { spare.append(contentsOf: batches.prefix(16 - spare.count)) }
                if pending.isEmpty {
                    batches.removeAll(keepingCapacity: true)
                    swap(&batches, &pending)  // keeps the outer array's room too
                }
            }
        }
    }

    /// Writes what is queued, closes the file and stops the background thread.
    func close() {
        pendingLock.withLock { stopped = true }
        drain()
        writeLock.withLock {
            closed = true
            try? file.close()
        }
    }
}
