import Materialize

/// What a run would do, decided before anything runs: each task's executor and resources, and
/// where each value will live and why. `dataflow`-style commands print it for `--dry-run`.
///
/// - Note: A value type; thread-safe.
public struct RunPlan: Sendable, CustomStringConvertible {
    /// One task of the plan.
    public struct Task: Sendable {
        public var name: String
        /// The executor's name in the run, and its kind.
        public var executor: String
        public var executorKind: String
        public var resources: Resources
        /// Its settings for its engine (`TaskOptions.executorSettings`).
        public var executorSettings: [String: String]
        public var policy: MaterializationPolicy
        /// The caller asked for its value.
        public var isRequestedResult: Bool
        /// Tasks that read its value.
        public var consumers: [String]
        /// Where its value will live and why (the materialization plan's reason).
        public var placement: String
    }

    public var workflow: String
    /// Executors the run uses: name, kind, and how many attempts each runs at once.
    public var executors: [(name: String, kind: String, atOnce: Int)]
    public var tasks: [Task]

    public var description: String {
        var lines = ["plan of workflow '\(workflow)': \(tasks.count) task(s) on " + executors.map { "\($0.name) (\($0.kind), \($0.atOnce) at once)" }.joined(separator: ", ")]
        for task in tasks {
            let consumers = task.consumers.isEmpty ? "no consumer" : "read by " + task.consumers.joined(separator: ", ")
            let settings = task.executorSettings.isEmpty ? "" : " [" + task.executorSettings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "]"
            lines.append("  \(task.name): on \(task.executor) (\(task.executorKind))\(settings), \(task.resources); \(task.policy)\(task.isRequestedResult ? ", a result" : ""), \(consumers); \(task.placement)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension Workflow {
    /// The plan of a run with `options`, checked as `run` checks it, without running anything.
    /// - Throws: the validation errors of `run`.
    public func plan(_ options: RunOptions) throws(DataflowError) -> RunPlan {
        try options.validate()
        try validateGraph()
        let executorPlan = try _ExecutorPlan(workflow: self, options: options)
        let isRequested = try requestedResults(options.results)
        var consumers = [[String]](repeating: [], count: nodes.count)
        var readByShell = [Bool](repeating: false, count: nodes.count)
        var isConsumed = [Bool](repeating: false, count: nodes.count)
        for node in nodes {
            for input in node.inputs {
                consumers[input].append(node.name)
                if node.isShell { readByShell[input] = true }
            }
            for dependency in node.dependencies { isConsumed[dependency] = true }
        }
        var tasks: [RunPlan.Task] = []
        for (index, node) in nodes.enumerated() {
            let entry = executorPlan.entries[executorPlan.executorOfTask[index]]
            let policy = node.options.policy ?? defaultPolicy
            let facts = ValueFacts(
                isLeaf: consumers[index].isEmpty, consumerNeedsFile: readByShell[index],
                everyConsumerReachesStore: executorPlan.everyConsumerReachesStore[index], remainingConsumers: consumers[index].count,
                isRequestedResult: isRequested[index])
            let placement: String
            do { placement = try MaterializationPlan.make(policy: policy, facts: facts, valueName: "value '\(node.name)'").reason } catch {
                throw DataflowError(.policyConflict, error.message, task: node.name)
            }
            tasks.append(RunPlan.Task(
                name: node.name, executor: entry.name, executorKind: entry.executor.kind, resources: node.options.resources,
                executorSettings: node.options.executorSettings, policy: policy, isRequestedResult: isRequested[index], consumers: consumers[index], placement: placement))
        }
        return RunPlan(workflow: name, executors: executorPlan.entries.map { ($0.name, $0.executor.kind, $0.limit) }, tasks: tasks)
    }

    /// Executor names that tasks ask for in code (`TaskOptions.executor`), and labels they have.
    public var requestedExecutorNames: Set<String> { Set(nodes.compactMap(\.options.executor)) }
    public var taskLabels: Set<String> { Set(nodes.flatMap(\.options.labels)) }

    /// Changes the executor, labels, resources, engine settings or version of the task named
    /// `task` (what a configuration file's `[task."name"]` table does). Call it while building,
    /// before running.
    /// - Throws: `.unknownTask` if there is no such task.
    public func overrideOptions(
        ofTask task: String, executor: String? = nil, labels: [String]? = nil, resources: Resources? = nil, executorSettings: [String: String]? = nil,
        version: String? = nil
    ) throws(DataflowError) {
        guard let index = index(of: task) else {
            throw DataflowError(.unknownTask, "task \(_quoted(task)) is no task of workflow '\(name)'", task: task)
        }
        var options = nodes[index].options
        if let executor { options.executor = executor }
        if let labels { options.labels = labels }
        if let resources { options.resources = resources }
        if let executorSettings { options.executorSettings.merge(executorSettings) { $1 } }
        if let version { options.version = version }
        replaceOptions(options, at: index)
    }

    /// Adds engine settings (`TaskOptions.executorSettings`) to every task that has label
    /// `label` (a task's own settings of the same key win); returns how many.
    @discardableResult
    public func overrideExecutorSettings(ofTasksLabelled label: String, _ settings: [String: String]) -> Int {
        var changed = 0
        for index in nodes.indices where nodes[index].options.labels.contains(label) {
            var options = nodes[index].options
            options.executorSettings.merge(settings) { own, _ in own }
            replaceOptions(options, at: index)
            changed += 1
        }
        return changed
    }

    /// Changes the resources of every task that has label `label`; returns how many.
    @discardableResult
    /// The names of the tasks that carry `label`, in the order they were added.
    public func taskNames(labelled label: String) -> [String] {
        nodes.filter { $0.options.labels.contains(label) }.map(\.name)
    }

    public func overrideResources(ofTasksLabelled label: String, _ resources: Resources) -> Int {
        var changed = 0
        for index in nodes.indices where nodes[index].options.labels.contains(label) {
            var options = nodes[index].options
            options.resources = resources
            replaceOptions(options, at: index)
            changed += 1
        }
        return changed
    }
}
