// Workflows built both by the Dataflow tests (in the test process) and by the DataflowTestWorker
// program (in worker processes): a worker runs the very functions the test declared.
import Dataflow
import Foundation
import ObjectStore

public enum TestWorkflows {
    /// Every workflow the worker program serves.
    public static func all() -> [Workflow] {
        [workerDemo(), poolCompare(), poolFaults(), poolChain(length: 1_000), memoryPressure(inPlace: true), memoryPressure(inPlace: false),
         conformance(), conformance(failingTasks: false), conformanceCancel(), interruptible(), mixedExecutors(), poolGrandchild(), poolOutput(),
         poolLargeMessages()] + ClusterWorkflows.all()
            + LineageWorkflows.all() + ResumeWorkflows.all()
    }

    /// Where tasks that must be killed from outside write their pid: a directory named after
    /// the test process (a worker's parent, or for a job of a batch engine the driver that
    /// `DATAFLOW_DRIVER_PID` names). The test process never sets an environment variable:
    /// `setenv` while other tests' threads read the environment is a crash waiting to happen.
    public static var markerDirectory: String {
        let isWorker = CommandLine.arguments.contains(ProcessExecutor.workerFlag) || CommandLine.arguments.contains(WorkerSpec.flag)
        let driver = isWorker ? ProcessInfo.processInfo.environment["DATAFLOW_DRIVER_PID"].flatMap { pid_t($0) } : nil
        let testProcess = driver ?? (isWorker ? getppid() : getpid())
        return NSTemporaryDirectory() + "dataflow-markers-\(testProcess)"
    }

    /// The marker file of an attempt: `<markerDirectory>/<task>.<attempt>.pid`, holding its pid.
    public static func markerPath(task: String, attempt: Int) -> String {
        "\(markerDirectory)/\(task).\(attempt).pid"
    }

    /// The marker of `conformanceCancel`'s task in run `runID`: named after the run, since
    /// suites that run at once in one test process each run that workflow.
    public static func cancelMarkerPath(runID: String, attempt: Int) -> String {
        markerPath(task: "waits-\(runID)", attempt: attempt)
    }

    /// The worker-mode tests' workflow (one task at a time, `--dataflow-worker spec.json`).
    public static func workerDemo() -> Workflow {
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
        return workflow
    }

    /// A graph the process-executor tests run on both executors and compare: a tensor made in
    /// place, doubled, summed; two small values added; a task that prints.
    public static func poolCompare() -> Workflow {
        let workflow = Workflow("pool-compare")
        let source = workflow.task("source") { () throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: [1 << 20], of: Float.self) { out in
                for index in out.indices { out[index] = Float(index % 7) }
            }
        }
        let doubled = workflow.task("double", source) { (x: Tensor<Float>) throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: x.shape, of: Float.self) { out in
                for index in out.indices { out[index] = 2 * x[index] }
            }
        }
        workflow.task("sum", doubled) { (x: Tensor<Float>) in x.reduce(0.0) { $0 + Double($1) } }
        let count = workflow.task("count") { 40 }
        workflow.task("add", count, count) { (a: Int, b: Int) in a + b + 2 }
        workflow.task("hello") { () -> String in
            print("hello on standard output from pid \(getpid())")
            FileHandle.standardError.write(Data("hello on standard error\n".utf8))
            TaskContext.current!.logger.info("hello through the logger")
            return "hello from attempt \(TaskContext.current!.attempt)"
        }
        return workflow
    }

    /// Tasks that crash, hang, or wait to be killed, for the fault tests. Each is run alone
    /// (`RunOptions.results` / a workflow run per task is not needed: the tests pick tasks by
    /// building runs over this workflow with `onFailure: .keepGoing`).
    public static func poolFaults() -> Workflow {
        let workflow = Workflow("pool-faults")
        // First attempt: crashes the worker (a trap). Second: succeeds.
        workflow.task("crash-once", options: TaskOptions(retries: RetryPolicy(failures: 1, backoffSeconds: 0))) { () -> Int in
            if TaskContext.current!.attempt == 1 { fatalError("crashing the worker on purpose") }
            return 7
        }
        // First attempt: starts a 256 MiB tensor and writes it forever, after leaving its pid
        // (the test SIGKILLs it mid-write). Second: writes it whole.
        workflow.task("killed-mid-write", options: TaskOptions(retries: RetryPolicy(failures: 1, backoffSeconds: 0))) { () throws -> Tensor<Float> in
            let context = TaskContext.current!
            return try context.makeTensor(shape: [64 << 20], of: Float.self) { out in
                if context.attempt == 1 {
                    try? "\(getpid())".write(toFile: markerPath(task: "killed-mid-write", attempt: 1), atomically: true, encoding: .utf8)
                    var round: Float = 0
                    while true {
                        round += 1
                        for index in stride(from: 0, to: out.count, by: 1024) { out[index] = round }
                    }
                }
                for index in out.indices { out[index] = 1 }
            }
        }
        // First attempt: waits to be stopped with SIGTERM (a preemption). Second: succeeds.
        workflow.task("preempted-once", options: TaskOptions(retries: RetryPolicy(failures: 0, preemptions: 1, backoffSeconds: 0))) { () -> Int in
            if TaskContext.current!.attempt == 1 {
                try? "\(getpid())".write(toFile: markerPath(task: "preempted-once", attempt: 1), atomically: true, encoding: .utf8)
                while true { sleep(1) }
            }
            return 11
        }
        // Never returns (and never checks for cancellation): only killing stops it.
        workflow.task("hangs", options: TaskOptions(timeoutSeconds: 1)) { () -> Int in
            while true { sleep(1) }
        }
        // Runs beside the others and must not notice them.
        workflow.task("bystander") { () -> Int in
            usleep(300_000)
            return 5
        }
        return workflow
    }

    /// A chain of `length` trivial tasks (the per-hop benchmark's graph).
    public static func poolChain(length: Int) -> Workflow {
        let workflow = Workflow("pool-chain-\(length)")
        var previous = workflow.task("t0") { 0 }
        for index in 1..<length { previous = workflow.task("t\(index)", previous) { $0 + 1 } }
        return workflow
    }

    /// Three 16 MiB tensors in a store of 40 MiB, of which at most two are needed at once: `a`,
    /// `b` and `c` each make one (in place, or returned by value); `ab(a, b)` runs after `c`, and
    /// `cs(c)` reads `c`. Run with `concurrency: 1`, `c` only fits once `a` or `b` is spilled.
    public static func memoryPressure(inPlace: Bool) -> Workflow {
        let workflow = Workflow(inPlace ? "pressure-in-place" : "pressure-by-value", policy: .auto)
        let scalars = 4 << 20  // 16 MiB of Float
        @Sendable func make(_ value: Float) throws -> Tensor<Float> {
            if inPlace {
                return try TaskContext.current!.makeTensor(shape: [scalars], of: Float.self) { out in
                    for index in out.indices { out[index] = value }
                }
            }
            return try Tensor<Float>(shape: [scalars], scalars: [Float](repeating: value, count: scalars))
        }
        let a = workflow.task("a") { try make(1) }
        let b = workflow.task("b") { try make(2) }
        let c = workflow.task("c") { try make(3) }
        let ab = workflow.task("ab", a, b) { (x: Tensor<Float>, y: Tensor<Float>) in
            Double(x.reduce(0, +)) + Double(y.reduce(0, +))
        }
        workflow.addDependency(ab, after: c)
        workflow.task("cs", c) { (x: Tensor<Float>) in Double(x.reduce(0, +)) }
        return workflow
    }

    /// The executor conformance graph: a tensor made in place, doubled and summed; small values;
    /// a task that fails, one that reports preemption, one past its timeout; and an edge into a
    /// shell task (a file under `auto`).
    /// Without `failingTasks`, only the part that succeeds ("conformance-good").
    public static func conformance(failingTasks: Bool = true) -> Workflow {
        let workflow = Workflow(failingTasks ? "conformance" : "conformance-good")
        let source = workflow.task("source") { () throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: [1 << 18], of: Float.self) { out in
                for index in out.indices { out[index] = Float(index % 5) }
            }
        }
        let doubled = workflow.task("double", source) { (x: Tensor<Float>) throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: x.shape, of: Float.self) { out in
                for index in out.indices { out[index] = 2 * x[index] }
            }
        }
        workflow.task("sum", doubled) { (x: Tensor<Float>) in x.reduce(0.0) { $0 + Double($1) } }
        let count = workflow.task("count") { 40 }
        let add = workflow.task("add", count, count) { (a: Int, b: Int) in "\(a + b + 2)" }
        workflow.shell("echo", #"printf 'got %s' "$(cat "$DATAFLOW_INPUT_TEXT")" > "$DATAFLOW_OUTPUT""#, inputs: ("text", add), output: String.self)
        guard failingTasks else { return workflow }
        workflow.task("fails") { () throws -> Int in
            struct Broken: Error, CustomStringConvertible { var description: String { "broken on purpose" } }
            throw Broken()
        }
        workflow.task("preempted", options: TaskOptions(retries: RetryPolicy(preemptions: 0))) { () throws -> Int in
            throw TaskPreempted("the test preempts it")
        }
        workflow.task("slow", options: TaskOptions(timeoutSeconds: 0.5)) { () async throws -> Int in
            try await Task.sleep(nanoseconds: 30_000_000_000)
            return 1
        }
        return workflow
    }

    /// A task that waits (cancellably) until the run is cancelled; it leaves its pid first.
    public static func conformanceCancel() -> Workflow {
        let workflow = Workflow("conformance-cancel")
        workflow.task("waits") { () async throws -> Int in
            let context = TaskContext.current!
            try? "\(getpid())".write(toFile: cancelMarkerPath(runID: context.runID, attempt: context.attempt), atomically: true, encoding: .utf8)
            try await Task.sleep(nanoseconds: 60_000_000_000)
            return 1
        }
        return workflow
    }

    /// A program to interrupt: "make" (a 1 MiB tensor) → "waits" (writes its marker, then sleeps
    /// ten minutes) → "total". Where values cross through files, "make"'s output is an exchange
    /// file while "waits" runs.
    public static func interruptible() -> Workflow {
        let workflow = Workflow("interruptible")
        let make = workflow.task("make") { () throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: [1 << 18], of: Float.self) { x in
                for i in x.indices { x[i] = 1 }
            }
        }
        let waits = workflow.task("waits", make) { (x: Tensor<Float>) async throws -> Double in
            try? FileManager.default.createDirectory(atPath: markerDirectory, withIntermediateDirectories: true)
            try? "\(getpid())".write(toFile: markerPath(task: "waits", attempt: TaskContext.current!.attempt), atomically: true, encoding: .utf8)
            // Ten minutes: a test under ThreadSanitizer beside 20 suites may take a minute to
            // see the marker and send its signal.
            try await Task.sleep(nanoseconds: 600_000_000_000)
            return x.reduce(0.0) { $0 + Double($1) }
        }
        workflow.task("total", waits) { (sum: Double) in sum }
        return workflow
    }

    /// One graph over three executors: "make" names the executor "pool"; "scale" has the label
    /// "remote"; "total" runs on the run's default.
    public static func mixedExecutors() -> Workflow {
        let workflow = Workflow("mixed-executors")
        let made = workflow.task("make", options: TaskOptions(executor: "pool")) { () throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: [1 << 16], of: Float.self) { out in
                for index in out.indices { out[index] = Float(index % 3) }
            }
        }
        let scaled = workflow.task("scale", made, options: TaskOptions(labels: ["remote"])) { (x: Tensor<Float>) in
            Tensor<Float>(x.scalars.map { $0 * 10 })
        }
        workflow.task("total", scaled) { (x: Tensor<Float>) in x.reduce(0.0) { $0 + Double($1) } }
        return workflow
    }

    /// What pool workers' tasks write: last words before a crash, a long task's log read while
    /// it runs, and a task that writes nothing.
    public static func poolOutput() -> Workflow {
        let workflow = Workflow("pool-output")
        workflow.task("speaks-then-crashes") { () -> Int in
            FileHandle.standardError.write(Data("last words before the crash\n".utf8))
            fatalError("the task broke on purpose")
        }
        // Says it started, then waits (up to a minute) for the test's go-ahead file.
        workflow.task("long-talker") { () async throws -> Int in
            print("started")
            fflush(nil)  // (print goes through the C stream's buffer)
            let go = markerPath(task: "long-talker", attempt: 0) + ".go"
            for _ in 0..<3000 where !FileManager.default.fileExists(atPath: go) {
                try await Task.sleep(nanoseconds: 20_000_000)
            }
            print("finished")
            return 1
        }
        workflow.task("quiet") { 2 }
        return workflow
    }

    /// Messages too large for a worker channel's slots: a gather of 1,500 inputs (a request of
    /// about 150 KB) and a task that fails with a message of 100,000 characters.
    public static func poolLargeMessages() -> Workflow {
        let workflow = Workflow("pool-large-messages")
        let parts = workflow.map("part", over: Array(0..<1_500)) { (index: Int) in index }
        workflow.gather("sum", parts) { (values: [Int]) in values.reduce(0, +) }
        workflow.task("fails-at-length") { () throws -> Int in
            struct Verbose: Error, CustomStringConvertible { var description: String { "long:" + String(repeating: "x", count: 100_000) + ":end" } }
            throw Verbose()
        }
        return workflow
    }

    /// A task that starts a long-lived child process (its pid left in a marker), then hangs past
    /// its timeout: killing the worker must be noticed although the child lives on.
    public static func poolGrandchild() -> Workflow {
        let workflow = Workflow("pool-grandchild")
        workflow.task("starts-a-child", options: TaskOptions(timeoutSeconds: 1)) { () throws -> Int in
            let child = try ChildProcess.spawn(executable: "/bin/sleep", arguments: ["600"])
            try? "\(child.pid)".write(toFile: markerPath(task: "grandchild", attempt: 1), atomically: true, encoding: .utf8)
            while true { sleep(1) }
        }
        return workflow
    }
}
