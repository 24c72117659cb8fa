import Dataflow
import Foundation
import Materialize

/// A run directory read back from its run log (`RunLog.read(at:)`): when it ran, how it ended,
/// and every task's attempts. What `runs list`, `runs show` and `demo` print.
struct RunSummary: Codable, Sendable {
    /// One task: all its attempts, the last one's outcome, and where its value went.
    struct TaskSummary: Codable, Sendable {
        var name: String
        var attempts: Int
        var outcome: String
        var start: Date?
        var end: Date?
        /// Seconds from the first attempt's start to the last attempt's end.
        var durationSeconds: Double?
        var bytesIn: Int
        var bytesOut: Int?
        var executor: String?
        var message: String?
        /// For a task a resumed run reused: the run that made its result.
        var fromRun: String?
        /// Policy, files and reason of the value, from the last attempt that produced one.
        var value: Materializer.ValueRecord?
        /// Whether the value was later freed from memory (a `value-freed` event).
        var freed: Bool
        var logFiles: [String]
    }

    var runID: String
    var directory: String
    var started: Date?
    var finished: Date?
    /// `succeeded`, `failed`, `cancelled`, or `unfinished` (no run-finished event: still running or killed).
    var outcome: String
    var taskCount: Int?
    var succeeded: Int?
    var failed: Int?
    var skipped: Int?
    /// The run-started event's message (workflow, store, concurrency).
    var detail: String?
    var tasks: [TaskSummary]

    var durationSeconds: Double? {
        guard let started, let finished else { return nil }
        return finished.timeIntervalSince(started)
    }

    /// The first failures, from the run's summary (a run read with `firstTasks`).
    var failures: [RunLogEvent.FailureEntry] = []
    /// Tasks the summary leaves out (a run read with `firstTasks` whose log has more).
    var tasksLeftOut = 0

    /// Reads `<directory>/run.jsonl` whole.
    /// - Throws: `CommandError.runLogUnreadable` naming the file.
    init(directory: String) throws(CommandError) {
        let path = RunDirectory(path: directory).logPath
        let events: [RunLogEvent]
        do { events = try RunLog.read(at: path) } catch {
            throw .runLogUnreadable(path: path, reason: "\(error)")
        }
        self.init(events: events, directory: directory)
    }

    /// The run from its log's first and last lines only (`RunLog.readEnds`): when it ran, how it
    /// ended, its counts, no tasks. What `runs list` reads, whatever the run's size.
    /// - Throws: `CommandError.runLogUnreadable` naming the file.
    init(endsOf directory: String) throws(CommandError) {
        let path = RunDirectory(path: directory).logPath
        do {
            let (started, finished) = try RunLog.readEnds(at: path)
            self.init(events: [started, finished].compactMap { $0 }, directory: directory)
            failures = finished?.failures ?? []
        } catch {
            throw .runLogUnreadable(path: path, reason: "\(error)")
        }
    }

    /// The run from its first and last lines (`ends`, read with `init(endsOf:)`), and the tasks
    /// of its first `limit` task lines: the first screen of `runs show` for a run too large to
    /// read whole.
    /// - Throws: `CommandError.runLogUnreadable` naming the file.
    init(directory: String, firstTasks limit: Int, ends: RunSummary) throws(CommandError) {
        self = ends
        let path = RunDirectory(path: directory).logPath
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .runLogUnreadable(path: path, reason: "cannot open it") }
        defer { try? handle.close() }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        var events: [RunLogEvent] = []
        var names = Set<String>()
        var pending = Data()
        reading: while let chunk = try? handle.read(upToCount: 256 << 10), !chunk.isEmpty {
            pending.append(chunk)
            guard let last = pending.lastIndex(of: UInt8(ascii: "\n")) else { continue }
            for line in pending[..<last].split(separator: UInt8(ascii: "\n")) {
                guard let event = try? decoder.decode(RunLogEvent.self, from: Data(line)) else { continue }
                if let task = event.task, event.kind == .attempt || event.kind == .reused {
                    if !names.contains(task) && names.count >= limit { break reading }
                    names.insert(task)
                }
                events.append(event)
            }
            pending = Data(pending[(last + 1)...])
        }
        let whole = RunSummary(events: events, directory: directory)
        tasks = whole.tasks
        tasksLeftOut = max(0, (taskCount ?? tasks.count) - tasks.count)
    }

    init(events: [RunLogEvent], directory: String) {
        self.directory = directory
        runID = events.first?.runID ?? (directory as NSString).lastPathComponent
        outcome = "unfinished"
        tasks = []
        var order: [String] = []
        var byName: [String: TaskSummary] = [:]
        for event in events {
            switch event.kind {
            case .runStarted:
                started = event.time
                taskCount = event.taskCount
                detail = event.message
            case .runFinished:
                finished = event.time
                outcome = event.message ?? ((event.failed ?? 0) > 0 ? "failed" : "succeeded")
                taskCount = event.taskCount ?? taskCount
                succeeded = event.succeeded
                failed = event.failed
                skipped = event.skipped
            case .attempt:
                guard let name = event.task else { continue }
                var task = byName[name] ?? {
                    order.append(name)
                    return TaskSummary(name: name, attempts: 0, outcome: "", bytesIn: 0, freed: false, logFiles: [])
                }()
                task.attempts += event.outcome == .skipped ? 0 : 1
                task.outcome = event.outcome?.rawValue ?? "unknown"
                if task.start == nil || (event.start.map { $0 < task.start! } ?? false) { task.start = event.start ?? task.start }
                if let end = event.end { task.end = max(task.end ?? end, end) }
                if let start = task.start, let end = task.end { task.durationSeconds = end.timeIntervalSince(start) }
                task.bytesIn = event.bytesIn ?? task.bytesIn
                task.bytesOut = event.bytesOut ?? task.bytesOut
                task.executor = event.executor ?? task.executor
                task.message = event.message
                task.value = event.value ?? task.value
                if let log = event.logFile { task.logFiles.append(log) }
                byName[name] = task
            case .reused:
                guard let name = event.task else { continue }
                if byName[name] == nil { order.append(name) }
                var task = TaskSummary(name: name, attempts: 0, outcome: "reused", bytesIn: 0, freed: false, logFiles: [])
                task.message = event.message
                task.fromRun = event.lineage?.fromRun
                task.value = event.value
                byName[name] = task
            case .recompute:
                guard let name = event.task, var task = byName[name] else { continue }
                task.message = event.message
                byName[name] = task
            case .valueFreed:
                guard let name = event.task ?? event.value?.name else { continue }
                if var task = byName[name] {
                    task.freed = true
                    if let value = event.value { task.value = value }
                    byName[name] = task
                }
            }
        }
        tasks = order.compactMap { byName[$0] }
    }

    /// Where a task's value went, in a few words: `memory`, `freed`, or the files, plus the policy.
    static func placement(of task: TaskSummary) -> String {
        if task.outcome == "reused" {
            // Not run (--resume): restored from an earlier run's kept file, or not needed.
            return task.value != nil ? "reused: restored from \(task.fromRun.map { "run \($0)" } ?? "an earlier run")" : "reused: not needed"
        }
        guard let value = task.value else { return "-" }
        var place: String
        if !value.files.isEmpty {
            place = value.files.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")
        } else if task.freed || !value.inMemory {
            place = "freed"
        } else {
            place = "memory"
        }
        place += " (\(value.policy))"
        return place
    }
}
