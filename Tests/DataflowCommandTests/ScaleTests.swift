import Dataflow
import DataflowCLI
import Foundation
import ObjectStore
import Testing
@testable import DataflowCommand

/// Runs whose cost must grow with their work, not with their bookkeeping, tried as a user
/// would: `dataflow scale-run` (a map of N trivial tasks and a gather, through
/// `WorkflowCommandLine`) with default options, then `runs list` and `runs show` on it.
@Suite(.serialized) struct ScaleTests {
    func temporaryDirectory() -> String {
        NSTemporaryDirectory() + "dataflow-scale-test-\(UUID().uuidString)"
    }

    static let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("dataflow").path

    /// `dataflow scale-run ARGUMENTS`, as a user runs it: its exit status and standard output.
    func scaleRun(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["scale-run"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    /// A map of 100,000 tasks (more than the 65,536 objects a 1 GiB store held by default) runs
    /// with default options; its summary, `runs list` and `runs show` come from the log's ends,
    /// and its log stays small per task.
    @Test func aHundredThousandTaskMapRunsWithDefaultOptions() async throws {
        let workdir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: workdir) }
        let tasks = 100_000
        let (status, output) = try scaleRun(["--tasks", "\(tasks)", "--workdir", workdir, "--progress", "never"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("\(tasks + 1) succeeded, 0 failed, 0 skipped"), "\(output)")
        #expect(output.contains("result sum: 8 B in memory = \(ScaleWorkflow.expectedSum(tasks: tasks))"), "\(output)")
        let runs = try FileManager.default.contentsOfDirectory(atPath: "\(workdir)/runs")
        let logPath = RunDirectory(workdir: workdir, runID: runs[0]).logPath
        let logBytes = try FileManager.default.attributesOfItem(atPath: logPath)[.size] as? Int ?? 0
        // 864 bytes per task before the log left out what lines share with the run.
        #expect(logBytes / tasks < 520, "\(logBytes / tasks) bytes per task")
        let (_, finished) = try RunLog.readEnds(at: logPath)
        #expect(finished?.succeeded == tasks + 1 && finished?.results?.first?.task == "sum" && finished?.executors == ["local"])
        #expect(finished?.valueCounts == RunLogEvent.ValueCounts(inMemory: 1, inFiles: 0, freed: tasks))
        let list = try RunsCommand.List.render(workdir: workdir, format: .text)
        #expect(list.contains(runs[0]) && list.contains("\(tasks + 1)") && list.contains("succeeded"), "\(list)")
        let show = try RunsCommand.Show.render(run: runs[0], workdir: workdir, format: .text)
        #expect(show.contains("part[0]") && show.contains("... and \(tasks + 1 - RunsCommand.Show.firstScreenTasks) more task(s)"), "\(show.prefix(2000))")
        #expect(show.split(separator: "\n").count < RunsCommand.Show.firstScreenTasks + 20)
    }

    /// A store limit still hit (`max_objects` set too low) stops the run with one short message
    /// that names the limit, its value and how to raise it, not one copy per task.
    @Test func aStoreLimitIsOneShortMessage() async throws {
        let workdir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: workdir) }
        try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
        let config = "\(workdir)/dataflow.toml"
        try "[run]\nmax_objects = 200\n".write(toFile: config, atomically: true, encoding: .utf8)
        let workflow = ScaleWorkflow.make(tasks: 2_000)
        var options = try WorkflowRunArguments.parse(["--config", config, "--workdir", workdir, "--keep-going"]).runOptions(for: workflow)
        options.progress = .never
        #expect(options.maxObjects == 200)
        do {
            _ = try await workflow.run(options)
            Issue.record("expected the run to fail")
        } catch {
            #expect(error.code == .taskFailed)
            #expect(error.message.contains("holds its maximum of 200 objects") && error.message.contains("max_objects under [run] in dataflow.toml"), "\(error.message)")
            #expect(error.failures.count > 100 && error.message.count < 1_500, "\(error.failures.count) failures, \(error.message.count) characters")
            #expect(error.message.contains("and \(error.failures.count - 3) more") && error.message.contains("dataflow runs show"), "\(error.message)")
        }
    }

    /// A log cut off by a crash (its last line half written, no run-finished) stays readable:
    /// `runs list` shows the run unfinished, `runs show` its tasks.
    @Test func aLogCutOffByACrashStaysReadable() async throws {
        let workdir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: workdir) }
        let workflow = Workflow("cut-off")
        let first = workflow.task("first") { 1 }
        workflow.task("second", first) { (x: Int) in x + 1 }
        var options = RunOptions(workdir: workdir)
        options.progress = .never
        let run = try await workflow.run(options)
        // Keep everything but the run-finished line, then half a line, as a killed program leaves it.
        let lines = try String(contentsOfFile: run.logPath, encoding: .utf8).split(separator: "\n")
        let cut = lines.dropLast().joined(separator: "\n") + "\n" + String(lines[1].prefix(40))
        try cut.write(toFile: run.logPath, atomically: true, encoding: .utf8)
        let events = try RunLog.read(at: run.logPath)
        #expect(events.count == lines.count - 1 && events.allSatisfy { $0.runID == run.runID })
        let (started, finished) = try RunLog.readEnds(at: run.logPath)
        #expect(started?.kind == .runStarted && finished == nil)
        let list = try RunsCommand.List.render(workdir: workdir, format: .text)
        #expect(list.contains(run.runID) && list.contains("unfinished"), "\(list)")
        let show = try RunsCommand.Show.render(run: run.runID, workdir: workdir, format: .text)
        #expect(show.contains("first") && show.contains("second"), "\(show)")
    }
}
