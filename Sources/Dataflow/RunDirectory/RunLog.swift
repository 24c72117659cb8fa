import Foundation
import Logging
import Materialize
import ObjectStore

/// The run directory `<workdir>/runs/<run id>/`:
///
///     run.jsonl                  the run log: one JSON object per line (see `RunLogEvent`)
///     logs/<task>.<attempt>.log  what each attempt logged through `TaskContext.logger`
///     values/                    values written for `always` and `final` leaves (spill files)
///     exchange/                  values written for consumers that read files
///
/// - Note: Thread-safe: appends are serialised by a lock.
public final class RunLog: @unchecked Sendable {  // `file` is only touched under `lock`
    public let directory: String
    public let logPath: String
    public let logsDirectory: String

    private let lock = NSLock()
    private let file: FileHandle
    /// Lines not yet written: one write per 64 KiB rather than one syscall per event.
    private var buffer: [UInt8] = []
    private static let flushThreshold = 64 * 1024

    /// A run log in `directory`, for tools and tests that write one outside a run.
    public convenience init(testingDirectory directory: String) throws(DataflowError) {
        try self.init(directory: directory)
    }

    init(directory: String) throws(DataflowError) {
        self.directory = directory
        self.logPath = "\(directory)/run.jsonl"
        self.logsDirectory = "\(directory)/logs"
        do {
            for path in [directory, "\(directory)/logs"] {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
            guard FileManager.default.createFile(atPath: "\(directory)/run.jsonl", contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw DataflowError(.runDirectory, "cannot create run log '\(directory)/run.jsonl'")
            }
            file = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/run.jsonl"))
        } catch let error as DataflowError {
            throw error
        } catch {
            throw DataflowError(.runDirectory, "cannot create run directory '\(directory)': \(error)")
        }
        buffer.reserveCapacity(Self.flushThreshold + 4096)
    }

    deinit {
        flush()
        try? file.close()
    }

    /// Appends one event as a line of JSON (buffered; see `flush`).
    public func append(_ event: RunLogEvent) {
        lock.withLock {
            event.jsonLine(into: &buffer)
            if buffer.count >= Self.flushThreshold { writeBuffer() }
        }
    }

    /// Writes buffered lines to the file. The scheduler flushes at the end of a run and after
    /// every event that ends or fails a task's last attempt, so a crash loses little.
    public func flush() {
        lock.withLock { writeBuffer() }
    }

    private func writeBuffer() {
        guard !buffer.isEmpty else { return }
        file.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }

    /// The path of an attempt's log file.
    func attemptLogPath(task: String, attempt: Int) -> String {
        "\(logsDirectory)/\(RunLog.safeFileName(task)).\(attempt).log"
    }

    static func safeFileName(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || "-_.[]".contains($0) ? $0 : "_" }.prefix(150))
    }

    /// Reads a run log back (for `dataflow runs show` and tests).
    public static func read(at path: String) throws -> [RunLogEvent] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try text.split(separator: "\n").map { try decoder.decode(RunLogEvent.self, from: Data($0.utf8)) }
    }
}

/// One line of the run log.
public struct RunLogEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case runStarted = "run-started"
        case attempt
        case valueFreed = "value-freed"
        case runFinished = "run-finished"
    }

    public var kind: Kind
    public var time: Date
    public var runID: String
    /// For attempts and values.
    public var task: String?
    public var executor: String?
    public var attempt: Int?
    public var start: Date?
    public var end: Date?
    public var outcome: AttemptOutcome?
    public var message: String?
    public var bytesIn: Int?
    public var bytesOut: Int?
    /// Where the output went and why (policy, files, reason).
    public var value: Materializer.ValueRecord?
    public var logFile: String?
    /// For run-started / run-finished.
    public var taskCount: Int?
    public var succeeded: Int?
    public var failed: Int?
    public var skipped: Int?

    init(kind: Kind, runID: String) {
        self.kind = kind
        self.time = Date()
        self.runID = runID
    }

    /// An event for tests and tools, at a time that survives the run log's seconds encoding.
    public static func testing(kind: Kind, runID: String) -> RunLogEvent {
        var event = RunLogEvent(kind: kind, runID: runID)
        event.time = Date(timeIntervalSince1970: 1_763_758_000.5)
        return event
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

/// An append-only log file, created on first write. Thread-safe (a lock).
final class _LogSink: @unchecked Sendable {  // `handle` is only touched under `lock`
    let path: String
    private let lock = NSLock()
    private var handle: FileHandle?

    init(path: String) { self.path = path }

    /// Whether anything was written (so the file exists), without asking the file system.
    var wroteAnything: Bool { lock.withLock { handle != nil } }

    func write(_ text: String) {
        lock.withLock {
            if handle == nil {
                _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
                handle = FileHandle(forWritingAtPath: path)
            }
            handle?.write(Data(text.utf8))
        }
    }

    deinit { try? handle?.close() }
}
