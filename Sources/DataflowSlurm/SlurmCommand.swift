import Dataflow
import Foundation
import Synchronization

/// One call of a SLURM command-line tool (`sbatch`, `sacct`, `squeue`, `scancel`, `sinfo`,
/// `scontrol`): started as a `ChildProcess` (no blocked signals, no `Foundation.Process`), its
/// standard output and error captured apart, killed after a timeout. Awaiting it blocks no
/// thread.
///
/// - Note: A value type; thread-safe.
struct SlurmCommand: Sendable {
    /// What a finished call printed and how it ended.
    struct Result: Sendable {
        var status: Int32
        var output: String
        var error: String
        /// Both streams, for messages: SLURM prints its refusals on standard error.
        var message: String {
            let text = (error.isEmpty ? output : error).trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? "(no message; exit status \(status))" : text
        }
    }

    /// The tool's name (looked up on `PATH`) or absolute path.
    var tool: String
    var arguments: [String]
    /// The environment it runs with (nil: this process's).
    var environment: [String: String]?
    var timeoutSeconds: Double

    /// Runs the command to its end.
    /// - Throws: `.executor` naming the command line when it cannot start or runs past its
    ///   timeout (then it is killed).
    func run() async throws(DataflowError) -> Result {
        guard let executable = Self.resolve(tool) else {
            throw DataflowError(.executor, "slurm: cannot find '\(tool)' on PATH (is SLURM's client installed? `Scripts/slurm-local.sh install`)")
        }
        let stem = NSTemporaryDirectory() + "dataflow-slurm-\(getpid())-\(Self.counter.add(1, ordering: .relaxed).newValue)"
        let outputPath = stem + ".out", errorPath = stem + ".err"
        defer {
            unlink(outputPath)
            unlink(errorPath)
        }
        let child = try ChildProcess.spawn(
            executable: executable, arguments: arguments, environment: environment, outputFile: outputPath, errorFile: errorPath)
        let timedOut = Atomic<Bool>(false)
        let timeout = timeoutSeconds
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
            guard child.exitIfEnded == nil else { return }
            timedOut.store(true, ordering: .relaxed)
            child.signal(SIGKILL)
        }
        let exit = await child.exit()
        if timedOut.load(ordering: .relaxed) {
            throw DataflowError(.executor, "slurm: '\(commandLine)' did not answer within \(timeout) s (killed)")
        }
        let output = (FileManager.default.contents(atPath: outputPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let error = (FileManager.default.contents(atPath: errorPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        switch exit {
        case .exited(let status): return Result(status: status, output: output, error: error)
        case .signalled(let signal):
            throw DataflowError(.executor, "slurm: '\(commandLine)' was killed by signal \(signal): \(error)")
        }
    }

    /// The command line, for messages.
    var commandLine: String { ([tool] + arguments).joined(separator: " ") }

    private static let counter = Atomic<Int>(0)

    /// `tool` as an absolute path: itself if it has a slash, else the first match on `PATH`.
    static func resolve(_ tool: String) -> String? {
        if tool.contains("/") { return access(tool, X_OK) == 0 ? tool : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(tool)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
