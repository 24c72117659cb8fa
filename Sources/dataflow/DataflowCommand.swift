import ArgumentParser
import Dataflow
import Foundation

/// `dataflow`: run the demo pipeline, benchmark disk against memory passing, and inspect stores
/// and runs. Every subcommand answers `--help`.
/// The program's entry: first, a worker of the process executor (this program started again
/// with `--dataflow-worker-pool`) serves the bench workflows; otherwise the command runs.
@main
enum DataflowMain {
    /// The workflows a worker of this program may be asked for: the bench cases' and the demo's.
    static func workflow(named name: String) -> Workflow? {
        BenchWorkflows.make(named: name) ?? DemoPipeline.make(named: name)
    }

    static func main() async {
        await Workflow.runWorkerIfRequested(building: DataflowMain.workflow(named:))
        exit(await run(CommandLine.arguments.dropFirst().map { $0 }))
    }

    /// Parses and runs `arguments`; returns the exit status. One rule for every subcommand:
    /// 0 on success (and for `--help`, `--version`), 1 for any error — a bad or missing option
    /// (ArgumentParser would say 64), a value out of range, a missing store or run, a failed
    /// run. The message goes to standard error as `Error: ...` with the usage where it helps.
    static func run(_ arguments: [String]) async -> Int32 {
        do {
            var command = try DataflowCommand.parseAsRoot(arguments)
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
            return 0
        } catch {
            let code = DataflowCommand.exitCode(for: error)
            let message = DataflowCommand.fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { print(message) }
                return 0
            }
            if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
            return 1
        }
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
        subcommands: [DemoCommand.self, BenchCommand.self, StoreCommand.self, RunsCommand.self, BenchChildCommand.self, ScaleRunCommand.self]
    )
}
