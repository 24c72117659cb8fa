import ArgumentParser
import Dataflow
import Foundation

/// `dataflow`: run the demo pipeline, benchmark disk against memory passing, and inspect stores
/// and runs. Every subcommand answers `--help`.
/// The program's entry: first, a worker of the process executor (this program started again
/// with `--dataflow-worker-pool`) serves the bench workflows; otherwise the command runs.
@main
enum DataflowMain {
    static func main() async {
        await Workflow.runWorkerIfRequested(building: BenchWorkflows.make(named:))
        await DataflowCommand.main()
    }
}

struct DataflowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataflow",
        abstract: "Run graphs of tasks that pass typed values through a shared-memory object store.",
        discussion: """
            Subcommands: `demo` runs a small ML pipeline; `bench` compares passing values through \
            files with passing them through the store; `store stats` and `runs list|show` inspect \
            what a workflow left behind. The work directory (runs/, spill/) is --workdir, \
            $DATAFLOW_WORKDIR, or ./.dataflow.
            """,
        version: "0.6.0",
        subcommands: [DemoCommand.self, BenchCommand.self, StoreCommand.self, RunsCommand.self, BenchChildCommand.self]
    )
}
