// A complete workflow program that runs its tasks on warm worker processes.
import Dataflow
import ObjectStore

/// Builds the workflow. No side effects here: each worker process builds it again to find
/// the task functions by name.
func makeWorkflow(scale: Int) -> Workflow {
    let workflow = Workflow("scaled-sum-\(scale)")  // the name carries the parameter
    let numbers = workflow.task("numbers") { () throws -> Tensor<Float> in
        try TaskContext.current!.makeTensor(shape: [1 << 20], of: Float.self) { x in
            for i in x.indices { x[i] = Float(i % 10) }
        }
    }
    let scaled = workflow.task("scale", numbers) { (x: Tensor<Float>) throws -> Tensor<Float> in
        try TaskContext.current!.makeTensor(shape: x.shape, of: Float.self) { y in
            for i in y.indices { y[i] = x[i] * Float(scale) }
        }
    }
    workflow.task("sum", scaled) { (x: Tensor<Float>) in x.reduce(0.0) { $0 + Double($1) } }
    return workflow
}

// 1. First thing in main, before parsing arguments or running anything: a process started as
//    a worker serves here and exits. It rebuilds the workflow from the name the parent gave it.
await Workflow.runWorkerIfRequested { name in
    guard name.hasPrefix("scaled-sum-"), let scale = Int(name.dropFirst("scaled-sum-".count)) else { return nil }
    return makeWorkflow(scale: scale)
}

// 2. Only the parent gets here: parse the arguments, then run on two warm workers.
let scale = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 3
let pool = try ProcessExecutor(.init(workerCount: 2))
let run = try await makeWorkflow(scale: scale).run(RunOptions(executor: .processes(pool)))
print("sum:", try run.result(named: "sum", as: Double.self))
pool.shutdown()
