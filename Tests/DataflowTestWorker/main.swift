// A program that builds workflows, as a user's `main` would, and can be started again as a
// worker: for one task (`--dataflow-worker spec.json`, the worker-mode tests and the SLURM and Ray
// jobs) or as a warm worker of a process executor (`--dataflow-worker-pool`, the process-executor
// tests). `--drive-ray ADDRESS TOKEN_FILE WORKDIR RUN_ID` makes it a driver instead: it runs
// `conformance-cancel` (a task that waits a minute) on the Ray executor, for the test that kills
// a driver.
import Dataflow
import DataflowRay
import DataflowTestWorkflows
import Foundation

await Workflow.runWorkerIfRequested(TestWorkflows.all())
let arguments = CommandLine.arguments
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
print("usage: DataflowTestWorker --dataflow-worker SPEC.json | --dataflow-worker-pool | --drive-ray ADDRESS TOKEN_FILE WORKDIR RUN_ID")
