import Dataflow
import Materialize
import ObjectStore

/// The workflows of the `pass/memory-*` cases, made from their parameters, with names that
/// encode those parameters: a worker process of the process executor (this program, started
/// again) rebuilds the same workflow from its name alone (`make(named:)`).
enum BenchWorkflows {
    /// The chain of `pass/disk` as a workflow: `stage-0` fills a tensor of `count` float32,
    /// each later stage transforms its input (a view) into a new tensor made in place.
    static func chain(count: Int, stages: Int, policy: MaterializationPolicy) -> Workflow {
        let stages = max(stages, 1)
        let workflow = Workflow("bench-chain-\(count)-\(stages)-\(policy.rawValue)", policy: policy)
        var previous = workflow.task("stage-0") { () throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: [count], of: Float.self) { span in
                span.withUnsafeMutableBufferPointer { StageWork.fillSource($0.baseAddress!, count: count) }
            }
        }
        for stage in 1..<stages {
            previous = workflow.task("stage-\(stage)", previous) { (x: Tensor<Float>) throws -> Tensor<Float> in
                try x.withUnsafeBufferPointer { input in
                    try TaskContext.current!.makeTensor(shape: [count], of: Float.self) { span in
                        span.withUnsafeMutableBufferPointer { StageWork.transform(input.baseAddress!, $0.baseAddress!, count: count) }
                    }
                }
            }
        }
        return workflow
    }

    /// The name of the chain's last task (its result).
    static func chainResult(stages: Int) -> String { "stage-\(max(stages, 1) - 1)" }

    /// The graph of `pass/disk-fanout`: a source, `branches` tasks that each transform their
    /// slice of the source (a view), and `gather`, which copies the slices into one tensor.
    static func fanout(count: Int, branches: Int) -> Workflow {
        let branches = max(branches, 1)
        let workflow = Workflow("bench-pass-fanout-\(count)-\(branches)")
        let source = workflow.task("source") { () throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: [count], of: Float.self) { span in
                span.withUnsafeMutableBufferPointer { StageWork.fillSource($0.baseAddress!, count: count) }
            }
        }
        let shards = workflow.map("branch", over: (0..<branches).map { _ in source }) { (x: Tensor<Float>) throws -> Tensor<Float> in
            // Which slice: the task's own index, from its name `branch[i]`.
            let branch = Int(TaskContext.current!.taskName.dropFirst("branch[".count).dropLast()) ?? 0
            let range = chunkRange(branch, of: branches, count: count)
            return try x.withUnsafeBufferPointer { input in
                try TaskContext.current!.makeTensor(shape: [range.count], of: Float.self) { span in
                    span.withUnsafeMutableBufferPointer {
                        StageWork.transform(input.baseAddress! + range.lowerBound, $0.baseAddress!, count: range.count)
                    }
                }
            }
        }
        workflow.gather("gather", shards) { (parts: [Tensor<Float>]) throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: [count], of: Float.self) { span in
                span.withUnsafeMutableBufferPointer { out in
                    var offset = 0
                    for part in parts {
                        part.withUnsafeBufferPointer { (out.baseAddress! + offset).update(from: $0.baseAddress!, count: $0.count) }
                        offset += part.count
                    }
                }
            }
        }
        return workflow
    }

    /// `bench-slurm-fanout-<n>`: a `map` of n trivial tasks (each returns its index), the SLURM
    /// cases' workflow.
    static func slurmFanout(count: Int) -> Workflow {
        let workflow = Workflow("bench-slurm-fanout-\(count)")
        workflow.map("trivial", over: Array(0..<count)) { (index: Int) in index }
        return workflow
    }

    /// `bench-hops-<n>`: a chain of n trivial tasks, each adding one to its input (the workflow
    /// of `task/overhead-chain-processes`, rebuilt by name in the workers).
    static func hops(count: Int) -> Workflow {
        let workflow = Workflow("bench-hops-\(count)")
        var previous = workflow.task("hop-0") { 0 }
        for index in 1..<max(count, 1) { previous = workflow.task("hop-\(index)", previous) { (x: Int) in x + 1 } }
        return workflow
    }

    /// The workflow a name made by `chain`, `fanout`, `slurmFanout` or `hops` stands for; nil for
    /// any other name.
    static func make(named name: String) -> Workflow? {
        let parts = name.split(separator: "-").map(String.init)
        if parts.count == 5, parts[0] == "bench", parts[1] == "chain", let count = Int(parts[2]), let stages = Int(parts[3]),
            let policy = MaterializationPolicy(rawValue: parts[4]) {
            return chain(count: count, stages: stages, policy: policy)
        }
        if parts.count == 3, parts[0] == "bench", parts[1] == "hops", let count = Int(parts[2]), count >= 1 {
            return hops(count: count)
        }
        if parts.count == 4, parts[0] == "bench", parts[1] == "slurm", parts[2] == "fanout", let count = Int(parts[3]) {
            return slurmFanout(count: count)
        }
        if parts.count == 5, parts[0] == "bench", parts[1] == "pass", parts[2] == "fanout", let count = Int(parts[3]), let branches = Int(parts[4]) {
            return fanout(count: count, branches: branches)
        }
        return nil
    }
}
