import Dataflow
import Foundation
import ObjectStore
import Synchronization
import Testing

/// A fresh work directory, removed after `body`.
func withWorkdir<R>(_ body: (String) async throws -> R) async throws -> R {
    let path = NSTemporaryDirectory() + "dataflow-wf-\(getpid())-\(ObjectID.random().description.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

@discardableResult
func expectDataflowError<R>(_ code: DataflowError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> R) async -> DataflowError? {
    do {
        _ = try await body()
        Issue.record("expected DataflowError.\(code), got success", sourceLocation: sourceLocation)
    } catch let error as DataflowError {
        #expect(error.code == code, "expected .\(code), got \(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected DataflowError.\(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Counts how many tasks run at once, and the most ever.
final class Concurrency: Sendable {
    private let state = Mutex((now: 0, most: 0))
    func enter() { state.withLock { $0.now += 1; $0.most = max($0.most, $0.now) } }
    func leave() { state.withLock { $0.now -= 1 } }
    var most: Int { state.withLock { $0.most } }
}

/// A counter shared by attempts.
final class Counter: Sendable {
    private let value = Mutex(0)
    @discardableResult func next() -> Int { value.withLock { $0 += 1; return $0 } }
    var current: Int { value.withLock { $0 } }
}

struct Boom: Error, CustomStringConvertible {
    var description: String { "boom" }
}

/// A run log in a fresh directory, removed after `body`.
func withTemporaryRunLog(_ body: (RunLog, String) throws -> Void) throws {
    let directory = NSTemporaryDirectory() + "dataflow-runlog-\(getpid())-\(ObjectID.random().description.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let log = try RunLog(testingDirectory: directory)
    try body(log, "\(directory)/run.jsonl")
}
