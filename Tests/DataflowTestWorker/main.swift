// A program that builds a workflow, as a user's `main` would, and can be started again as a
// worker for one of its tasks (`--dataflow-worker spec.json`). The worker-mode tests run it.
import Dataflow
import ObjectStore

let workflow = Workflow("worker-demo")
let source = workflow.task("source") { Tensor<Float>([1, 2, 3]) }
workflow.task("double", source) { (x: Tensor<Float>) throws -> Tensor<Float> in
    TaskContext.current!.logger.info("doubling \(x.count) scalars")
    return try TaskContext.current!.makeTensor(shape: x.shape, of: Float.self) { out in
        for index in out.indices { out[index] = 2 * x[index] }
    }
}
let count = workflow.task("count") { 40 }
workflow.task("add", count, count) { (a: Int, b: Int) in a + b + 2 }
workflow.task("fail") { () throws -> Int in
    struct Broken: Error, CustomStringConvertible { var description: String { "the task is broken" } }
    throw Broken()
}

await workflow.runWorkerIfRequested()
print("usage: DataflowTestWorker --dataflow-worker SPEC.json")
