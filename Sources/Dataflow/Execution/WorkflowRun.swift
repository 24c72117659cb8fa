import Foundation
import Materialize
import ObjectStore

/// A finished run: its id and directory, and typed access to the results the caller asked for
/// (every leaf by default). Results stay in the run's store while this object lives.
///
/// - Note: Thread-safe (immutable; reads go through the thread-safe store).
public final class WorkflowRun: @unchecked Sendable {  // immutable after init
    public let runID: String
    /// `<workdir>/runs/<run id>/`: the run log, attempt logs, materialized values.
    public let directory: String
    public let store: SharedObjectStore
    /// The run's spill manager: what it spilled and restored (`spilledObjectCount`, ...).
    public let spill: SpillManager
    let ownsStore: Bool
    let results: _RunResults
    /// Where every value went and why.
    public var records: [Materializer.ValueRecord] { materializer.records() }
    private let materializer: Materializer
    /// Tasks that failed for good (empty for a run that returned normally).
    public let failures: [DataflowError.TaskFailure]
    /// The run's run-finished event: counts, start and end, executors, results and where values
    /// ended (what the run log's last line says).
    public let summary: RunLogEvent

    init(runID: String, directory: String, store: SharedObjectStore, spill: SpillManager, ownsStore: Bool,
         results: _RunResults, materializer: Materializer, failures: [DataflowError.TaskFailure], summary: RunLogEvent) {
        self.summary = summary
        self.runID = runID
        self.directory = directory
        self.store = store
        self.spill = spill
        self.ownsStore = ownsStore
        self.results = results
        self.materializer = materializer
        self.failures = failures
    }

    deinit {
        // The embedded store goes with the run: its objects and its spill directory.
        if ownsStore { try? FileManager.default.removeItem(atPath: spill.directory) }
    }

    /// The run log's path.
    public var logPath: String { "\(directory)/run.jsonl" }

    /// Names of the tasks whose results are available.
    public var resultNames: [String] { results.names }

    /// The typed result of `task` (a view for tensors: no copy).
    /// - Throws: `.notARequestedResult` if it was not asked for or did not succeed; `.store`.
    public func result<Output: StoreValue>(_ task: TaskRef<Output>) throws(DataflowError) -> Output {
        try result(named: task.name, as: Output.self)
    }

    /// The result of the task named `name`, as a `V`.
    public func result<V: StoreValue>(named name: String, as type: V.Type = V.self) throws(DataflowError) -> V {
        let handle = try handle(named: name)
        do { return try handle.decode(as: type) } catch {
            var failure = DataflowError(.store, "result of task '\(name)': \(error.message)", task: name)
            failure.underlying = error
            throw failure
        }
    }

    /// A handle on the result of the task named `name`.
    public func handle(named name: String) throws(DataflowError) -> ObjectHandle {
        guard let id = results.id(named: name) else {
            throw DataflowError(.notARequestedResult, "task '\(name)' is not a result of run '\(runID)' (results: \(resultNames.joined(separator: ", ")))", task: name)
        }
        do { return try spill.get(id) } catch {
            var failure = DataflowError(.store, "result of task '\(name)': \(error.message)", task: name)
            failure.underlying = error
            throw failure
        }
    }
}

/// The object ids of a run's requested results that succeeded, looked up by task name when
/// asked (a fan-out of 100,000 leaves need not build a dictionary of them up front).
///
/// - Note: Immutable; thread-safe.
struct _RunResults: Sendable {
    let workflow: Workflow
    let outputs: [ObjectID?]
    /// By task index: the caller asked for this task's result.
    let isRequested: [Bool]

    func id(named name: String) -> ObjectID? {
        guard let index = workflow.index(of: name), index < isRequested.count, isRequested[index] else { return nil }
        return outputs[index]
    }

    /// Names of the requested results that succeeded, sorted.
    var names: [String] {
        isRequested.indices.compactMap { isRequested[$0] && outputs[$0] != nil ? workflow.nodes[$0].name : nil }.sorted()
    }
}
