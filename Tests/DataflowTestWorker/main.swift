// A program that builds workflows, as a user's `main` would, and can be started again as a
// worker: for one task (`--dataflow-worker spec.json`, the worker-mode tests and the SLURM and Ray
// jobs) or as a warm worker of a process executor (`--dataflow-worker-pool`, the process-executor
// tests). `--drive-ray ADDRESS TOKEN_FILE WORKDIR RUN_ID` makes it a driver instead: it runs
// `conformance-cancel` (a task that waits a minute) on the Ray executor, for the test that kills
// a driver. `--program WORKFLOW ARGUMENTS...` makes it a workflow program with the `dataflow`-style
// command line (`WorkflowCommandLine.run`) for one of the test workflows, as a user's `main` is,
// for the tests that send it signals.
import Dataflow
import DataflowCLI
import DataflowRay
import DataflowTestWorkflows
import Foundation

await Workflow.runWorkerIfRequested(TestWorkflows.all())
let arguments = CommandLine.arguments
if arguments.count >= 3, arguments[1] == "--program" {
    guard let workflow = TestWorkflows.all().first(where: { $0.name == arguments[2] }) else {
        print("no test workflow named \(arguments[2])")
        exit(2)
    }
    exit(await WorkflowCommandLine.run(workflow, arguments: Array(arguments.dropFirst(3))))
}
if arguments.count == 6, arguments[1] == "--drive-ray" {
    do {
        try FileManager.default.createDirectory(atPath: TestWorkflows.markerDirectory, withIntermediateDirectories: true)
        let ray = try RayExecutor(.init(dashboardAddress: arguments[2], tokenFile: arguments[3], executable: arguments[0]))
        var options = RunOptions(workdir: arguments[4], storeCapacityBytes: 16 << 20, executor: ray)
        options.runID = arguments[5]
        _ = try await TestWorkflows.conformanceCancel().run(options)
        print("the run ended")
    } catch {
        print("the run failed: \(error)")
    }
    exit(0)
}
print("usage: DataflowTestWorker --dataflow-worker SPEC.json | --dataflow-worker-pool | --drive-ray ADDRESS TOKEN_FILE WORKDIR RUN_ID | --program WORKFLOW ARGUMENTS...")
