import Dataflow

/// README, "Executors".
func executorsExample(_ workflow: Workflow) throws -> RunOptions {
    let pool = try ProcessExecutor(.init(workerCount: 4))
    var options = RunOptions(executor: .local, executors: ["pool": pool])
    options.executorForLabel = ["heavy": "pool"]
    // workflow.task("fit", data, options: TaskOptions(labels: ["heavy"])) { ... } now runs on the pool
    return options
}
