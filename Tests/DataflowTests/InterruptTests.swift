import Dataflow
import DataflowSlurm
import Foundation
import ObjectStore
import Testing

/// Ctrl-C and SIGTERM to a workflow program (`WorkflowCommandLine`), sent as a user's terminal
/// or a batch system sends them: the program runs in a process group of its own, and SIGINT goes
/// to the whole group (the program and its warm workers), SIGTERM to the program alone. The run
/// must end as a cancellation on every executor: exit status 130 or 143 within seconds, the run
/// log ending with `run-finished` (cancelled) and the running attempt `cancelled`, the task's
/// process gone, no store in /dev/shm and no exchange file left.
@Suite(.serialized) struct InterruptTests {
    /// A started workflow program: `DataflowTestWorker --program interruptible ...`.
    struct Program {
        let child: ChildProcess
        let outputPath: String
        let errorPath: String
        let workdir: String

        /// The run's id (its directory under `runs/`, made as the run starts).
        var runID: String { ((try? FileManager.default.contentsOfDirectory(atPath: "\(workdir)/runs")) ?? []).first ?? "(no run)" }

        /// Where its tasks write their markers (named after the driver: this program).
        var markerDirectory: String { NSTemporaryDirectory() + "dataflow-markers-\(child.pid)" }
        var runDirectory: RunDirectory { RunDirectory(workdir: workdir, runID: runID) }
        var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
        var errors: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

        /// The pid the "waits" task wrote once it started (nil if it did not within `seconds`).
        func waitForTheLongTask(seconds: Double) async throws -> pid_t? {
            let marker = "\(markerDirectory)/waits.1.pid"
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let text = try? String(contentsOfFile: marker, encoding: .utf8), let pid = pid_t(text) { return pid }
                if child.exitIfEnded != nil { return nil }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            return nil
        }

        /// Its exit, if it comes within `seconds` (else nil; it is then killed).
        func exit(within seconds: Double) async -> ChildProcess.Exit? {
            let child = self.child
            let exit = await withTaskGroup(of: ChildProcess.Exit?.self) { group in
                group.addTask { await child.exit() }
                group.addTask {
                    try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                    return nil
                }
                let first = await group.next()!
                group.cancelAll()
                return first
            }
            if exit == nil {
                child.signal(SIGKILL)
                _ = await child.exit()
            }
            return exit
        }

        func removeMarkers() { try? FileManager.default.removeItem(atPath: markerDirectory) }
    }

    /// Starts the program on `executor` (a built-in kind, or one `config` declares).
    static func start(executor: String, workdir: String, config: String? = nil) throws -> Program {
        let outputPath = "\(workdir)/program.out", errorPath = "\(workdir)/program.err"
        var arguments = ["--program", "interruptible", "--executor", executor, "--workdir", workdir, "--progress", "never", "-j", "2"]
        if let config { arguments += ["--config", config] }
        var environment = ProcessInfo.processInfo.environment
        for name in ["DATAFLOW_CONFIG", "DATAFLOW_EXECUTOR", "DATAFLOW_CONCURRENCY", "DATAFLOW_POLICY", "DATAFLOW_KEEP_GOING", "DATAFLOW_WORKDIR"] {
            environment[name] = nil
        }
        // A session and process group of its own, as a program started from a shell has.
        let child = try ChildProcess.spawn(
            executable: ProcessExecutorTests.workerPath, arguments: arguments, environment: environment, workingDirectory: workdir,
            outputFile: outputPath, errorFile: errorPath)
        return Program(child: child, outputPath: outputPath, errorPath: errorPath, workdir: workdir)
    }

    /// Starts the program and waits (up to 90 s) until its long task runs; the task's pid.
    static func startWithTheLongTaskRunning(executor: String, workdir: String, config: String? = nil) async throws -> (Program, pid_t?) {
        let program = try start(executor: executor, workdir: workdir, config: config)
        let taskPid = try await program.waitForTheLongTask(seconds: 90)
        #expect(taskPid != nil, "the long task never started: \(program.errors)")
        return (program, taskPid)
    }

    /// What every cancelled run must show once its program exited with `status`.
    static func expectCancelledCleanly(_ program: Program, exit: ChildProcess.Exit?, status: Int32, signalName: String, taskPid: pid_t?) async throws {
        #expect(exit == .exited(status), "exit \(String(describing: exit)); stderr: \(program.errors)")
        #expect(program.errors.contains("cancelled by \(signalName)"), "\(program.errors)")
        // Under `make test-tsan` the program is built with ThreadSanitizer too: its signal
        // handling and cancellation must be clean.
        #expect(!program.errors.contains("ThreadSanitizer"), "\(program.errors)")
        let events = try RunLog.read(at: "\(program.runDirectory.path)/run.jsonl")
        #expect(events.last?.kind == .runFinished && events.last?.message == "cancelled", "\(events.last.map { "\($0)" } ?? "no event")")
        let waits = events.filter { $0.kind == .attempt && $0.task == "waits" }
        #expect(waits.count == 1 && waits.allSatisfy { $0.outcome == .cancelled }, "\(waits)")
        #expect(!events.contains { $0.kind == .attempt && $0.outcome == .failed }, "\(events.filter { $0.kind == .attempt })")
        #expect(!SharedObjectStore.exists(named: RunOptions.storeName(runID: program.runID)), "the run's store is left in /dev/shm")
        let exchange = (try? FileManager.default.contentsOfDirectory(atPath: program.runDirectory.exchangeDirectory)) ?? []
        #expect(exchange.isEmpty, "exchange files left: \(exchange)")
        // The task's process (a warm worker, a job's worker) is gone soon (a job's within SLURM's
        // or Ray's own stop).
        if let taskPid {
            var alive = true
            for _ in 0..<100 {
                alive = kill(taskPid, 0) == 0 && !isZombie(taskPid)
                if !alive { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            #expect(!alive, "the task's process \(taskPid) still runs")
        }
    }

    /// "stopping took 0.31 s" in the program's cancellation summary.
    static func stoppingSeconds(_ errors: String) -> Double? {
        guard let range = errors.range(of: "stopping took ") else { return nil }
        return Double(errors[range.upperBound...].prefix { $0.isNumber || $0 == "." })
    }

    static func isZombie(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
    }

    /// Ctrl-C at a terminal (SIGINT to the program's whole process group) on threads and on
    /// warm workers: exit 130, the worker's task stopped.
    @Test(arguments: ["local", "processes"])
    func ctrlCCancelsTheRun(executor: String) async throws {
        try await withWorkdir { workdir in
            let (program, taskPid) = try await Self.startWithTheLongTaskRunning(executor: executor, workdir: workdir)
            defer { program.removeMarkers() }
            program.child.signal(SIGINT)  // the whole group, as a terminal does
            let exit = await program.exit(within: 60)
            // The program's own figure, from the signal to the end of the run (this test process
            // may itself be slow to notice its exit beside the other suites). Well under a second
            // on an idle machine.
            #expect(Self.stoppingSeconds(program.errors).map { $0 < 10 } == true, "\(program.errors)")
            try await Self.expectCancelledCleanly(program, exit: exit, status: 130, signalName: "SIGINT", taskPid: executor == "local" ? nil : taskPid)
        }
    }

    /// SIGTERM to the program alone (a batch system's or a service manager's stop): exit 143.
    @Test func sigtermCancelsTheRun() async throws {
        try await withWorkdir { workdir in
            let (program, taskPid) = try await Self.startWithTheLongTaskRunning(executor: "processes", workdir: workdir)
            defer { program.removeMarkers() }
            kill(program.child.pid, SIGTERM)
            let exit = await program.exit(within: 60)
            try await Self.expectCancelledCleanly(program, exit: exit, status: 143, signalName: "SIGTERM", taskPid: taskPid)
        }
    }

    /// A program killed outright (SIGKILL: no cancellation at all) leaves no warm worker running
    /// its task for nobody: the workers find their parent gone and exit.
    @Test func warmWorkersDoNotOutliveAKilledProgram() async throws {
        try await withWorkdir { workdir in
            let program = try Self.start(executor: "processes", workdir: workdir)
            defer {
                program.removeMarkers()
                try? SharedObjectStore.remove(named: RunOptions.storeName(runID: program.runID))
            }
            let taskPid = try #require(try await program.waitForTheLongTask(seconds: 60))
            kill(program.child.pid, SIGKILL)
            _ = await program.exit(within: 10)
            var alive = true
            for _ in 0..<50 {
                alive = kill(taskPid, 0) == 0 && !Self.isZombie(taskPid)
                if !alive { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            #expect(!alive, "worker \(taskPid) still runs its task after its program was killed")
        }
    }
}

/// Ctrl-C to a workflow program whose tasks are SLURM jobs (values through files): the running
/// job is `scancel`led (CANCELLED, not FAILED), nothing of the run stays queued.
@Suite(.serialized, .enabled(if: SlurmTestCluster.answers, SlurmTestCluster.skipNote))
struct SlurmInterruptTests {
    static func config(in workdir: String) throws -> String {
        let path = "\(workdir)/dataflow.toml"
        try """
            [executor.hpc]
            type = "slurm"
            values = "files"
            poll_interval_min = "250ms"
            poll_interval_max = "2s"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func jobStates(runID: String) throws -> (queued: String, all: String) {
        let name = SlurmExecutor.jobName(runID: runID)
        let queued = try SlurmTestCluster.run("squeue", ["-h", "--name=\(name)", "-o", "%i %T"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let all = try SlurmTestCluster.run("squeue", ["-h", "-t", "all", "--name=\(name)", "-o", "%i %T"])
        return (queued, all)
    }

    @Test func ctrlCScancelsTheRunsJobs() async throws {
        try await withWorkdir { workdir in
            let (program, taskPid) = try await InterruptTests.startWithTheLongTaskRunning(executor: "hpc", workdir: workdir, config: try Self.config(in: workdir))
            defer { program.removeMarkers() }
            program.child.signal(SIGINT)
            let exit = await program.exit(within: 60)
            try await InterruptTests.expectCancelledCleanly(program, exit: exit, status: 130, signalName: "SIGINT", taskPid: taskPid)
            let states = try Self.jobStates(runID: program.runID)
            #expect(states.queued.isEmpty, "left in the queue: \(states.queued)")
            #expect(states.all.contains("CANCELLED") && !states.all.contains("FAILED"), "\(states.all)")
        }
    }

    /// A second Ctrl-C while the first cancellation waits for SLURM: the program exits at once
    /// (130) and says what it left (the store, the run directory, the jobs and how to end them).
    @Test func aSecondCtrlCExitsAtOnceAndSaysWhatItLeft() async throws {
        try await withWorkdir { workdir in
            let (program, taskPid) = try await InterruptTests.startWithTheLongTaskRunning(executor: "hpc", workdir: workdir, config: try Self.config(in: workdir))
            defer { program.removeMarkers() }
            // The second once the program answered the first, as a person presses Ctrl-C again
            // (two signals sent back to back are one for the kernel: standard signals do not queue).
            program.child.signal(SIGINT)
            for _ in 0..<100 where !program.errors.contains("SIGINT: cancelling the run") { try await Task.sleep(nanoseconds: 10_000_000) }
            program.child.signal(SIGINT)
            let exit = await program.exit(within: 30)
            let runID = program.runID
            defer {
                _ = try? SlurmTestCluster.run("scancel", ["--name=\(SlurmExecutor.jobName(runID: runID))"])
                try? SharedObjectStore.remove(named: RunOptions.storeName(runID: runID))
            }
            #expect(exit == .exited(130), "\(String(describing: exit)): \(program.errors)")
            let errors = program.errors
            #expect(errors.contains("SIGINT again: exiting at once"), "\(errors)")
            #expect(errors.contains("left behind by run \(runID)") && errors.contains("its run directory \(program.runDirectory.path)"), "\(errors)")
            #expect(errors.contains("scancel --name=\(SlurmExecutor.jobName(runID: runID))"), "\(errors)")
        }
    }
}

/// Ctrl-C to a workflow program whose tasks are Ray jobs: the running job is stopped, the run's
/// jobs are gone from the head (or STOPPED, never FAILED).
@Suite(.serialized, .enabled(if: RayTestCluster.answers, RayTestCluster.skipNote), .headListsNoJobFailedByItsDeletion)
struct RayInterruptTests {
    @Test func ctrlCStopsTheRunsJobs() async throws {
        try await withWorkdir { workdir in
            let config = "\(workdir)/dataflow.toml"
            try """
                [executor.cluster]
                type = "ray"
                dashboard_address = "\(RayTestCluster.address)"
                token_file = "\(RayTestCluster.tokenFile)"
                reaches_store = false
                poll_interval_max = "1s"
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let (program, taskPid) = try await InterruptTests.startWithTheLongTaskRunning(executor: "cluster", workdir: workdir, config: config)
            defer { program.removeMarkers() }
            program.child.signal(SIGINT)
            let exit = await program.exit(within: 60)
            try await InterruptTests.expectCancelledCleanly(program, exit: exit, status: 130, signalName: "SIGINT", taskPid: taskPid)
            let prefix = "df-\(program.runID.prefix(40))-"
            let jobs = try RayTestCluster.jobs().filter { ($0["submission_id"] as? String)?.hasPrefix(prefix) == true }
            let states = jobs.map { "\($0["submission_id"] ?? "?") \($0["status"] ?? "?")" }
            #expect(jobs.allSatisfy { ["STOPPED", "SUCCEEDED"].contains($0["status"] as? String ?? "") }, "\(states)")
        }
    }
}
