// A program that builds workflows, as a user's `main` would, and can be started again as a
// worker: for one task (`--dataflow-worker spec.json`, the worker-mode tests) or as a warm
// worker of a process executor (`--dataflow-worker-pool`, the process-executor tests).
import Dataflow
import DataflowTestWorkflows

await Workflow.runWorkerIfRequested(TestWorkflows.all())
print("usage: DataflowTestWorker --dataflow-worker SPEC.json | --dataflow-worker-pool")
