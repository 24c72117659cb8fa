// Workflows the process-executor benchmarks run, built both by the benchmark and by the worker
// program (DataflowBenchWorker) that the executor starts: a worker runs the very same functions.
import Dataflow
import Foundation
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
                out.withUnsafeMutableBufferPointer { fill($0, with: 1) }
            }
        }
        workflow.task("reduce", produced) { (x: Tensor<Float>) -> Double in sum(x) }
        return workflow
    }

    /// Threads a task's loops use: the machine's cores (the same in the baseline).
    static let threads = ProcessInfo.processInfo.activeProcessorCount

    /// The part of `count` scalars that thread `part` of `threads` handles (16-scalar aligned).
    static func range(_ part: Int, count: Int) -> Range<Int> {
        let chunk = (count / threads + 15) / 16 * 16
        return min(count, part * chunk)..<min(count, (part + 1) * chunk)
    }

    /// Fills `buffer` with `value`, on every core.
    public static func fill(_ buffer: UnsafeMutableBufferPointer<Float>, with value: Float) {
        // Addresses cross into the concurrent loop as integers (each part writes its own range).
        let address = Int(bitPattern: buffer.baseAddress), count = buffer.count
        DispatchQueue.concurrentPerform(iterations: threads) { part in
            let slice = range(part, count: count)
            let base = UnsafeMutablePointer<Float>(bitPattern: address)!
            (base + slice.lowerBound).update(repeating: value, count: slice.count)
        }
    }

    /// The sum of a tensor's scalars, 16 lanes at a time, on every core.
    public static func sum(_ x: Tensor<Float>) -> Double {
        x.withUnsafeBufferPointer { buffer in
            let address = Int(bitPattern: buffer.baseAddress), count = buffer.count
            let partials = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
            defer { partials.deallocate() }
            let partialsAddress = Int(bitPattern: partials.baseAddress)
            DispatchQueue.concurrentPerform(iterations: threads) { part in
                let base = UnsafeRawPointer(bitPattern: address)!
                let partials = UnsafeMutablePointer<Double>(bitPattern: partialsAddress)!
                let slice = range(part, count: count)
                var lanes = SIMD16<Float>()
                var index = slice.lowerBound
                while index + 16 <= slice.upperBound {
                    lanes += base.loadUnaligned(fromByteOffset: index * 4, as: SIMD16<Float>.self)
                    index += 16
                }
                var total = Double(lanes.sum())
                while index < slice.upperBound {
                    total += Double(base.load(fromByteOffset: index * 4, as: Float.self))
                    index += 1
                }
                partials[part] = total
            }
            return partials.reduce(0, +)
        }
    }
}
