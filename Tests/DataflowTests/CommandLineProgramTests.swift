import Dataflow
import Foundation
import Testing

/// A workflow program with one call in main (`Examples/CommandLineProgram`), run as a user runs
/// it: the same binary on threads or on warm workers by switching `--executor`, a configuration
/// file, `--dry-run`, and exit statuses.
@Suite struct CommandLineProgramTests {
    static let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("CommandLineProgram").path

    /// Runs the program; returns its exit status, standard output and standard error.
    func program(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        var variables = ProcessInfo.processInfo.environment
        for name in ["DATAFLOW_CONFIG", "DATAFLOW_EXECUTOR", "DATAFLOW_CONCURRENCY", "DATAFLOW_POLICY", "DATAFLOW_KEEP_GOING"] { variables[name] = nil }
        process.environment = variables.merging(environment) { $1 }
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let errorText = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let outputText = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, outputText, errorText)
    }


    @Test(arguments: ["local", "processes"])
    func theSameBinaryRunsOnThreadsOrOnWarmWorkers(executor: String) async throws {
        try await withWorkdir { workdir in
            let (status, output, error) = try program(["--executor", executor, "-j", "2", "--workdir", workdir, "--progress", "never"])
            #expect(status == 0, "\(error)")
            #expect(output.contains("3 succeeded, 0 failed, 0 skipped") && output.contains("on \(executor)"), "\(output)")
            #expect(output.contains("result total:"), "\(output)")
            let runs = try FileManager.default.contentsOfDirectory(atPath: "\(workdir)/runs")
            let events = try RunLog.read(at: "\(workdir)/runs/\(runs[0])/run.jsonl").filter { $0.kind == .attempt }
            #expect(events.count == 3 && events.allSatisfy { $0.executor == executor && $0.outcome == .succeeded })
        }
    }

    @Test func dryRunPrintsThePlanAndRunsNothing() async throws {
        try await withWorkdir { workdir in
            let (status, output, _) = try program(["--dry-run", "--workdir", workdir])
            #expect(status == 0)
            for expected in ["plan of workflow 'squares'", "numbers: on local (local)", "squares: on local", "total: on local", "cpu 1.0", "auto: in memory only"] {
                #expect(output.contains(expected), "\(expected):\n\(output)")
            }
            #expect(!FileManager.default.fileExists(atPath: "\(workdir)/runs"))
        }
    }

    /// A configuration file declares a pool and sends the label "heavy" to it.
    @Test func aConfigurationFileChoosesExecutorsByLabel() async throws {
        try await withWorkdir { workdir in
            let config = "\(workdir)/dataflow.toml"
            try """
                [run]
                workdir = "\(workdir)"
                concurrency = 2

                [executor.pool]
                type = "processes"
                workers = 1

                [label.heavy]
                executor = "pool"
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let (status, output, error) = try program(["--progress", "never"], environment: ["DATAFLOW_CONFIG": config])
            #expect(status == 0, "\(error)")
            #expect(output.contains("on local, pool"), "\(output)")
            let (planStatus, plan, _) = try program(["--config", config, "--dry-run"])
            #expect(planStatus == 0 && plan.contains("squares: on pool (processes)"), "\(plan)")
        }
    }

    @Test(arguments: [
        (["--jobs", "0"], "-j/--jobs"),
        (["--executor", "nowhere"], "--executor: no executor named 'nowhere'"),
        (["--executor", "nowhere"], "built in: local, processes, ray, slurm"),
        (["--policy", "sometimes"], "--policy"),
        (["--config", "/nonexistent/dataflow.toml"], "/nonexistent/dataflow.toml"),
        (["--bogus"], "--bogus"),
    ])
    func badOptionsExitWithStatusOneNamingThem(arguments: [String], expected: String) throws {
        let (status, _, error) = try program(arguments + ["--workdir", NSTemporaryDirectory()])
        #expect(status == 1 && error.contains(expected), "\(arguments): \(status) \(error)")
    }

    @Test func aBadConfigurationFileNamesTheFileTheKeyAndTheLine() async throws {
        try await withWorkdir { workdir in
            let config = "\(workdir)/dataflow.toml"
            try "[run]\nconcurrency = 2\nworkers = 4\n".write(toFile: config, atomically: true, encoding: .utf8)
            let (status, _, error) = try program(["--config", config])
            #expect(status == 1 && error.contains("\(config):3: run.workers: unknown key"), "\(error)")
        }
    }

    @Test func aTOMLSyntaxErrorNamesTheLineAndColumn() async throws {
        try await withWorkdir { workdir in
            let config = "\(workdir)/dataflow.toml"
            try "[run]\nworkdir = \"x\"\nconcurrency = \n".write(toFile: config, atomically: true, encoding: .utf8)
            let (status, _, error) = try program(["--config", config])
            #expect(status == 1 && error.contains("\(config):3:15: not valid TOML"), "\(error)")
        }
    }

    /// A label sent to an executor nobody declared: the label, the file and line, the known
    /// executors and the tasks that carry the label.
    @Test func aLabelMappedToAnUnknownExecutorNamesTheLabelTheLineAndItsTasks() async throws {
        try await withWorkdir { workdir in
            let config = "\(workdir)/dataflow.toml"
            try "[executor.pool]\ntype = \"processes\"\n\n[label.heavy]\nexecutor = \"gpu-farm\"\n".write(toFile: config, atomically: true, encoding: .utf8)
            let (status, _, error) = try program(["--config", config, "--workdir", workdir])
            #expect(status == 1, "\(error)")
            for expected in ["\(config):5: label.heavy.executor", "label 'heavy' is mapped to executor 'gpu-farm'", "declared: pool", "tasks carrying the label: 'squares'"] {
                #expect(error.contains(expected), "\(expected): \(error)")
            }
        }
    }

    /// The summary shows small results, says where they are and how to keep them; a resumed run
    /// says which earlier run a result came from.
    @Test func theSummaryShowsResultsAndWhereTheyCameFrom() async throws {
        try await withWorkdir { workdir in
            let (status, output, error) = try program(["--workdir", workdir, "--progress", "never", "--results", "squares,total"])
            #expect(status == 0, "\(error)")
            #expect(output.contains("result squares: 4.0 MiB in memory = tensor<float32> shape [1048576]: [0.0, 1.0, 4.0, 9.0, 16.0, 25.0, …]"), "\(output)")
            #expect(output.contains("result total: 8 B in memory = 3442893200.0"), "\(output)")
            #expect(output.contains("--policy final also writes the results to"), "\(output)")
            let (kept, keptOutput, _) = try program(["--workdir", workdir, "--progress", "never", "--policy", "final"])
            #expect(kept == 0 && keptOutput.contains("/values/total.dfspill = 3442893200.0") && !keptOutput.contains("gone when this program exits"), "\(keptOutput)")
            let first = keptOutput.split(separator: " ")[1].dropLast()  // "run <id>:"
            let (resumed, resumedOutput, _) = try program(["--workdir", workdir, "--progress", "never", "--policy", "final", "--resume"])
            #expect(resumed == 0, "\(resumedOutput)")
            #expect(resumedOutput.contains("0 succeeded, 0 failed, 0 skipped, 3 reused") && resumedOutput.contains("nothing ran"), "\(resumedOutput)")
            #expect(resumedOutput.contains("result total: 8 B reused from run \(first) (") && resumedOutput.contains("= 3442893200.0"), "\(resumedOutput)")
        }
    }
}
