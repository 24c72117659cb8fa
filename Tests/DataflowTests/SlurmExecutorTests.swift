import Dataflow
import DataflowSlurm
import DataflowTestWorkflows
import Foundation
import ObjectStore
import Testing

/// Whether a SLURM cluster answers here (`sinfo` lists an idle or busy node). Under CI
/// (`DATAFLOW_REQUIRE_SLURM=1`) a missing cluster fails `aClusterAnswersWhereOneIsRequired`
/// instead of skipping the suite.
enum SlurmTestCluster {
    static let answers: Bool = {
        let candidates: [String] = ["/usr/bin/sinfo", "/usr/local/bin/sinfo"]
        guard let sinfo = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return false }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: sinfo)
        process.arguments = ["-h", "-o", "%T"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return process.terminationStatus == 0 && output.split(whereSeparator: \.isNewline).contains { ["idle", "mixed", "allocated", "completing"].contains(String($0)) }
    }()

    static let required = ProcessInfo.processInfo.environment["DATAFLOW_REQUIRE_SLURM"] == "1" || ProcessInfo.processInfo.environment["CI"] == "true"

    static let skipNote: Comment = "no SLURM cluster answers here (start one: `Scripts/slurm-local.sh start`); the SLURM tests are skipped"

    /// A SLURM command's standard output (the tests look at the cluster with its own tools).
    static func run(_ tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/\(tool)")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return output
    }

    static func executor(_ options: SlurmExecutor.Options = SlurmExecutor.Options()) throws -> SlurmExecutor {
        var options = options
        options.executable = ProcessExecutorTests.workerPath
        options.pollIntervalMinSeconds = 0.25
        options.pollIntervalMaxSeconds = 2
        return try SlurmExecutor(options)
    }
}

@Suite struct SlurmClusterRequirementTests {
    @Test func aClusterAnswersWhereOneIsRequired() {
        if SlurmTestCluster.required {
            #expect(SlurmTestCluster.answers, "DATAFLOW_REQUIRE_SLURM=1 but no SLURM cluster answers (Scripts/slurm-local.sh start)")
        } else if !SlurmTestCluster.answers {
            print("note: \(SlurmTestCluster.skipNote)")
        }
    }
}

/// The SLURM executor on a real cluster (`Scripts/slurm-local.sh`): every test is a whole
/// workflow through the public API, its tasks running as batch jobs of the test worker program.
@Suite(.serialized, .enabled(if: SlurmTestCluster.answers, SlurmTestCluster.skipNote))
struct SlurmExecutorTests {
    @Test func theSlurmExecutorConformsWithJobsAttachedToTheStore() async throws {
        try await checkExecutorConformance(SlurmTestCluster.executor(.init(values: .store)))
    }

    @Test func theSlurmExecutorConformsWithValuesThroughFiles() async throws {
        try await checkExecutorConformance(SlurmTestCluster.executor(.init(values: .files)))
    }

    /// Three stages as three jobs: right, and zero-copy (each job attached to the run's store;
    /// no value went to a file).
    @Test func aThreeStageTensorPipelinePassesValuesThroughTheStore() async throws {
        try await withWorkdir { workdir in
            let executor = try SlurmTestCluster.executor()
            #expect(executor.capabilities.reachesStore)  // `auto` before connecting: this host
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 64 << 20, executor: executor)
            options.runID = "slurm-pipeline"
            let run = try await ClusterWorkflows.pipeline().run(options)
            let report = try run.result(named: "total", as: String.self)
            #expect(report.hasPrefix("total=\(ClusterWorkflows.pipelineTotal) store=\(run.store.name) "), "\(report)")
            #expect(!report.hasSuffix("job=none"), "the last stage did not run in a SLURM job: \(report)")
            let events = try RunLog.read(at: "\(workdir)/runs/slurm-pipeline/run.jsonl").filter { $0.kind == .attempt }
            #expect(events.map(\.executor) == ["slurm", "slurm", "slurm"])
            #expect(events.allSatisfy { $0.engineState == "COMPLETED" }, "\(events.map(\.engineState))")
            let exchange = (try? FileManager.default.contentsOfDirectory(atPath: "\(workdir)/runs/slurm-pipeline/exchange")) ?? []
            let values = (try? FileManager.default.contentsOfDirectory(atPath: "\(workdir)/runs/slurm-pipeline/values")) ?? []
            #expect(exchange.isEmpty && values.filter { !$0.hasPrefix("total") }.isEmpty, "files: \(exchange) \(values)")
        }
    }

    /// The same pipeline with `values = files`: every edge through the shared run directory.
    @Test func theSamePipelineThroughFilesWhenJobsCannotReachTheStore() async throws {
        try await withWorkdir { workdir in
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 64 << 20, executor: try SlurmTestCluster.executor(.init(values: .files)))
            options.runID = "slurm-files"
            let run = try await ClusterWorkflows.pipeline().run(options)
            let report = try run.result(named: "total", as: String.self)
            #expect(report.hasPrefix("total=\(ClusterWorkflows.pipelineTotal) store=worker-"), "the job used a private store: \(report)")
            // Each value read by a job went to an exchange file first.
            let events = try RunLog.read(at: "\(workdir)/runs/slurm-files/run.jsonl").filter { $0.kind == .attempt }
            for task in ["make", "scale"] {
                let value = events.first { $0.task == task }?.value
                #expect(value?.reason.contains("cannot reach the store") == true, "\(task): \(String(describing: value))")
            }
        }
    }

    /// A 50-way map goes out as one job array: sacct lists `<job>_<index>` for each task.
    @Test func aFiftyWayMapIsOneJobArray() async throws {
        try await withWorkdir { workdir in
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: try SlurmTestCluster.executor())
            options.runID = "slurm-fan-out-\(getpid())"
            let run = try await ClusterWorkflows.fanOut().run(options)
            // Every square ran as an array task (SLURM_ARRAY_TASK_ID set), the sum is right.
            #expect(try run.result(named: "sum", as: Int.self) == (0..<50).reduce(0) { $0 + $1 * $1 })
            let jobName = SlurmExecutor.jobName(runID: options.runID!)
            var arrayTasks: [String] = []
            for _ in 0..<40 {  // sacct lags squeue by up to ~2 s
                arrayTasks = try SlurmTestCluster.run("sacct", ["-X", "-n", "-P", "--name=\(jobName)", "--format=JobID"])
                    .split(whereSeparator: \.isNewline).map(String.init).filter { $0.contains("_") }
                if arrayTasks.count >= 50 { break }
                try await Task.sleep(nanoseconds: 250_000_000)
            }
            let arrays = Set(arrayTasks.map { $0.split(separator: "_")[0] })
            #expect(arrayTasks.count == 50 && arrays.count == 1, "sacct: \(arrayTasks)")
        }
    }

    /// A task that throws fails with its message, SLURM's state and the worker's exit code.
    @Test func aFailingTaskCarriesItsExitCode() async throws {
        try await withWorkdir { workdir in
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: try SlurmTestCluster.executor())
            options.runID = "slurm-failing"
            let error = await expectDataflowError(.taskFailed) { try await ClusterWorkflows.failing().run(options) }
            let failure = error?.failures.first
            #expect(failure?.task == "fails" && failure?.outcome == .failed)
            #expect(failure?.message.contains("the input was bad") == true && failure?.message.contains("FAILED, exit code 1") == true, "\(String(describing: failure))")
            let event = try RunLog.read(at: "\(workdir)/runs/slurm-failing/run.jsonl").first { $0.kind == .attempt }
            #expect(event?.exitStatus == 1 && event?.engineState == "FAILED")
        }
    }

    /// A real preemption: a job in the `high` partition takes the node from ours (in `low`);
    /// SLURM records ours PREEMPTED, the run counts a preemption, retries and succeeds.
    @Test func aPreemptedJobIsRetriedAndSucceeds() async throws {
        try await withWorkdir { workdir in
            try FileManager.default.createDirectory(atPath: TestWorkflows.markerDirectory, withIntermediateDirectories: true)
            let marker = TestWorkflows.markerPath(task: "long", attempt: 1)
            unlink(marker)
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: try SlurmTestCluster.executor())
            options.runID = "slurm-preempt"
            let running = Task { try await ClusterWorkflows.preemptible().run(options) }
            for _ in 0..<600 where !FileManager.default.fileExists(atPath: marker) { try await Task.sleep(nanoseconds: 100_000_000) }
            #expect(FileManager.default.fileExists(atPath: marker), "the first attempt never started")
            let high = try SlurmTestCluster.run("sbatch", ["--parsable", "-p", "high", "--cpus-per-task=2", "-o", "/dev/null", "--wrap", "sleep 1"])
            #expect(!high.isEmpty)
            let run = try await running.value
            #expect(try run.result(named: "long", as: Int.self) == 2)
            let events = try RunLog.read(at: "\(workdir)/runs/slurm-preempt/run.jsonl").filter { $0.kind == .attempt }
            #expect(events.compactMap(\.outcome) == [.preempted, .succeeded], "\(events.map { "\($0.outcome.map { "\($0)" } ?? "-") \($0.message ?? "")" })")
            #expect(events.first?.engineState == "PREEMPTED")
        }
    }

    /// A job past its SLURM time limit (one minute: SLURM's smallest) fails as "time limit".
    @Test func aJobPastItsTimeLimitFails() async throws {
        try await withWorkdir { workdir in
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: try SlurmTestCluster.executor())
            options.runID = "slurm-time-limit"
            let error = await expectDataflowError(.taskFailed) { try await ClusterWorkflows.timeLimit().run(options) }
            let failure = error?.failures.first
            #expect(failure?.outcome == .failed && failure?.message.contains("time limit") == true, "\(String(describing: failure))")
            let event = try RunLog.read(at: "\(workdir)/runs/slurm-time-limit/run.jsonl").first { $0.kind == .attempt }
            #expect(event?.engineState == "TIMEOUT")
        }
    }

    /// Cancelling a run scancels its jobs: the attempt is cancelled, and nothing of the run is
    /// left in the queue when `run` returns.
    @Test func aCancelledRunLeavesNothingInTheQueue() async throws {
        try await withWorkdir { workdir in
            try FileManager.default.createDirectory(atPath: TestWorkflows.markerDirectory, withIntermediateDirectories: true)
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: try SlurmTestCluster.executor())
            options.runID = "slurm-cancel-\(getpid())"
            let marker = TestWorkflows.cancelMarkerPath(runID: options.runID!, attempt: 1)
            let running = Task { try await TestWorkflows.conformanceCancel().run(options) }
            for _ in 0..<600 where !FileManager.default.fileExists(atPath: marker) { try await Task.sleep(nanoseconds: 100_000_000) }
            running.cancel()
            await expectDataflowError(.runCancelled) { try await running.value }
            let queued = try SlurmTestCluster.run("squeue", ["-h", "--name=\(SlurmExecutor.jobName(runID: options.runID!))", "-o", "%i %T"])
            #expect(queued.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "left in the queue: \(queued)")
            let states = try SlurmTestCluster.run("squeue", ["-h", "-t", "all", "--name=\(SlurmExecutor.jobName(runID: options.runID!))", "-o", "%T"])
            #expect(states.contains("CANCELLED"), "\(states)")
        }
    }

    /// Status from `squeue -t all` (as on a cluster without accounting): the same results.
    @Test func statusFromSqueueWhenAccountingIsOff() async throws {
        try await withWorkdir { workdir in
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 64 << 20, executor: try SlurmTestCluster.executor(.init(statusSource: .squeue)))
            options.runID = "slurm-squeue"
            let run = try await ClusterWorkflows.pipeline().run(options)
            #expect(try run.result(named: "total", as: String.self).hasPrefix("total=\(ClusterWorkflows.pipelineTotal) "))
            let error = await expectDataflowError(.taskFailed) {
                var failing = options
                failing.runID = "slurm-squeue-failing"
                return try await ClusterWorkflows.failing().run(failing)
            }
            #expect(error?.failures.first?.message.contains("exit code 1") == true, "\(String(describing: error))")
        }
    }

    /// Resources no node has are refused before anything is submitted, naming the task; a
    /// setting SLURM refuses is an error quoting SLURM's message and naming the task.
    @Test func impossibleRequestsAreClearErrorsNamingTheTask() async throws {
        try await withWorkdir { workdir in
            let executor = try SlurmTestCluster.executor()
            for resources in [Resources(cpu: 64), Resources(memoryBytes: 1 << 50), Resources(gpu: 3), Resources(custom: ["fpga": 1])] {
                let error = await expectDataflowError(.resourcesExceedExecutor) {
                    try await ClusterWorkflows.impossible(resources: resources).run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: executor))
                }
                #expect(error?.task == "wants-too-much" && error?.message.contains("slurm") == true, "\(String(describing: error))")
            }
            let error = await expectDataflowError(.taskFailed) {
                try await ClusterWorkflows.impossible(resources: Resources(), settings: ["partition": "nope"]).run(
                    RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: executor))
            }
            let failure = error?.failures.first
            #expect(failure?.task == "wants-too-much" && failure?.outcome == .error, "\(String(describing: failure))")
            #expect(failure?.message.contains("invalid partition specified: nope") == true && failure?.message.contains("'wants-too-much'") == true, "\(String(describing: failure))")
        }
    }

    /// local → slurm → local with values through files for the SLURM job: only the edges into
    /// and out of it get files; the local edge does not.
    @Test func aMixedGraphWritesFilesOnlyForTheEdgesThatNeedThem() async throws {
        try await withWorkdir { workdir in
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20)
            options.executors = ["hpc": try SlurmTestCluster.executor(.init(values: .files))]
            options.runID = "slurm-mixed"
            let run = try await ClusterWorkflows.mixed().run(options)
            #expect(try run.result(named: "report", as: String.self) == "\(Double((0..<4096).reduce(0) { $0 + $1 % 11 + 1 })) over 4096")
            let events = try RunLog.read(at: "\(workdir)/runs/slurm-mixed/run.jsonl").filter { $0.kind == .attempt }
            func event(_ task: String) -> RunLogEvent? { events.first { $0.task == task } }
            #expect(event("middle")?.executor == "hpc" && event("source")?.executor == "local" && event("report")?.executor == "local")
            #expect(event("source")?.value?.reason.contains("cannot reach the store") == true, "\(String(describing: event("source")?.value))")
            // The job ran on a private store (its output came back through a file); the local
            // consumers of local values read them from the store: no file for "side".
            #expect(event("middle")?.value?.reason.contains("cannot reach the store") != true, "\(String(describing: event("middle")?.value))")
            #expect(event("side")?.value?.reason.contains("cannot reach the store") != true)
        }
    }

    /// Lineage on the cluster: the value a SLURM job reads is lost before the job starts (its
    /// exchange file damaged): the job finds it lost, and its producer runs again.
    @Test func aLostInputOfAJobIsRecomputed() async throws {
        try await LineageTests.checkALostInputOfAJobIsRecomputed(executor: try SlurmTestCluster.executor(.init(values: .files)), runID: "slurm-lineage-\(getpid())")
    }
}

/// A cluster without accounting (`SLURM_LOCAL_ACCOUNTING=none Scripts/slurm-local.sh start`;
/// `.ci/run` does this after `make test`, with `DATAFLOW_SLURM_ACCOUNTING=none`): the executor
/// finds out by itself and takes job states from `squeue -t all`.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["DATAFLOW_SLURM_ACCOUNTING"] == "none", "runs only on a cluster started without accounting (DATAFLOW_SLURM_ACCOUNTING=none)"))
struct SlurmAccountingOffTests {
    @Test func jobStatesComeFromSqueueWhenAccountingIsOff() async throws {
        #expect(SlurmTestCluster.answers, "no cluster answers")
        try await withWorkdir { workdir in
            let executor = try SlurmTestCluster.executor()
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 64 << 20, executor: executor)
            options.runID = "slurm-no-accounting"
            let run = try await ClusterWorkflows.pipeline().run(options)
            #expect(executor.accountingAnswers == false)
            #expect(try run.result(named: "total", as: String.self).hasPrefix("total=\(ClusterWorkflows.pipelineTotal) "))
            var failing = options
            failing.runID = "slurm-no-accounting-failing"
            let error = await expectDataflowError(.taskFailed) { try await ClusterWorkflows.failing().run(failing) }
            #expect(error?.failures.first?.message.contains("FAILED, exit code 1") == true, "\(String(describing: error))")
        }
    }
}
