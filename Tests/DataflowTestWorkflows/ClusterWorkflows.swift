// Workflows of the SLURM and Ray executors' tests: built by the test process and, inside each
// batch or Ray job, by the worker program (DataflowTestWorker), which runs the one task its spec names.
import Dataflow
import Foundation
import ObjectStore

public enum ClusterWorkflows {
    public static func all() -> [Workflow] {
        [pipeline(), fanOut(), fanOut(count: 20), failing(), preemptible(), timeLimit(), mixed(), impossible(), pinned()]
    }

    /// Three stages over a 1 Mi-scalar tensor: made in place, scaled in place, summed. The last
    /// stage also says which store its input came from (zero-copy: the run's own).
    public static func pipeline() -> Workflow {
        let workflow = Workflow("slurm-pipeline")
        let made = workflow.task("make") { () throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: [1 << 20], of: Float.self) { out in
                for index in out.indices { out[index] = Float(index % 7) }
            }
        }
        let scaled = workflow.task("scale", made) { (x: Tensor<Float>) throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: x.shape, of: Float.self) { out in
                for index in out.indices { out[index] = 3 * x[index] }
            }
        }
        workflow.task("total", scaled) { (x: Tensor<Float>) -> String in
            let total = x.reduce(0.0) { $0 + Double($1) }
            return "total=\(total) store=\(TaskContext.current!.store.name) host=\(ProcessInfo.processInfo.hostName) job=\(ProcessInfo.processInfo.environment["SLURM_JOB_ID"] ?? "none")"
        }
        return workflow
    }

    /// The pipeline's expected total.
    public static var pipelineTotal: Double { Double((0..<(1 << 20)).reduce(0) { $0 + 3 * ($1 % 7) }) }

    /// A 50-way map of trivial tasks and a sum over them.
    public static func fanOut(count: Int = 50) -> Workflow {
        let workflow = Workflow("slurm-fan-out-\(count)")
        let squares = workflow.map("square", over: Array(0..<count)) { (index: Int) -> Int in
            index * index + (ProcessInfo.processInfo.environment["SLURM_ARRAY_TASK_ID"] == nil ? 1_000_000 : 0)
        }
        workflow.gather("sum", squares) { (values: [Int]) in values.reduce(0, +) }
        return workflow
    }

    /// A task whose function throws (its worker exits with status 1).
    public static func failing() -> Workflow {
        let workflow = Workflow("slurm-failing")
        workflow.task("fails") { () throws -> Int in
            struct Broken: Error, CustomStringConvertible { var description: String { "the input was bad" } }
            throw Broken()
        }
        return workflow
    }

    /// A task in the preemptible partition `low` that takes the node's two CPUs. Its first
    /// attempt leaves a marker and waits to be preempted; a later attempt succeeds.
    public static func preemptible() -> Workflow {
        let workflow = Workflow("slurm-preemptible")
        let options = TaskOptions(resources: Resources(cpu: 2), retries: RetryPolicy(preemptions: 2, backoffSeconds: 0), executorSettings: ["partition": "low"])
        workflow.task("long", options: options) { () async throws -> Int in
            let attempt = TaskContext.current!.attempt
            if attempt == 1 {
                try? "\(getpid())".write(toFile: TestWorkflows.markerPath(task: "long", attempt: 1), atomically: true, encoding: .utf8)
                try await Task.sleep(nanoseconds: 300_000_000_000)
            }
            return attempt
        }
        return workflow
    }

    /// A task that needs the custom resource `pin` (which a second Ray node offers). Its first
    /// attempt leaves a marker and waits for its node to be killed; a later attempt succeeds.
    public static func pinned() -> Workflow {
        let workflow = Workflow("ray-node-lost")
        let options = TaskOptions(resources: Resources(custom: ["pin": 1]), retries: RetryPolicy(preemptions: 2, backoffSeconds: 0))
        workflow.task("pinned", options: options) { () async throws -> Int in
            let attempt = TaskContext.current!.attempt
            if attempt == 1 {
                try? "\(getpid())".write(toFile: TestWorkflows.markerPath(task: "pinned", attempt: 1), atomically: true, encoding: .utf8)
                try await Task.sleep(nanoseconds: 300_000_000_000)
            }
            return attempt
        }
        return workflow
    }

    /// A task that runs past a one-minute SLURM time limit (no timeout of its own).
    public static func timeLimit() -> Workflow {
        let workflow = Workflow("slurm-time-limit")
        workflow.task("overruns", options: TaskOptions(retries: RetryPolicy(failures: 0, preemptions: 0), executorSettings: ["time": "1"])) { () async throws -> Int in
            try await Task.sleep(nanoseconds: 600_000_000_000)
            return 1
        }
        return workflow
    }

    /// local → slurm → local: "source" and "report" on the run's default executor, "middle" on
    /// the executor named "hpc"; "side" reads "source" locally too.
    public static func mixed() -> Workflow {
        let workflow = Workflow("slurm-mixed")
        let source = workflow.task("source") { () -> Tensor<Float> in Tensor<Float>((0..<4096).map { Float($0 % 11) }) }
        let middle = workflow.task("middle", source, options: TaskOptions(executor: "hpc")) { (x: Tensor<Float>) in
            Tensor<Float>(x.scalars.map { $0 + 1 })
        }
        let side = workflow.task("side", source) { (x: Tensor<Float>) in x.count }
        workflow.task("report", middle, side) { (x: Tensor<Float>, count: Int) in "\(x.reduce(0.0) { $0 + Double($1) }) over \(count)" }
        return workflow
    }

    /// A task asking for what no node has (`resources`), or with `settings` SLURM refuses.
    public static func impossible(resources: Resources = Resources(cpu: 64), settings: [String: String] = [:]) -> Workflow {
        let workflow = Workflow("slurm-impossible")
        workflow.task("wants-too-much", options: TaskOptions(resources: resources, executorSettings: settings)) { 1 }
        return workflow
    }
}
