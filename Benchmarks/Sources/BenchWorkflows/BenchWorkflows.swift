// Workflows the process-executor benchmarks run, built both by the benchmark and by the worker
// program (DataflowBenchWorker) that the executor starts: a worker runs the very same functions.
import Dataflow
import ObjectStore

public enum BenchWorkflows {
    public static func all() -> [Workflow] { [chain(length: 1_000), tensorPipeline(scalars: 64 << 20)] }

    /// A chain of `length` trivial tasks: per-hop dispatch cost.
    public static func chain(length: Int) -> Workflow {
        let workflow = Workflow("bench-chain-\(length)")
        var previous = workflow.task("t0") { 0 }
        for index in 1..<length { previous = workflow.task("t\(index)", previous) { $0 + 1 } }
        return workflow
    }

    /// Produce a float32 tensor of `scalars` in place in one task, reduce it (sum) in the next.
    public static func tensorPipeline(scalars: Int) -> Workflow {
        let workflow = Workflow("bench-tensor-\(scalars)")
        let produced = workflow.task("produce") { () throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: [scalars], of: Float.self) { out in
                out.withUnsafeMutableBufferPointer { buffer in buffer.update(repeating: 1) }
            }
        }
        workflow.task("reduce", produced) { (x: Tensor<Float>) -> Double in sum(x) }
        return workflow
    }

    /// The sum of a tensor's scalars, 16 lanes at a time.
    public static func sum(_ x: Tensor<Float>) -> Double {
        x.withUnsafeBufferPointer { buffer in
            var lanes = SIMD16<Float>()
            let whole = buffer.count / 16 * 16
            let raw = UnsafeRawPointer(buffer.baseAddress!)
            var index = 0
            while index < whole {
                lanes += raw.loadUnaligned(fromByteOffset: index * 4, as: SIMD16<Float>.self)
                index += 16
            }
            var total = Double(lanes.sum())
            while index < buffer.count {
                total += Double(buffer[index])
                index += 1
            }
            return total
        }
    }
}
