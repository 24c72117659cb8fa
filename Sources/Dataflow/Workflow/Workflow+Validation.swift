extension Workflow {
    /// Checks the workflow before it runs: unique, non-empty task names, no input from another
    /// workflow, no dependency cycle, options in range (no negative resources, retry limits or
    /// backoffs; a positive timeout), and no task declaring more resources than `capacity` (the
    /// executor's).
    /// - Throws: `.duplicateTaskName`, `.foreignInput`, `.invalidOption`,
    ///   `.resourcesExceedExecutor`, `.cycle`, each naming the task (a cycle names every task on it).
    /// - Complexity: O(tasks + edges).
    public func validate(capacity: Resources) throws(DataflowError) {
        try validateGraph()
        for node in nodes {
            if !node.options.resources.fits(within: capacity), let excess = node.options.resources.firstExcess(over: capacity) {
                throw DataflowError(.resourcesExceedExecutor, "task '\(node.name)' declares more than the executor has: \(excess)", task: node.name)
            }
        }
    }

    /// `validate(capacity:)` without the resources (a run checks those per executor).
    func validateGraph() throws(DataflowError) {
        if let duplicate = firstDuplicateName {  // names are checked as tasks are added
            throw DataflowError(.duplicateTaskName, "workflow '\(name)' has two tasks named '\(duplicate)'", task: duplicate)
        }
        if let foreign = firstForeignDependency {
            throw DataflowError(
                .foreignInput,
                "addDependency('\(foreign.task)', after: '\(foreign.after)'): task '\(foreign.task)' is no task of workflow '\(name)'",
                task: foreign.task)
        }
        for node in nodes {
            if node.name.isEmpty {
                throw DataflowError(.invalidOption, "workflow '\(name)' has a task with an empty name", task: node.name)
            }
            if let problem = node.options.resources.negativeAmount {
                throw DataflowError(.invalidOption, "task '\(node.name)' declares \(problem); resources must be zero or more", task: node.name)
            }
            let retries = node.options.retries
            if !(retries.backoffSeconds >= 0) || !(retries.maximumBackoffSeconds >= 0) {
                throw DataflowError(
                    .invalidOption,
                    "task '\(node.name)' has retry backoff \(retries.backoffSeconds) s (at most \(retries.maximumBackoffSeconds) s); both must be zero or more",
                    task: node.name)
            }
            if let foreign = node.foreignInputs.first {
                throw DataflowError(.foreignInput, "task '\(node.name)' of workflow '\(name)' depends on '\(foreign)' of another workflow", task: node.name)
            }
            if let timeout = node.options.timeoutSeconds, !(timeout > 0) {
                throw DataflowError(.invalidOption, "task '\(node.name)' has timeout \(timeout) s; it must be positive", task: node.name)
            }
            if node.options.retries.failures < 0 || node.options.retries.preemptions < 0 {
                throw DataflowError(.invalidOption, "task '\(node.name)' has a negative retry limit", task: node.name)
            }
        }
        if let cycle = findCycle() {
            let names = cycle.map { nodes[$0].name }
            throw DataflowError(.cycle, "workflow '\(name)' has a dependency cycle: \(names.joined(separator: " → "))", task: names.first)
        }
    }

    /// A cycle of task indices (first repeated at the end), or nil. Iterative depth-first search.
    func findCycle() -> [Int]? {
        enum Mark { case unvisited, onStack, done }
        var marks = [Mark](repeating: .unvisited, count: nodes.count)
        let dependencies = nodes.map(\.dependencies)
        for root in nodes.indices where marks[root] == .unvisited {
            var stack: [(node: Int, next: Int)] = [(root, 0)]
            marks[root] = .onStack
            while let top = stack.last {
                let edges = dependencies[top.node]
                if top.next == edges.count {
                    marks[top.node] = .done
                    stack.removeLast()
                    continue
                }
                stack[stack.count - 1].next += 1
                let child = edges[top.next]
                guard child >= 0 && child < nodes.count else { continue }
                switch marks[child] {
                case .unvisited:
                    marks[child] = .onStack
                    stack.append((child, 0))
                case .onStack:
                    let start = stack.firstIndex { $0.node == child }!
                    // Each task on the stack depends on the next; `child` closes the loop.
                    return stack[start...].map(\.node) + [child]
                case .done:
                    break
                }
            }
        }
        return nil
    }
}
