import ArgumentParser
import Dataflow
import DataflowCLI

/// The workflow of `dataflow scale-run` and the `scale/` bench cases: one `map` of `tasks`
/// trivial tasks (task k returns k * 3) and a `gather` that sums them — the shape of a
/// parameter sweep or a per-file step over a large data set, where the cost per task, not per
/// byte, decides.
enum ScaleWorkflow {
    static func make(tasks: Int) -> Workflow {
        let workflow = Workflow("scale-\(tasks)")
        let parts = workflow.map("part", over: Array(0..<tasks)) { (k: Int) in k * 3 }
        workflow.gather("sum", parts) { (values: [Int]) in values.reduce(0, &+) }
        return workflow
    }

    /// What `sum` comes to: 3 * (0 + 1 + ... + tasks - 1).
    static func expectedSum(tasks: Int) -> Int { 3 * (tasks * (tasks - 1) / 2) }
}

/// `dataflow scale-run --tasks N [workflow options]` (hidden): runs `ScaleWorkflow` of N tasks as
/// a workflow program does (`WorkflowCommandLine`: the run, its summary), so that the `scale/`
/// bench cases can time and measure the whole process.
struct ScaleRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale-run",
        abstract: "Run a map of N trivial tasks and a gather as a workflow program (started by `dataflow bench`).",
        shouldDisplay: false)

    @Option(help: "Tasks in the map.") var tasks: Int = 100_000
    @Argument(parsing: .captureForPassthrough, help: "The workflow program's options (--workdir, -j, ...).") var options: [String] = []

    func run() async throws {
        guard tasks >= 1 else { throw CommandError.invalidOption(option: "--tasks", value: "\(tasks)", reason: "must be at least 1") }
        let status = await WorkflowCommandLine.run(ScaleWorkflow.make(tasks: tasks), arguments: options)
        if status != 0 { throw ExitCode(status) }
    }
}
