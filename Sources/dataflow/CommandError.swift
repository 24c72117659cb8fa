import Dataflow
import DataflowCLI
import Foundation

/// The errors of the `dataflow` command. Each message names the option, store, run or file at
/// fault (quoted, control characters escaped); the command prints it as `Error: <message>` and
/// exits with status 1 (see `DataflowMain`).
enum CommandError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A name (of a store, a run) that can be no such thing: `kind` says which.
    case invalidName(kind: String, name: String, reason: String)
    /// A size string that does not parse (`option` names where it came from).
    case invalidSize(value: String, option: String, reason: String)
    /// An option value out of range or not understood.
    case invalidOption(option: String, value: String, reason: String)
    /// No store of this name exists in /dev/shm.
    case storeNotFound(name: String)
    /// The store exists but could not be read.
    case storeUnreadable(name: String, reason: String)
    /// No run of this id under the work directory.
    case runNotFound(run: String, workdir: String, known: [String])
    /// A run id prefix that matches several runs.
    case ambiguousRun(run: String, matches: [String])
    /// The run log exists but does not parse.
    case runLogUnreadable(path: String, reason: String)
    /// A benchmark case failed.
    case benchFailed(benchCase: String, bytes: Int, reason: String)
    /// A step of the demo failed.
    case demoFailed(reason: String)
    /// A file operation failed.
    case io(path: String, operation: String, reason: String)

    var description: String {
        switch self {
        case .invalidName(let kind, let name, let reason):
            return "invalid \(kind) name \(quoted(name)): \(reason)"
        case .invalidSize(let value, let option, let reason):
            return "invalid size \(quoted(value)) for \(option): \(reason) (examples: 4096, 64KiB, 1MiB, 256MiB, 1GiB, 1.5GB)"
        case .invalidOption(let option, let value, let reason):
            return "invalid value \(quoted(value)) for \(option): \(reason)"
        case .storeNotFound(let name):
            return "no store named \(quoted(name)) exists (looked for /dev/shm/dataflow.\(name))"
        case .storeUnreadable(let name, let reason):
            return "cannot read store \(quoted(name)): \(reason)"
        case .runNotFound(let run, let workdir, let known):
            let list = known.isEmpty ? "there are no runs there" : "known runs: " + known.prefix(10).joined(separator: ", ") + (known.count > 10 ? ", ..." : "")
            return "no run \(quoted(run)) under '\(workdir)/runs' (\(list); set --workdir or $DATAFLOW_WORKDIR)"
        case .ambiguousRun(let run, let matches):
            return "run \(quoted(run)) is ambiguous: it starts \(matches.count) run ids (\(matches.joined(separator: ", ")))"
        case .runLogUnreadable(let path, let reason):
            return "cannot read run log \(quoted(path)): \(reason)"
        case .benchFailed(let benchCase, let bytes, let reason):
            return "bench case \(quoted(benchCase)) at \(ByteSize(bytes)) failed: \(reason)"
        case .demoFailed(let reason):
            return "demo failed: \(reason)"
        case .io(let path, let operation, let reason):
            return "\(operation) \(quoted(path)) failed: \(reason)"
        }
    }
}

extension CommandError: LocalizedError {
    var errorDescription: String? { description }
}

/// `text` in single quotes with control characters, quotes and backslashes escaped.
func quoted(_ text: String) -> String { DataflowError.quote(text) }
