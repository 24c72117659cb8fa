import ArgumentParser
import Dataflow
import DataflowCLI
import Foundation
import ObjectStore

/// `dataflow demo`: synthesize a dataset, normalize it, fit a linear model by gradient descent
/// and evaluate it, as a workflow of Swift functions on an embedded store. Prints each step's
/// time (from the run log), the bytes handed between tasks without a copy, and the result files.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run an ML-flavoured pipeline (synthesize, normalize, fit, evaluate) through the store.",
        discussion: """
            Features and targets (float32, deterministic) are written in place in an embedded \
            shared-memory store; every later task reads them as views, without a copy. The \
            evaluation (a leaf) is kept under the `final` policy in <workdir>/runs/<run>/values/. \
            It takes every workflow program's options: `--executor processes` runs it on warm \
            worker processes, `--dry-run` prints the plan, `--config` reads a dataflow.toml.
            """)

    /// The options any workflow program has (`--executor`, `--config`, `-j`, `--workdir`, `--dry-run`, ...).
    @OptionGroup var runArguments: WorkflowRunArguments

    @Option(parsing: .unconditional, help: "Size of the synthetic dataset (features + targets) in MiB.")
    var megabytes: Int = 256

    @Option(parsing: .unconditional, help: "Number of features per row.")
    var features: Int = 64

    @Option(parsing: .unconditional, help: "Passes of mini-batch gradient descent over the training rows.")
    var epochs: Int = 3

    @Option(parsing: .unconditional, help: "Seed of the deterministic generator.")
    var seed: UInt64 = 42

    func validate() throws {
        guard megabytes >= 1, megabytes <= 64 * 1024 else {
            throw ValidationError("invalid value '\(megabytes)' for --megabytes: must be 1 ... 65536")
        }
        guard features >= 1, features <= 4096 else {
            throw ValidationError("invalid value '\(features)' for --features: must be 1 ... 4096")
        }
        guard epochs >= 1, epochs <= 1000 else {
            throw ValidationError("invalid value '\(epochs)' for --epochs: must be 1 ... 1000")
        }
    }

    func run() async throws {
        let report = try await Self.execute(
            megabytes: megabytes, features: features, epochs: epochs, seed: seed, arguments: runArguments)
        print(report, terminator: "")
    }

    /// Runs the demo (or prints its plan, with `--dry-run`) and returns what it prints.
    static func execute(megabytes: Int, features: Int, epochs: Int, seed: UInt64, arguments: WorkflowRunArguments) async throws -> String {
        let bytes = megabytes << 20
        let settings = DemoPipeline.Settings(
            rows: DemoPipeline.Settings.rows(forBytes: bytes, features: features), features: features, epochs: epochs, seed: seed)
        let (workflow, evaluationRef) = DemoPipeline.makeWorkflow(settings)
        var options: RunOptions
        do { options = try arguments.runOptions(for: workflow) } catch { throw CommandError.demoFailed(reason: "\(error)") }
        options.storeCapacityBytes = 3 * bytes + (64 << 20)
        if arguments.dryRun {
            do { return try arguments.planText(workflow, options) } catch { throw CommandError.demoFailed(reason: "\(error)") }
        }
        let workdir = options.workdir
        let clock = ContinuousClock.now
        let run: WorkflowRun
        do { run = try await workflow.run(options) } catch {
            throw CommandError.demoFailed(reason: "\(error)")
        }
        let wall = ContinuousClock.now - clock
        let evaluation = try run.result(evaluationRef)
        let summary = try RunSummary(directory: run.directory)

        var out = ""
        let featureBytes = settings.rows * features * 4
        out += "dataflow demo: \(settings.rows) rows × \(features) features (float32): features \(ByteSize.human(featureBytes)) + targets \(ByteSize.human(settings.rows * 4)), seed \(seed)\n"
        let executors = Set(summary.tasks.compactMap(\.executor)).sorted().joined(separator: ", ")
        out += "run \(run.runID) on \(executors.isEmpty ? "?" : executors), embedded store '\(run.store.name)', \(String(format: "%.2f", wall.seconds)) s in all\n\n"
        var table = TextTable(["step", "took", "in (views)", "out", "value"], rightAligned: [1, 2, 3])
        for task in summary.tasks {
            table.append([
                task.name, task.durationSeconds.map(Format.seconds) ?? "-", ByteSize.human(task.bytesIn),
                task.bytesOut.map(ByteSize.human) ?? "-", RunSummary.placement(of: task),
            ])
        }
        out += table.render()
        // Every input of a function task is a view of the producer's object in the store.
        let zeroCopy = summary.tasks.reduce(0) { $0 + $1.bytesIn }
        out += "\nbytes passed between tasks without a copy: \(ByteSize.human(zeroCopy)) (\(zeroCopy) B: the sum of every task's inputs, all store views)\n"
        let losses = evaluation.model.epochLosses.map { String(format: "%.4f", $0) }.joined(separator: ", ")
        out += "model: \(evaluation.model.epochLosses.count) epochs of mini-batch gradient descent (batch \(evaluation.model.batchSize), "
            + String(format: "learning rate %.2f", Double(evaluation.model.learningRate)) + "); training loss by epoch: \(losses)\n"
        out += String(format: "evaluation: train MSE %.5f, R² %.4f (%d rows); test MSE %.5f, R² %.4f (%d rows)\n",
                      evaluation.trainMSE, evaluation.trainR2, evaluation.trainRows, evaluation.testMSE, evaluation.testR2, evaluation.testRows)
        out += "\nrun directory: \(run.directory)\n"
        out += "  run log: \(run.logPath)\n"
        let valuesDirectory = RunDirectory(path: run.directory).valuesDirectory
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: valuesDirectory)) ?? []).filter { $0.hasSuffix(".dfspill") }.sorted()
        for file in files {
            let size = (try? FileManager.default.attributesOfItem(atPath: "\(valuesDirectory)/\(file)")[.size] as? Int) ?? 0
            out += "  result: \(valuesDirectory)/\(file) (\(ByteSize.human(size)); python3 python/dataflow_spill.py reads it)\n"
        }
        out += "  inspect: dataflow runs show \(run.runID)\(workdirHint(workdir))\n"
        return out
    }

    private static func workdirHint(_ workdir: String) -> String {
        workdir == WorkdirOptions.resolve(nil, environment: ProcessInfo.processInfo.environment) ? "" : " --workdir \(workdir)"
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) * 1e-18
    }
}
