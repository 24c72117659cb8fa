import ArgumentParser
import Foundation
import ObjectStore

/// `dataflow store stats NAME`: what a live store holds, who is attached, what pins memory.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Inspect a shared-memory object store.",
        subcommands: [Stats.self])

    /// `dataflow store stats NAME`.
    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Attach to a store by name and print bytes by state, objects, high-water mark, largest free block, processes, the largest objects, and spilled bytes.",
            discussion: """
                NAME is the store's name without the `dataflow.` prefix (the segment is \
                /dev/shm/dataflow.NAME); a workflow's embedded store is `run-<run id>`. Spilled \
                bytes are those of <workdir>/spill/<NAME>-<instance id>/ if it exists. This command \
                attaches for a moment, so it counts itself among the processes.
                """)

        @OptionGroup var workdirOptions: WorkdirOptions
        @Argument(help: "The store's name.") var name: String
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text

        func run() async throws {
            let report = try StoreReport.make(storeNamed: name, workdir: workdirOptions.resolved)
            print(format == .json ? try JSONOutput.encode(report) : report.text, terminator: "\n")
        }
    }
}
