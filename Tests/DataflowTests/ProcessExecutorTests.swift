import DataflowTestWorkflows
import Dataflow
import Foundation
import ObjectStore
import Testing

/// The process executor: warm workers (Tests/DataflowTestWorker, which builds the same
/// workflows as these tests) attached to the run's store, real processes, real signals.
@Suite(.serialized) struct ProcessExecutorTests {
    static let workerPath = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("DataflowTestWorker").path

    /// Markers of tasks that wait to be killed (workers find the directory by their parent's pid).
    static let markers: String = {
        let path = TestWorkflows.markerDirectory
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: TestWorkflows.markerDirectory) }  // this process's own
        return path
    }()

    func makeExecutor(workers: Int) throws -> ProcessExecutor {
        _ = Self.markers
        return try ProcessExecutor(.init(workerCount: workers, executable: Self.workerPath, prefaultStore: false))
    }

    @Test func theSameWorkflowGivesTheSameResultsOnTheLocalAndTheProcessExecutor() async throws {
        try await withWorkdir { directory in
            let pool = try makeExecutor(workers: 2)
            defer { pool.shutdown() }
            var results: [String: (sum: Double, add: Int, double: [Float], hello: String)] = [:]
            for (name, executor) in [("local", LocalExecutor() as any Executor), ("processes", pool)] {
                let workflow = TestWorkflows.poolCompare()
                var options = RunOptions(workdir: directory, storeCapacityBytes: 64 << 20)
                options.executor = executor
                options.results = ["sum", "add", "double", "hello"]
                let run = try await workflow.run(options)
                let doubled = try run.result(named: "double", as: Tensor<Float>.self)
                results[name] = (
                    try run.result(named: "sum", as: Double.self), try run.result(named: "add", as: Int.self),
                    Array(doubled.scalars.prefix(8)) + [doubled.scalars.last!], try run.result(named: "hello", as: String.self))
                let events = try RunLog.read(at: run.logPath).filter { $0.kind == .attempt }
                #expect(events.count == 6 && events.allSatisfy { $0.executor == name && $0.outcome == .succeeded })
                if name == "processes" {
                    // The worker's standard output and error, and its logger, went to the attempt's log.
                    let log = try String(contentsOfFile: "\(run.directory)/logs/hello.1.log", encoding: .utf8)
                    #expect(log.contains("hello on standard output") && log.contains("hello on standard error") && log.contains("hello through the logger"))
                    #expect(!log.contains("\(getpid())"), "the task ran in this process")
                }
            }
            let local = try #require(results["local"]), processes = try #require(results["processes"])
            #expect(local.sum == processes.sum && local.sum == 2 * Double((0..<(1 << 20)).reduce(0) { $0 + $1 % 7 }))
            #expect(local.add == 82 && processes.add == 82)
            #expect(local.double == processes.double && local.double.prefix(3) == [0, 2, 4])
            #expect(local.hello == processes.hello)
        }
    }

    @Test func workersStayWarmAcrossRuns() async throws {
        try await withWorkdir { directory in
            let pool = try makeExecutor(workers: 2)
            defer { pool.shutdown() }
            try pool.start()
            let before = Set(pool.idleWorkerPIDs)
            #expect(before.count == 2)
            for _ in 0..<2 {
                var options = RunOptions(workdir: directory, storeCapacityBytes: 16 << 20)
                options.executor = .processes(pool)
                let run = try await TestWorkflows.poolChain(length: 1_000).run(options)
                #expect(try run.result(named: "t999", as: Int.self) == 999)
            }
            #expect(Set(pool.idleWorkerPIDs) == before, "the same two workers ran every task")
        }
    }

    /// `attachWorkers(to:)` maps a store in every worker before a run on it (what `dataflow bench`
    /// does so that the first timed run does not pay for the workers' page tables); a store that
    /// is gone is an error naming it.
    @Test func workersAttachAStoreBeforeARunOnIt() async throws {
        try await withWorkdir { directory in
            let pool = try makeExecutor(workers: 2)
            defer { pool.shutdown() }
            let store = try SharedObjectStore.create(named: "test-attach-\(getpid())", capacityBytes: 32 << 20)
            defer { try? SharedObjectStore.remove(named: store.name) }
            try await pool.attachWorkers(to: store, spillRoot: RunDirectory.spillRoot(workdir: directory))
            let workers = pool.idleWorkerPIDs
            #expect(workers.count == 2)
            for pid in workers {
                // Read to the end (a /proc file says its size is 0; under ThreadSanitizer the
                // list is long, and a single read returns only its start).
                let file = try #require(FileHandle(forReadingAtPath: "/proc/\(pid)/maps"))
                let maps = String(decoding: try file.readToEnd() ?? Data(), as: UTF8.self)
                try file.close()
                #expect(maps.contains(store.name), "worker \(pid) has not mapped store '\(store.name)'")
            }
            var options = RunOptions(workdir: directory, store: store)
            options.executor = .processes(pool)
            let run = try await TestWorkflows.poolChain(length: 1_000).run(options)
            #expect(try run.result(named: "t999", as: Int.self) == 999)

            let gone = try SharedObjectStore.create(named: "test-attach-gone-\(getpid())", capacityBytes: 16 << 20)
            try SharedObjectStore.remove(named: gone.name)
            do {
                try await pool.attachWorkers(to: gone, spillRoot: RunDirectory.spillRoot(workdir: directory))
                Issue.record("attaching a removed store succeeded")
            } catch let error as DataflowError {
                #expect(error.code == .executor && error.message.contains(gone.name), "\(error.message)")
            }
            #expect(pool.idleWorkerPIDs.count == 2, "the workers stay in the pool")
        }
    }

    /// A crash, a SIGKILL in the middle of a 256 MiB write, a SIGTERM (preemption) and a task past
    /// its timeout, all in one run beside a task that must not notice.
    @Test func deadWorkersAreReplacedTheirTasksRetriedByCauseAndTheStoreStaysConsistent() async throws {
        try await withWorkdir { directory in
            let pool = try makeExecutor(workers: 3)
            defer { pool.shutdown() }
            let store = try SharedObjectStore.create(named: "test-pool-faults-\(getpid())", capacityBytes: 600 << 20)
            defer { try? SharedObjectStore.remove(named: store.name) }
            for task in ["killed-mid-write", "preempted-once"] { unlink(TestWorkflows.markerPath(task: task, attempt: 1)) }
            var options = RunOptions(workdir: directory, onFailure: .keepGoing, store: store)
            options.executor = .processes(pool)
            options.runID = "faults-\(getpid())"
            let running = Task { try await TestWorkflows.poolFaults().run(options) }

            // Kill the writer in the middle of its write, and stop the other one as a batch system would.
            let killed = try await waitForPID(of: "killed-mid-write")
            usleep(200_000)
            #expect(kill(killed, SIGKILL) == 0)
            let preempted = try await waitForPID(of: "preempted-once")
            #expect(kill(preempted, SIGTERM) == 0)

            let error = await expectDataflowError(.taskFailed) { try await running.value }
            #expect(error?.failures.map(\.task) == ["hangs"])
            #expect(error?.failures.first?.message.contains("timed out after 1") == true)

            let events = try RunLog.read(at: "\(directory)/runs/\(options.runID!)/run.jsonl").filter { $0.kind == .attempt }
            func outcomes(_ task: String) -> [AttemptOutcome] { events.filter { $0.task == task }.compactMap(\.outcome) }
            func messages(_ task: String) -> String { events.filter { $0.task == task }.compactMap(\.message).joined(separator: " | ") }
            #expect(outcomes("crash-once") == [.failed, .succeeded], "\(messages("crash-once"))")
            // A trap kills it by signal (under ThreadSanitizer, which catches the trap, it exits with 66).
            #expect(messages("crash-once").contains("died while running the task: "))
            #expect(outcomes("killed-mid-write") == [.failed, .succeeded], "\(messages("killed-mid-write"))")
            #expect(messages("killed-mid-write").contains("SIGKILL"))
            #expect(outcomes("preempted-once") == [.preempted, .succeeded], "\(messages("preempted-once"))")
            #expect(outcomes("hangs") == [.failed])
            #expect(outcomes("bystander") == [.succeeded])

            // Nothing half-written remains, no dead worker holds anything, every invariant holds.
            _ = try store.reclaimDeadProcesses()
            let statistics = try store.statistics()
            #expect(statistics.creatingCount == 0, "\(statistics)")
            try store.verifyIntegrity()
        }
    }

    /// A pool worker's output goes to an in-memory capture, and to the attempt's log file only
    /// if the task wrote something: a crashed worker's last words still reach its log (the
    /// parent copies them), a long task's log can be read while it runs, and a task that writes
    /// nothing has no log file (and the run log says so).
    @Test func aTasksOutputReachesItsLogWhenItCrashesAndWhileItRuns() async throws {
        try await withWorkdir { directory in
            let pool = try makeExecutor(workers: 2)
            defer { pool.shutdown() }
            let go = TestWorkflows.markerPath(task: "long-talker", attempt: 0) + ".go"
            unlink(go)
            var options = RunOptions(workdir: directory, onFailure: .keepGoing, storeCapacityBytes: 16 << 20, results: ["long-talker", "quiet"])
            options.executor = .processes(pool)
            options.runID = "output-\(getpid())"
            let running = Task { try await TestWorkflows.poolOutput().run(options) }
            let logs = "\(directory)/runs/\(options.runID!)/logs"
            // The long task's first line is in its log while it still waits for the go-ahead.
            var seen = ""
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                seen = (try? String(contentsOfFile: "\(logs)/long-talker.1.log", encoding: .utf8)) ?? ""
                if !seen.isEmpty { break }
                try await Task.sleep(nanoseconds: 20_000_000)
            }
            #expect(seen == "started\n", "the running task's log so far: '\(seen)'")
            #expect(FileManager.default.createFile(atPath: go, contents: nil))
            defer { unlink(go) }

            let error = await expectDataflowError(.taskFailed) { try await running.value }
            #expect(error?.failures.map(\.task) == ["speaks-then-crashes"])
            let crashed = (try? String(contentsOfFile: "\(logs)/speaks-then-crashes.1.log", encoding: .utf8)) ?? ""
            #expect(crashed.hasPrefix("last words before the crash\n"), "\(crashed)")
            #expect(crashed.contains("the task broke on purpose"), "the crash's own message: \(crashed)")
            #expect((try? String(contentsOfFile: "\(logs)/long-talker.1.log", encoding: .utf8)) == "started\nfinished\n")
            #expect(!FileManager.default.fileExists(atPath: "\(logs)/quiet.1.log"), "a task that wrote nothing has no log file")

            let events = try RunLog.read(at: "\(directory)/runs/\(options.runID!)/run.jsonl").filter { $0.kind == .attempt }
            func logFile(_ task: String) -> String? { events.first { $0.task == task }?.logFile }
            #expect(logFile("quiet") == nil)
            #expect(logFile("long-talker")?.hasSuffix("long-talker.1.log") == true)
            #expect(logFile("speaks-then-crashes")?.hasSuffix("speaks-then-crashes.1.log") == true)
        }
    }

    /// Requests and replies too large for a worker channel's slots go over its streams: a gather
    /// of 1,500 descriptors, and a failure message of 100,000 characters, both whole.
    @Test func largeRequestsAndRepliesGoOverTheStreams() async throws {
        try await withWorkdir { directory in
            let pool = try makeExecutor(workers: 2)
            defer { pool.shutdown() }
            var options = RunOptions(workdir: directory, onFailure: .keepGoing, storeCapacityBytes: 64 << 20, results: ["sum"])
            options.executor = .processes(pool)
            options.runID = "large-\(getpid())"
            let error = await expectDataflowError(.taskFailed) { _ = try await TestWorkflows.poolLargeMessages().run(options) }
            let message = error?.failures.first { $0.task == "fails-at-length" }?.message ?? ""
            #expect(message.contains("long:" + String(repeating: "x", count: 100_000) + ":end"), "\(message.count) characters")
            let events = try RunLog.read(at: "\(directory)/runs/\(options.runID!)/run.jsonl").filter { $0.kind == .attempt }
            #expect(events.first { $0.task == "sum" }?.outcome == .succeeded)
            #expect(events.filter { $0.task.map { $0.hasPrefix("part[") } == true }.allSatisfy { $0.executor == "processes" && $0.outcome == .succeeded })
            #expect(pool.idleWorkerPIDs.count == 2)
        }
    }

    /// `measureRoundTrips` goes through the same channel as a task; a worker that dies meanwhile
    /// is an error that names it.
    @Test func roundTripsToAWorkerAreMeasuredAndItsDeathIsAnError() async throws {
        let pool = try makeExecutor(workers: 1)
        defer { pool.shutdown() }
        let seconds = try await pool.measureRoundTrips(200)
        #expect(seconds > 0 && seconds < 0.01, "\(seconds) s per round trip")
        let pid = try #require(pool.idleWorkerPIDs.first)
        // Asleep by now (it polls for 0.1 ms after a reply): the next request must ring it.
        try await Task.sleep(nanoseconds: 50_000_000)
        _ = try await pool.measureRoundTrips(1)
        #expect(pool.idleWorkerPIDs == [pid], "the same worker answered")
        let endless = Task { try await pool.measureRoundTrips(1_000_000_000) }
        try await Task.sleep(nanoseconds: 50_000_000)
        #expect(kill(pid, SIGKILL) == 0)
        let error = await expectDataflowError(.executor) { _ = try await endless.value }
        #expect(error?.message.contains("worker \(pid) died") == true, "\(error?.message ?? "no error")")
        let again = try await pool.measureRoundTrips(10)  // a new worker is started
        #expect(again > 0)
    }

    /// After a run on the default embedded store returns, idle workers no longer map its
    /// segment (which the run removed): its memory goes back to the system now, not at the next
    /// run or at shutdown.
    @Test func idleWorkersLetGoOfAFinishedRunsStore() async throws {
        try await withWorkdir { directory in
            let pool = try makeExecutor(workers: 2)
            defer { pool.shutdown() }
            try pool.start()
            var options = RunOptions(workdir: directory, storeCapacityBytes: 64 << 20)
            options.executor = .processes(pool)
            let run = try await TestWorkflows.poolCompare().run(options)
            let segment = "/dev/shm/dataflow.\(run.store.name)"
            #expect(pool.idleWorkerPIDs.count == 2)
            for pid in pool.idleWorkerPIDs {
                // Read to the end (a /proc file says its size is 0; under ThreadSanitizer the
                // list is long, and a single read returns only its start).
                let file = try #require(FileHandle(forReadingAtPath: "/proc/\(pid)/maps"))
                let maps = String(decoding: try file.readToEnd() ?? Data(), as: UTF8.self)
                try file.close()
                #expect(!maps.contains(segment), "worker \(pid) still maps \(segment)")
            }
            // Still warm: the next run uses the same workers.
            let before = Set(pool.idleWorkerPIDs)
            _ = try await TestWorkflows.poolCompare().run(options)
            #expect(Set(pool.idleWorkerPIDs) == before)
        }
    }

    @Test func aBadExecutableOrWorkerCountIsATypedError() async throws {
        await expectDataflowError(.invalidOption) { try ProcessExecutor(.init(workerCount: 0, executable: Self.workerPath)) }
        let error = await expectDataflowError(.invalidOption) { try ProcessExecutor(.init(executable: "/nonexistent/worker")) }
        #expect(error?.message.contains("/nonexistent/worker") == true)
    }

    /// The pid an attempt-1 task left in its marker file.
    func waitForPID(of task: String) async throws -> pid_t {
        let path = TestWorkflows.markerPath(task: task, attempt: 1)
        for _ in 0..<600 {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), let pid = pid_t(text) { return pid }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw Boom()
    }
}

extension ProcessExecutorTests {
    /// A worker program that never calls the worker entry (here: one that exits at once, as
    /// a program whose `main` does its own thing and returns would) is named as such.
    @Test func aWorkerProgramThatNeverEntersTheWorkerEntryIsToldWhatIsMissing() async throws {
        try await withWorkdir { directory in
            let pool = try ProcessExecutor(.init(workerCount: 1, executable: "/bin/true"))
            defer { pool.shutdown() }
            let workflow = Workflow("no-entry")
            workflow.task("t") { 1 }
            let error = await expectDataflowError(.taskFailed) {
                try await workflow.run(RunOptions(workdir: directory, storeCapacityBytes: 1 << 20, executor: .processes(pool)))
            }
            let message = error?.failures.first?.message ?? ""
            #expect(message.contains("exited with status 0") && message.contains("never called `Workflow.runWorkerIfRequested"), "\(message)")
        }
    }

    /// A worker killed at its task's timeout is reported at once, although a process the task
    /// started lives on (it inherits none of the worker's channels).
    @Test(.timeLimit(.minutes(1))) func aWorkerWhoseTaskLeftAChildBehindIsStillSeenToDie() async throws {
        try await withWorkdir { directory in
            let pool = try makeExecutor(workers: 1)
            defer { pool.shutdown() }
            let marker = TestWorkflows.markerPath(task: "grandchild", attempt: 1)
            unlink(marker)
            defer {
                if let text = try? String(contentsOfFile: marker, encoding: .utf8), let pid = pid_t(text) { kill(pid, SIGKILL) }
            }
            let error = await expectDataflowError(.taskFailed) {
                try await TestWorkflows.poolGrandchild().run(RunOptions(workdir: directory, storeCapacityBytes: 1 << 20, executor: .processes(pool)))
            }
            #expect(error?.failures.first?.message.contains("timed out") == true, "\(String(describing: error))")
            #expect(FileManager.default.fileExists(atPath: marker), "the task never started its child")
        }
    }
}
