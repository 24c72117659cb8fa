import Materialize

/// Which executor runs each task of a run, what each can do, and what that means for the
/// values between them: the planner's per-executor and per-edge decisions, made before anything
/// runs.
///
/// - Note: Immutable after init; thread-safe.
final class _ExecutorPlan: @unchecked Sendable {  // immutable after init
    /// One executor used by the run.
    struct Entry {
        /// Its name in the run: its key in `RunOptions.executors`, or for the default executor
        /// its kind (or `default`).
        let name: String
        let executor: any Executor
        let capabilities: ExecutorCapabilities
        /// The most of its attempts in flight at once: the run's concurrency, or less if the
        /// executor says so.
        let limit: Int
    }

    /// The name the run's default executor has in the run log when its kind is taken by a named
    /// executor (otherwise it is named by its kind, e.g. `local`). Tasks may name it too.
    static let defaultName = "default"

    /// Executors the run uses (at least the default).
    let entries: [Entry]
    /// By task index: its executor, an index into `entries`.
    let executorOfTask: [Int]
    /// By task index: every consumer of its output reaches the store (so `auto` writes no file).
    let everyConsumerReachesStore: [Bool]

    /// Chooses each task's executor (its own name, else its first label with an executor, else
    /// the default) and checks the plan.
    /// - Throws: `.unknownExecutor` naming the task and the executor; `.resourcesExceedExecutor`
    ///   naming the task, the executor and the resources; `.policyConflict` for a `never` value
    ///   on an edge whose consumer cannot reach the store, naming the edge and both executors.
    init(workflow: Workflow, options: RunOptions) throws(DataflowError) {
        let nodes = workflow.nodes
        var entries: [Entry] = []
        var indexByName: [String: Int] = [:]
        func entry(named name: String, _ executor: any Executor) -> Int {
            if let known = indexByName[name] { return known }
            let capabilities = executor.capabilities
            let limit = capabilities.schedulesResources
                ? max(1, capabilities.maxConcurrentAttempts ?? 1_000)
                : max(1, min(options.concurrency, capabilities.maxConcurrentAttempts ?? .max))
            entries.append(Entry(name: name, executor: executor, capabilities: capabilities, limit: limit))
            indexByName[name] = entries.count - 1
            return entries.count - 1
        }
        // The default executor is entered once: under its name if it is also a named one, else
        // under its kind (`local`, `processes`) unless a named executor has that name.
        let kindName = options.executor.kind
        let defaultName = options.executors.first { $0.value === options.executor }?.key
            ?? (options.executors[kindName] == nil ? kindName : Self.defaultName)
        let defaultIndex = entry(named: defaultName, options.executor)
        var executorOfTask = [Int](repeating: defaultIndex, count: nodes.count)
        for (index, node) in nodes.enumerated() {
            var chosen: String?
            if let name = node.options.executor {
                chosen = name
            } else if let label = node.options.labels.first(where: { options.executorForLabel[$0] != nil }) {
                chosen = options.executorForLabel[label]
            }
            guard let name = chosen, name != defaultName else { continue }
            if name == Self.defaultName && options.executors[name] == nil { continue }
            guard let executor = options.executors[name] else {
                let known = ([defaultName] + options.executors.keys.filter { $0 != defaultName }.sorted()).joined(separator: ", ")
                throw DataflowError(
                    .unknownExecutor,
                    "task '\(node.name)' asks for executor \(_quoted(name)), which the run does not declare (executors: \(known))",
                    task: node.name)
            }
            executorOfTask[index] = entry(named: name, executor)
        }
        for (index, node) in nodes.enumerated() {
            let chosen = entries[executorOfTask[index]]
            let offered = chosen.capabilities.nodeResources ?? (chosen.capabilities.schedulesResources ? nil : options.capacity)
            guard let offered else { continue }  // the engine judges (e.g. sbatch refuses it, naming the task)
            if !node.options.resources.fits(within: offered), let excess = node.options.resources.firstExcess(over: offered) {
                throw DataflowError(
                    .resourcesExceedExecutor,
                    "task '\(node.name)' declares \(node.options.resources), more than a node of executor '\(chosen.name)' (\(chosen.executor.kind)) has: \(excess)",
                    task: node.name)
            }
        }
        var reaches = [Bool](repeating: true, count: nodes.count)
        for (consumer, node) in nodes.enumerated() where !entries[executorOfTask[consumer]].capabilities.reachesStore {
            for input in node.inputs { reaches[input] = false }
        }
        // `never` keeps a value in memory only: an edge from or to an attempt without the store
        // cannot carry it.
        for (consumer, node) in nodes.enumerated() {
            let consumerEntry = entries[executorOfTask[consumer]]
            for input in node.inputs {
                let producerEntry = entries[executorOfTask[input]]
                let crosses = !consumerEntry.capabilities.reachesStore || !producerEntry.capabilities.reachesStore
                guard crosses, (nodes[input].options.policy ?? workflow.defaultPolicy) == .never else { continue }
                throw DataflowError(
                    .policyConflict,
                    "the edge '\(nodes[input].name)' → '\(node.name)' crosses from executor '\(producerEntry.name)' (\(producerEntry.executor.kind)) "
                        + "to '\(consumerEntry.name)' (\(consumerEntry.executor.kind)), which do not both reach the run's store, "
                        + "but '\(nodes[input].name)' has policy 'never' (memory only); use 'auto'",
                    task: nodes[input].name)
            }
        }
        self.entries = entries
        self.executorOfTask = executorOfTask
        self.everyConsumerReachesStore = reaches
    }
}
