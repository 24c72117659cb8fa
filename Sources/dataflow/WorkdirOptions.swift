import ArgumentParser
import Dataflow
import Foundation

/// The `--workdir` option shared by the subcommands that read or write run directories.
struct WorkdirOptions: ParsableArguments {
    /// The environment variable that sets the default work directory.
    static let environmentVariable = RunOptions.workdirEnvironmentVariable

    @Option(name: .long, help: ArgumentHelp(
        "Work directory holding runs/ and spill/ (default: $DATAFLOW_WORKDIR, else ./.dataflow).",
        valueName: "dir"))
    var workdir: String?

    /// The work directory: the option, else the environment variable, else `./.dataflow`.
    var resolved: String {
        Self.resolve(workdir, environment: ProcessInfo.processInfo.environment)
    }

    /// `explicit`, else the library's default (`$DATAFLOW_WORKDIR`, else `./.dataflow`), made absolute.
    static func resolve(_ explicit: String?, environment: [String: String]) -> String {
        guard let explicit else { return RunOptions.defaultWorkdir(environment: environment) }
        if explicit.hasPrefix("/") { return explicit }
        return FileManager.default.currentDirectoryPath + "/" + explicit
    }
}

/// How a command prints its findings.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text
    case json
}
