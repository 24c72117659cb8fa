import Dataflow

/// README, "Re-runs: `--resume`".
func resumeExample(_ workflow: Workflow) async throws -> WorkflowRun {
    var options = RunOptions(workdir: "work")
    options.resume = true                    // reuse what is current
    options.rerun = ["evaluate"]             // ...but run this one whatever
    let run = try await workflow.run(options)
    return run
}
