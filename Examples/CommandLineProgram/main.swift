// A workflow program with the `dataflow`-style command line: one call in main. Try
//   swift run CommandLineProgram --dry-run
//   swift run CommandLineProgram --executor processes -j 2
//   swift run CommandLineProgram --config dataflow.toml
import Dataflow
import DataflowCLI
import ObjectStore

/// Builds the workflow (no side effects: worker processes build it again).
@Sendable func makeWorkflow() -> Workflow {
    let workflow = Workflow("squares")
    let numbers = workflow.task("numbers") { () throws -> Tensor<Float> in
        try TaskContext.current!.makeTensor(shape: [1 << 20], of: Float.self) { x in
            for i in x.indices { x[i] = Float(i % 100) }
        }
    }
    let squares = workflow.task("squares", numbers, options: TaskOptions(labels: ["heavy"])) { (x: Tensor<Float>) throws -> Tensor<Float> in
        try TaskContext.current!.makeTensor(shape: x.shape, of: Float.self) { y in
            for i in y.indices { y[i] = x[i] * x[i] }
        }
    }
    workflow.task("total", squares) { (x: Tensor<Float>) in x.reduce(0.0) { $0 + Double($1) } }
    return workflow
}

await WorkflowCommandLine.main(makeWorkflow)
