import Dataflow
import DataflowSlurm

/// README, "SLURM" (not run: it needs a cluster; the SLURM tests run the same calls).
func slurmExample(_ workflow: Workflow) async throws -> WorkflowRun {
    let slurm = try SlurmExecutor(.init(partition: "batch", timeLimit: "01:00:00"))
    let run = try await workflow.run(RunOptions(executor: slurm))
    return run
}
