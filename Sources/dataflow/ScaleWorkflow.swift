import ArgumentParser
import Dataflow
import DataflowCLI
import Foundation

/// The workflow of `dataflow scale-run` and the `scale/` bench cases: one `map` of `tasks`
/// trivial tasks (task k returns k * 3) and a `gather` that sums them — the shape of a
/// parameter sweep or a per-file step over a large data set, where the cost per task, not per
/// byte, decides.
enum ScaleWorkflow {
    static func make(tasks: Int) -> Workflow {
        let workflow = Workflow("scale-\(tasks)")
        let parts = workflow.map("part", over: Array(0..<tasks)) { (k: Int) in k * 3 }
        workflow.gather("sum", parts) { (values: [Int]) in values.reduce(0, &+) }
        return workflow
    }

    /// What `sum` comes to: 3 * (0 + 1 + ... + tasks - 1).
    static func expectedSum(tasks: Int) -> Int { 3 * (tasks * (tasks - 1) / 2) }
}

/// `dataflow scale-run --tasks N [workflow options]` (hidden): runs `ScaleWorkflow` of N tasks as
/// a workflow program does (`WorkflowCommandLine`: the run, its summary), so that the `scale/`
/// bench cases can time and measure the whole process.
struct ScaleRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale-run",
        abstract: "Run a map of N trivial tasks and a gather as a workflow program (started by `dataflow bench`).",
        shouldDisplay: false)

    @Option(help: "Tasks in the map.") var tasks: Int = 100_000
    @Flag(help: "Print the process's peak resident memory (VmHWM) to standard error at the end.") var reportPeakMemory = false
    @Argument(parsing: .captureForPassthrough, help: "The workflow program's options (--workdir, -j, ...).") var options: [String] = []

    func run() async throws {
        guard tasks >= 1 else { throw CommandError.invalidOption(option: "--tasks", value: "\(tasks)", reason: "must be at least 1") }
        let status = await WorkflowCommandLine.run(ScaleWorkflow.make(tasks: tasks), arguments: options)
        if reportPeakMemory, let peak = Self.peakResidentKiB() {
            FileHandle.standardError.write(Data("dataflow scale-run: peak resident memory \(peak) KiB\n".utf8))
        }
        if status != 0 { throw ExitCode(status) }
    }

    /// This process's peak resident set (`VmHWM` in /proc/self/status), in KiB.
    static func peakResidentKiB() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return nil }
        return Int(line.split(separator: " ").dropFirst().first { !$0.isEmpty } ?? "")
    }
}

/// `scale/map-gather-<N>`: `dataflow scale-run --tasks N` as a child process, as a user runs a
/// workflow program; a sample is the whole process's wall time (graph, store, run, summary,
/// exit) divided by N: seconds per task, which must not grow with N. Each run also notes the
/// process's peak resident memory and the run log's bytes per task, and times `dataflow runs
/// list` and `dataflow runs show` on the run (`BenchNotes`). Only with `--cases scale/` (the
/// million-task case takes about ten seconds a run).
struct ScaleMapGather: BenchCase {
    let tasks: Int
    var name: String { "scale/map-gather-\(Self.label(tasks))" }
    let unit = BenchUnit.operation
    func sizes(_ settings: BenchSettings) -> [Int] { [MemoryLayout<Int>.size] }

    static let taskCounts = [10_000, 100_000, 1_000_000]

    static func label(_ count: Int) -> String {
        count >= 1_000_000 ? "\(count / 1_000_000)M" : count >= 1_000 ? "\(count / 1_000)k" : "\(count)"
    }

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        guard let executable = settings.childExecutable else {
            throw CommandError.benchFailed(benchCase: name, bytes: bytes, reason: "cannot find the `dataflow` executable to start (set $DATAFLOW_EXECUTABLE)")
        }
        var samples: [Double] = []
        var peaks: [Int] = [], logBytes: [Int] = [], listSeconds: [Double] = [], showSeconds: [Double] = []
        for run in 0..<settings.runs {
            let workdir = "\(settings.scratchDirectory)/scale-\(tasks)-\(run)"
            defer { try? FileManager.default.removeItem(atPath: workdir) }
            var output: ChildProcess.Output?
            let seconds = try Stopwatch.time {
                output = try ChildProcess.run(executable, ["scale-run", "--tasks", "\(tasks)", "--report-peak-memory", "--workdir", workdir, "--progress", "never"])
            }
            guard let output, output.status == 0, output.standardOutput.contains("result sum: 8 B in memory = \(ScaleWorkflow.expectedSum(tasks: tasks))") else {
                throw CommandError.benchFailed(benchCase: name, bytes: bytes, reason: "the run failed: \(output?.standardError ?? "")\(output?.standardOutput ?? "")")
            }
            samples.append(seconds / Double(tasks))
            if let range = output.standardError.range(of: "peak resident memory ") {
                peaks.append((Int(output.standardError[range.upperBound...].prefix { $0.isNumber }) ?? 0) * 1024)
            }
            let runID = (try? FileManager.default.contentsOfDirectory(atPath: "\(workdir)/runs"))?.first ?? ""
            let log = RunDirectory(workdir: workdir, runID: runID).logPath
            logBytes.append((try? FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? 0)
            listSeconds.append(try Stopwatch.time { _ = try ChildProcess.run(executable, ["runs", "list", "--workdir", workdir]) })
            showSeconds.append(try Stopwatch.time { _ = try ChildProcess.run(executable, ["runs", "show", runID, "--workdir", workdir]) })
        }
        let peak = Statistics.median(peaks.map(Double.init)), bytesPerTask = Statistics.median(logBytes.map(Double.init)) / Double(tasks)
        BenchNotes.add(
            "\(name): whole process \(String(format: "%.2f", Statistics.median(samples) * Double(tasks))) s, "
                + "peak resident memory \(ByteSize.human(Int(peak))) (\(Int(peak / Double(tasks))) B per task), "
                + "run log \(Int(bytesPerTask)) B per task, `runs list` \(Int(Statistics.median(listSeconds) * 1000)) ms, "
                + "`runs show` \(Int(Statistics.median(showSeconds) * 1000)) ms (medians of \(settings.runs))")
        return samples
    }
}

/// Notes that cases add to the bench report (figures that are not times).
///
/// - Note: Thread-safe (a lock).
enum BenchNotes {
    private static let notes = LockedNotes()

    static func add(_ note: String) { notes.add(note) }
    static func take() -> [String] { notes.take() }

    final class LockedNotes: @unchecked Sendable {  // `list` is guarded by `lock`
        private let lock = NSLock()
        private var list: [String] = []
        func add(_ note: String) { lock.withLock { list.append(note) } }
        func take() -> [String] { lock.withLock { defer { list = [] }; return list } }
    }
}
