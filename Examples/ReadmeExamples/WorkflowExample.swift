import Dataflow
import ObjectStore

/// README, "A workflow of Swift functions", then its shell task and the process executor.
func workflowExample(lines: (Workflow) -> TaskRef<String>) async throws {
    let workflow = Workflow("train", policy: .final)          // leaves go to the run directory
    let features = workflow.task("synthesize") { () throws -> Tensor<Float> in
        // Write the output in place in the shared store: no staging copy.
        try TaskContext.current!.makeTensor(shape: [1 << 20], of: Float.self) { x in
            for i in x.indices { x[i] = Float(i % 1000) / 1000 }
        }
    }
    let mean = workflow.task("mean", features) { (x: Tensor<Float>) in x.reduce(0, +) / Float(x.count) }
    let centered = workflow.task("center", features, mean) { (x: Tensor<Float>, m: Float) in
        Tensor(x.map { $0 - m })
    }
    let shards = workflow.map("shard-sum", over: Array(0..<4)) { (k: Int) in Double(k) }
    let total = workflow.gather("total", shards) { $0.reduce(0, +) }

    let run = try await workflow.run(RunOptions(workdir: "/tmp/dataflow"))
    let result: Tensor<Float> = try run.result(centered)      // a view of the store's bytes
    print(run.directory, try run.result(total))               // runs/<run id>/run.jsonl, values/...
    _ = result

    let lines = lines(workflow)
    let sorted = workflow.shell("sort", #"sort "$DATAFLOW_INPUT_LINES" > "$DATAFLOW_OUTPUT""#,
                                inputs: ("lines", lines), output: String.self,
                                options: TaskOptions(timeoutSeconds: 60))
    _ = sorted

    try await processExecutorExample(workflow)
}

/// README, "The process executor".
func processExecutorExample(_ workflow: Workflow) async throws {
    await Workflow.runWorkerIfRequested([workflow])    // first thing in main: a worker serves here
    let pool = try ProcessExecutor(.init(workerCount: 4))
    let options = RunOptions(workdir: "/tmp/dataflow", executor: .processes(pool))
    let run = try await workflow.run(options)            // same graph, same results as `.local`
    _ = run
}
