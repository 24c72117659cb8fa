// The worker program of the process-executor benchmarks: builds the benchmark workflows and
// serves as a warm worker (`--dataflow-worker-pool`).
import BenchWorkflows
import Dataflow

await Workflow.runWorkerIfRequested(BenchWorkflows.all())
print("usage: DataflowBenchWorker --dataflow-worker-pool")
