import Dataflow
import Foundation

/// `dataflow bench --peers ray,numpy`: the same chain (and `ray.put` at the put sizes) through
/// other systems, in the same bench run, by `python/bench_peers.py` (see its docstring). A peer
/// that cannot run (no `python3`, no script, no NumPy or Ray) adds a note instead of results.
enum BenchPeers {
    static let known = ["ray", "numpy"]

    /// The script: `$DATAFLOW_PYTHON_DIR/bench_peers.py`, else `python/bench_peers.py` in the
    /// working directory or above the `dataflow` executable (a build inside the project).
    static func scriptPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        var candidates: [String] = []
        if let directory = environment["DATAFLOW_PYTHON_DIR"] { candidates.append("\(directory)/bench_peers.py") }
        candidates.append(FileManager.default.currentDirectoryPath + "/python/bench_peers.py")
        var directory = ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]) as NSString
        for _ in 0..<6 {
            directory = directory.deletingLastPathComponent as NSString
            candidates.append("\(directory)/python/bench_peers.py")
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Runs `peer` at the settings' sizes, stages and runs; its results, and notes for people.
    static func run(_ peer: String, settings: BenchSettings, python: String = "python3") async -> (results: [BenchResult], notes: [String]) {
        guard let script = scriptPath() else {
            return ([], ["peer \(peer): skipped, python/bench_peers.py not found (run from the project directory, or set DATAFLOW_PYTHON_DIR)"])
        }
        let sizes = settings.sizes.map(String.init).joined(separator: ",")
        let output = "\(settings.scratchDirectory)/peer-\(peer).json", errors = "\(settings.scratchDirectory)/peer-\(peer).log"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let arguments = [
            "-c", "exec \"$0\" \"$@\"", python, script, peer, "--sizes", sizes, "--stages", "\(settings.stages)", "--runs", "\(settings.runs)",
            "--scratch", settings.scratchDirectory,
        ]
        let child: Dataflow.ChildProcess
        do {
            child = try Dataflow.ChildProcess.spawn(executable: "/bin/sh", arguments: arguments, outputFile: output, errorFile: errors)
        } catch {
            return ([], ["peer \(peer): skipped, cannot start \(python): \(error.message)"])
        }
        let exit = await child.exit()
        let log = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        guard exit == .exited(0), let data = FileManager.default.contents(atPath: output),
            let document = try? JSONDecoder().decode(Document.self, from: data)
        else {
            let last = log.split(separator: "\n").last.map(String.init) ?? ""
            let why = exit == .exited(127) ? "\(python) is not installed" : "\(python) \(script) \(peer) \(exit)\(last.isEmpty ? "" : ": \(last)")"
            return ([], ["peer \(peer): skipped, \(why) (its log: \(errors))"])
        }
        let results = document.results.map {
            BenchResult(benchCase: $0.case, bytes: $0.bytes, samples: $0.samples, unit: $0.unit == "op" ? .operation : .run)
        }
        return (results, document.notes)
    }

    private struct Document: Decodable {
        struct Result: Decodable {
            var `case`: String
            var bytes: Int
            var samples: [Double]
            var unit: String
        }
        var results: [Result]
        var notes: [String]
    }
}
