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
    public var logPath: String { "\(directory)/run.jsonl" }
    public var logsDirectory: String { "\(directory)/logs" }

    private let lock = NSLock()
    private let file: FileHandle
    private let encoder: JSONEncoder
    /// Lines not yet written: one write per 64 KiB rather than one syscall per event.
    private var buffer = Data()
    private static let flushThreshold = 64 * 1024

    init(directory: String) throws(DataflowError) {
        self.directory = directory
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
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
    }

    deinit {
        flush()
        try? file.close()
    }

    /// Appends one event as a line of JSON (buffered; see `flush`).
    func append(_ event: RunLogEvent) {
        lock.withLock {
            guard let line = try? encoder.encode(event) else { return }
            buffer.append(line)
            buffer.append(UInt8(ascii: "\n"))
            if buffer.count >= Self.flushThreshold { writeBuffer() }
        }
    }

    /// Writes buffered lines to the file. The scheduler flushes at the end of a run and after
    /// every event that ends or fails a task's last attempt, so a crash loses little.
    func flush() {
        lock.withLock { writeBuffer() }
    }

    private func writeBuffer() {
        guard !buffer.isEmpty else { return }
        file.write(buffer)
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
        decoder.dateDecodingStrategy = .iso8601
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
}

/// A swift-log handler that writes an attempt's log lines to its log file.
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
