import Logging
import Materialize
import ObjectStore

/// A graph of tasks: plain Swift functions whose typed inputs are other tasks' outputs.
///
///     let workflow = Workflow("train")
///     let data = workflow.task("load") { try loadFeatures() }                 // -> Tensor<Float>
///     let mean = workflow.task("mean", data) { x in x.reduce(0, +) / Float(x.count) }
///     let scaled = workflow.task("scale", data, mean) { x, m in try scale(x, by: m) }
///     let run = try await workflow.run()
///     let result: Tensor<Float> = try run.result(scaled)
///
/// Inputs are passed as values read from the shared object store: a `Tensor` input is a view of
/// the producer's bytes (no copy). A task's output goes into the store; a tensor the task made
/// with `TaskContext.current!.makeTensor(...)` is written there in place.
///
/// Building a workflow is not thread-safe (build it on one thread, as `main` does); running it
/// is. Each task has a unique name. A workflow is also the registry of its functions: a worker
/// process that builds the same workflow can run one named task of it.
public final class Workflow: @unchecked Sendable {  // mutated only while building, on one thread
    /// The workflow's name (used in run ids and logs).
    public let name: String
    /// The materialization policy of outputs whose task sets none.
    public var defaultPolicy: MaterializationPolicy
    /// Identifies this workflow instance, so that a reference from another one is caught.
    let id = ObjectID.random()
    private(set) var nodes: [_TaskNode] = []
    /// Task index by name (the first task of a name: duplicates are a validation error).
    private var indexByName: [String: Int] = [:]
    /// The first name given to two tasks, if any (found while adding; reported by `validate`).
    private(set) var firstDuplicateName: String?
    /// The first ordering edge asked for on a task of another workflow (reported by `validate`).
    private(set) var firstForeignDependency: (task: String, after: String)?

    public init(_ name: String, policy: MaterializationPolicy = .auto) {
        self.name = name
        self.defaultPolicy = policy
    }

    /// Number of tasks.
    public var taskCount: Int { nodes.count }

    /// Task names, in the order they were added.
    public var taskNames: [String] { nodes.map(\.name) }

    // MARK: Adding tasks

    /// Adds a task that runs `body` on the outputs of `inputs` (any number, any types).
    /// - Returns: a reference to the task's output, to pass to later tasks or ask for as a result.
    @discardableResult
    public func task<each Input: StoreValue, Output: StoreValue>(
        _ name: String, _ inputs: repeat TaskRef<each Input>, options: TaskOptions = TaskOptions(),
        _ body: @escaping @Sendable (repeat each Input) async throws -> Output
    ) -> TaskRef<Output> {
        var indices: [Int] = []
        var foreign: [String] = []
        for input in repeat each inputs {
            indices.append(input.index)
            if input.workflowID != id { foreign.append(input.name) }
        }
        let run: _TaskNode.Run = { handles, _ in
            var position = 0
            func next<T: StoreValue>(_ type: T.Type) throws -> T {
                defer { position += 1 }
                return try handles[position].decode(as: T.self)
            }
            let values = (repeat try next((each Input).self))
            return _TaskOutput(try await body(repeat each values))
        }
        return add(_TaskNode(name: name, inputs: indices, foreignInputs: foreign, options: options, outputTypeTag: Output.typeTag, run: run))
    }

    /// Fan-out: one task per element of `items`, named `name[0]`, `name[1]`, ...
    @discardableResult
    public func map<Item: Sendable, Output: StoreValue>(
        _ name: String, over items: [Item], options: TaskOptions = TaskOptions(),
        _ body: @escaping @Sendable (Item) async throws -> Output
    ) -> [TaskRef<Output>] {
        // One options box for all the tasks, and one closure each (a map may have a million).
        let shared = _TaskOptionsBox(options)
        let tag = Output.typeTag
        return items.enumerated().map { index, item in
            add(_TaskNode(
                name: "\(name)[\(index)]", inputs: [], foreignInputs: [], optionsBox: shared, outputTypeTag: tag,
                run: { _, _ in _TaskOutput(try await body(item)) }))
        }
    }

    /// Fan-out over the outputs of `inputs`: one task per input, named `name[0]`, `name[1]`, ...
    @discardableResult
    public func map<Input: StoreValue, Output: StoreValue>(
        _ name: String, over inputs: [TaskRef<Input>], options: TaskOptions = TaskOptions(),
        _ body: @escaping @Sendable (Input) async throws -> Output
    ) -> [TaskRef<Output>] {
        let shared = _TaskOptionsBox(options)
        let tag = Output.typeTag
        return inputs.enumerated().map { index, input in
            add(_TaskNode(
                name: "\(name)[\(index)]", inputs: [input.index], foreignInputs: input.workflowID != id ? [input.name] : [], optionsBox: shared,
                outputTypeTag: tag, run: { handles, _ in _TaskOutput(try await body(try handles[0].decode(as: Input.self))) }))
        }
    }

    /// Fan-in: one task that receives the outputs of all `inputs`, in order, as an array.
    @discardableResult
    public func gather<Input: StoreValue, Output: StoreValue>(
        _ name: String, _ inputs: [TaskRef<Input>], options: TaskOptions = TaskOptions(),
        _ body: @escaping @Sendable ([Input]) async throws -> Output
    ) -> TaskRef<Output> {
        let run: _TaskNode.Run = { handles, _ in
            _TaskOutput(try await body(try handles.map { try $0.decode(as: Input.self) }))
        }
        return add(_TaskNode(
            name: name, inputs: inputs.map(\.index), foreignInputs: inputs.filter { $0.workflowID != id }.map(\.name),
            options: options, outputTypeTag: Output.typeTag, run: run))
    }

    /// Makes `task` wait for `other` to succeed, without passing a value (an ordering edge).
    /// Both must be tasks of this workflow; otherwise `validate` (and so `run`) throws
    /// `.foreignInput` naming them.
    public func addDependency<A, B>(_ task: TaskRef<A>, after other: TaskRef<B>) {
        guard task.workflowID == id, nodes.indices.contains(task.index) else {
            if firstForeignDependency == nil {
                firstForeignDependency = (task: task.name, after: other.name)
            }
            return
        }
        nodes[task.index] = nodes[task.index].addingDependency(on: other.index, foreignName: other.workflowID != id ? other.name : nil)
    }

    func appendNode<Output>(_ node: _TaskNode) -> TaskRef<Output> { add(node) }

    /// Replaces the options of the task at `index` (a new node: a run started earlier keeps its graph).
    func replaceOptions(_ options: TaskOptions, at index: Int) {
        nodes[index] = nodes[index].replacingOptions(options)
    }

    private func add<Output>(_ node: _TaskNode) -> TaskRef<Output> {
        if indexByName[node.name] == nil {
            indexByName[node.name] = nodes.count
        } else if firstDuplicateName == nil {
            firstDuplicateName = node.name
        }
        nodes.append(node)
        return TaskRef(name: node.name, workflowID: id, index: nodes.count - 1)
    }

    /// The index of the task named `name`, if any.
    func index(of name: String) -> Int? {
        indexByName[name]
    }
}

/// A typed reference to a task's output. Cheap to copy; valid only with the workflow that made it.
public struct TaskRef<Output: StoreValue>: Sendable, Hashable, CustomStringConvertible {
    /// The task's name.
    public let name: String
    let workflowID: ObjectID
    let index: Int
    public var description: String { "TaskRef<\(Output.self)>(\(name))" }
}

/// A task with its types erased: what the scheduler runs.
///
/// - Note: Immutable (a change while building makes a new node, so a run started earlier keeps
///   the graph it validated); thread-safe. A class, so that the scheduler's many looks at a node
///   cost one reference count, not one per field.
final class _TaskNode: Sendable {
    typealias Run = @Sendable (_ inputs: [ObjectHandle], _ context: TaskContext) async throws -> _TaskOutput

    let name: String
    /// Data inputs, by task index, in parameter order.
    let inputs: [Int]
    /// Inputs or ordering edges that point into another workflow (a validation error).
    let foreignInputs: [String]
    /// Its options, in a box that the tasks of one `map` share (one copy for a million tasks).
    let optionsBox: _TaskOptionsBox
    var options: TaskOptions { optionsBox.options }
    let outputTypeTag: String
    let run: Run
    /// Ordering-only dependencies, by task index.
    let after: [Int]
    /// A shell task: its inputs are handed over as files (`TaskContext.inputFiles`).
    let isShell: Bool
    /// Every task this one waits for (data and ordering), without duplicates.
    let dependencies: [Int]
    /// A shell task's command and input variables (part of its definition for re-runs).
    let command: String?

    convenience init(name: String, inputs: [Int], foreignInputs: [String], options: TaskOptions, outputTypeTag: String,
                     after: [Int] = [], isShell: Bool = false, command: String? = nil, run: @escaping Run) {
        self.init(
            name: name, inputs: inputs, foreignInputs: foreignInputs, optionsBox: _TaskOptionsBox(options), outputTypeTag: outputTypeTag,
            after: after, isShell: isShell, command: command, run: run)
    }

    init(name: String, inputs: [Int], foreignInputs: [String], optionsBox: _TaskOptionsBox, outputTypeTag: String,
         after: [Int] = [], isShell: Bool = false, command: String? = nil, run: @escaping Run) {
        self.command = command
        self.name = name
        self.inputs = inputs
        self.foreignInputs = foreignInputs
        self.optionsBox = optionsBox
        self.outputTypeTag = outputTypeTag
        self.run = run
        self.after = after
        self.isShell = isShell
        self.dependencies = after.isEmpty ? inputs : Array(Set(inputs + after)).sorted()
    }

    /// This node with other options.
    func replacingOptions(_ options: TaskOptions) -> _TaskNode {
        _TaskNode(
            name: name, inputs: inputs, foreignInputs: foreignInputs, options: options, outputTypeTag: outputTypeTag, after: after,
            isShell: isShell, command: command, run: run)
    }

    /// This node with an ordering edge to `index` (and `foreignName` if that task belongs to
    /// another workflow).
    func addingDependency(on index: Int, foreignName: String?) -> _TaskNode {
        _TaskNode(
            name: name, inputs: inputs, foreignInputs: foreignInputs + (foreignName.map { [$0] } ?? []), optionsBox: optionsBox,
            outputTypeTag: outputTypeTag, after: after + [index], isShell: isShell, command: command, run: run)
    }
}

/// A task's options, shared by reference: the tasks of one `map` hold one box.
///
/// - Note: Immutable; thread-safe.
final class _TaskOptionsBox: Sendable {
    let options: TaskOptions
    init(_ options: TaskOptions) { self.options = options }
}

/// A task's return value, before it goes into the store.
struct _TaskOutput: @unchecked Sendable {  // the value is handed from the task to the scheduler once
    let value: any StoreValue
    init(_ value: any StoreValue) { self.value = value }

    /// The store object already holding the value (a tensor made in the store), if any.
    func existingHandle(in store: SharedObjectStore) -> ObjectHandle? {
        guard let handle = value.storeHandle, handle.store === store else { return nil }
        return handle
    }
}

/// What a running task can reach: its name and attempt, the run's store (to write its output in
/// place), and a logger whose lines go to the attempt's log file.
///
/// - Note: A value type; thread-safe. `TaskContext.current` is set while a task's body runs.
public struct TaskContext: Sendable {
    /// The fields, in one object: a context is copied several times per attempt, and a copy is
    /// then one reference count.
    private let storage: _TaskContextStorage

    init(taskName: String, attempt: Int, runID: String, store: SharedObjectStore, logSink: _LogSink, outputID: ObjectID,
         timeoutSeconds: Double? = nil, inputFiles: [String] = [], attemptDirectory: String = "", logPath: String = "") {
        storage = _TaskContextStorage(
            taskName: taskName, attempt: attempt, runID: runID, store: store, logSink: logSink, outputID: outputID,
            timeoutSeconds: timeoutSeconds, inputFiles: inputFiles, attemptDirectory: attemptDirectory, logPath: logPath)
    }

    public var taskName: String { storage.taskName }
    public var attempt: Int { storage.attempt }
    public var runID: String { storage.runID }
    public var store: SharedObjectStore { storage.store }
    /// Where the attempt's log lines go.
    var logSink: _LogSink { storage.logSink }
    /// A logger whose lines go to the attempt's log file (`logs/<task>.<attempt>.log`), made on
    /// use (an attempt that logs nothing pays nothing for it).
    public var logger: Logger {
        let sink = logSink
        return Logger(label: "dataflow.task.\(taskName)") { _ in _AttemptLogHandler(sink: sink) }
    }
    /// The id the task's output gets in the store.
    public var outputID: ObjectID { storage.outputID }
    /// For shell tasks: the input files, in parameter order.
    var inputFiles: [String] { storage.inputFiles }
    /// A directory of this attempt's own (shell tasks run there).
    var attemptDirectory: String { storage.attemptDirectory }
    /// This attempt's log file.
    var logPath: String { storage.logPath }
    /// The task's timeout (shell tasks enforce it on their command themselves).
    var timeoutSeconds: Double? { storage.timeoutSeconds }

    @TaskLocal public static var current: TaskContext?

    /// Makes the task's output tensor in place in the store (no staging copy); return it from
    /// the task body and it is passed on without a copy.
    public func makeTensor<Scalar: TensorScalar>(shape: [Int], of type: Scalar.Type = Scalar.self, fill: (inout MutableSpan<Scalar>) throws -> Void) throws -> Tensor<Scalar> {
        try store.makeTensor(outputID, shape: shape, of: type, fill: fill)
    }
}

/// The fields of a `TaskContext`. Immutable; thread-safe.
final class _TaskContextStorage: Sendable {
    let taskName: String
    let attempt: Int
    let runID: String
    let store: SharedObjectStore
    let logSink: _LogSink
    let outputID: ObjectID
    let timeoutSeconds: Double?
    let inputFiles: [String]
    let attemptDirectory: String
    let logPath: String

    init(taskName: String, attempt: Int, runID: String, store: SharedObjectStore, logSink: _LogSink, outputID: ObjectID,
         timeoutSeconds: Double?, inputFiles: [String], attemptDirectory: String, logPath: String) {
        self.taskName = taskName
        self.attempt = attempt
        self.runID = runID
        self.store = store
        self.logSink = logSink
        self.outputID = outputID
        self.timeoutSeconds = timeoutSeconds
        self.inputFiles = inputFiles
        self.attemptDirectory = attemptDirectory
        self.logPath = logPath
    }
}
