import Dataflow
import DataflowSlurm
import Foundation

/// The SLURM cases (`dataflow bench --cases slurm/`; only when asked for: they need a cluster):
/// a fan-out of trivial tasks through the SLURM executor, beside the same number of raw jobs
/// submitted and observed to completion the way any script would, in the same run. A sample is
/// the whole run's time divided by the task count, 100 (seconds per task).
///
/// - `slurm/raw-jobs`: N `sbatch --wrap true`, then `squeue -t all` every 0.25 s until all ended.
/// - `slurm/raw-array`: one `sbatch --array=0-(N-1) --wrap true`, observed the same way.
/// - `slurm/fanout-jobs`: a `map` of N trivial Swift tasks, one job each (`arrays = false`).
/// - `slurm/fanout-array`: the same `map` as one job array (the executor's default).
enum SlurmCases {
    static func all() -> [any BenchCase] {
        [SlurmRawJobs(array: false), SlurmRawJobs(array: true), SlurmFanout(arrays: false), SlurmFanout(arrays: true)]
    }

    /// Tasks (or raw jobs) per sample.
    static let taskCount = 100
}

/// Raw submissions, observed until every job ended (`squeue -t all`, polled every 0.25 s).
struct SlurmRawJobs: BenchCase {
    let array: Bool
    var name: String { array ? "slurm/raw-array" : "slurm/raw-jobs" }
    let unit = BenchUnit.operation
    func sizes(_ settings: BenchSettings) -> [Int] { [MemoryLayout<Int>.size] }

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let count = SlurmCases.taskCount
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            let name = "dataflow-bench-raw-\(getpid())"
            let seconds = try await Stopwatch.time {
                var ids: [String] = []
                if array {
                    ids.append(try Self.sbatch(["--parsable", "--job-name=\(name)", "-o", "/dev/null", "--array=0-\(count - 1)", "--wrap", "true"]))
                } else {
                    for _ in 0..<count { ids.append(try Self.sbatch(["--parsable", "--job-name=\(name)", "-o", "/dev/null", "--wrap", "true"])) }
                }
                while true {
                    let states = try Self.command("/usr/bin/squeue", ["-h", "-t", "all", "--jobs=\(ids.joined(separator: ","))", "-o", "%T"])
                        .split(whereSeparator: \.isNewline)
                    let active = states.filter { ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING"].contains(String($0)) }
                    if active.isEmpty && states.count >= (array ? 1 : count) { break }
                    try await Task.sleep(nanoseconds: 250_000_000)
                }
            }
            samples.append(seconds / Double(count))
        }
        return samples
    }

    static func sbatch(_ arguments: [String]) throws -> String {
        let output = try command("/usr/bin/sbatch", arguments).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !output.isEmpty, output.split(separator: ";")[0].allSatisfy(\.isNumber) else {
            throw CommandError.benchFailed(benchCase: "slurm/raw", bytes: 0, reason: "sbatch did not answer with a job id: \(output)")
        }
        return String(output.split(separator: ";")[0])
    }

    /// Runs a SLURM tool (a blocking call: the bench runs cases one at a time).
    static func command(_ path: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CommandError.benchFailed(benchCase: "slurm/raw", bytes: 0, reason: "\(path) \(arguments.joined(separator: " ")) exited with status \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// A `map` of trivial tasks through the SLURM executor (the `dataflow` program is each job's
/// worker; it builds `bench-slurm-fanout-<n>` again).
struct SlurmFanout: BenchCase {
    let arrays: Bool
    var name: String { arrays ? "slurm/fanout-array" : "slurm/fanout-jobs" }
    let unit = BenchUnit.operation
    func sizes(_ settings: BenchSettings) -> [Int] { [MemoryLayout<Int>.size] }

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let count = SlurmCases.taskCount
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            let executor = try SlurmExecutor(.init(arrays: arrays))
            let workflow = BenchWorkflows.slurmFanout(count: count)
            let bench = try BenchStore(valueBytes: count * 256, liveValues: 1, maxObjects: 4 * count + 1024)
            defer { bench.remove() }
            var options = RunOptions(workdir: settings.scratchDirectory, store: bench.store, results: [], executor: executor)
            options.progress = .never
            var finished: WorkflowRun?
            let seconds = try await Stopwatch.time { finished = try await workflow.run(options) }
            if let run = finished { try? FileManager.default.removeItem(atPath: run.directory) }
            samples.append(seconds / Double(count))
        }
        return samples
    }
}
