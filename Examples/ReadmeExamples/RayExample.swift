import Dataflow
import DataflowRay

/// README, "Ray" (not run: it needs a head; the Ray tests run the same calls).
func rayExample(_ workflow: Workflow) async throws -> WorkflowRun {
    let ray = try RayExecutor(.init(dashboardAddress: "http://127.0.0.1:8265", maxSubmit: 16))
    let run = try await workflow.run(RunOptions(executor: ray))
    return run
}
