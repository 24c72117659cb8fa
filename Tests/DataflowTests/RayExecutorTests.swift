import Dataflow
import DataflowRay
import DataflowTestWorkflows
import Foundation
import ObjectStore
import Testing

/// A Ray head to test against: `Scripts/ray-local.sh start` (address `$DATAFLOW_RAY_ADDRESS`,
/// default http://127.0.0.1:8265; token from `$DATAFLOW_RAY_TOKEN_FILE`, default
/// /run/ray-local/auth_token). Under CI (`DATAFLOW_REQUIRE_RAY=1`) a missing head fails
/// `aHeadAnswersWhereOneIsRequired` instead of skipping the suite.
enum RayTestCluster {
    static let address = ProcessInfo.processInfo.environment["DATAFLOW_RAY_ADDRESS"] ?? "http://127.0.0.1:8265"
    static let tokenFile = ProcessInfo.processInfo.environment["DATAFLOW_RAY_TOKEN_FILE"] ?? "/run/ray-local/auth_token"
    static var token: String? {
        FileManager.default.contents(atPath: tokenFile).map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// `GET /api/version` answers 200 with the token (a blocking call, once per test process).
    static let answers: Bool = {
        guard let url = URL(string: "\(address)/api/version") else { return false }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sf", "-m", "3", "-o", "/dev/null", "-H", "Authorization: Bearer \(token ?? "")", url.absoluteString]
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    static let required = ProcessInfo.processInfo.environment["DATAFLOW_REQUIRE_RAY"] == "1" || ProcessInfo.processInfo.environment["CI"] == "true"
    static let skipNote: Comment = "no Ray head answers here (start one: `Scripts/ray-local.sh start`); the Ray tests are skipped"

    static func executor(_ options: RayExecutor.Options = RayExecutor.Options()) throws -> RayExecutor {
        var options = options
        options.dashboardAddress = address
        if options.token == nil { options.tokenFile = tokenFile }
        options.executable = ProcessExecutorTests.workerPath
        options.pollIntervalMaxSeconds = 1
        return try RayExecutor(options)
    }

    /// The head's own job list (`GET /api/jobs/`), as JSON objects.
    static func jobs() throws -> [[String: Any]] {
        (try JSONSerialization.jsonObject(with: call("GET", "/api/jobs/")) as? [[String: Any]]) ?? []
    }

    /// One job (`GET /api/jobs/{id}`), nil when the head does not know it.
    static func job(_ id: String) throws -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: call("GET", "/api/jobs/\(id)"))) as? [String: Any]
    }

    struct Node {
        var id: String
        var isHead: Bool
        var state: String
        var resources: [String: Double]
    }

    /// Every node the head knows (`GET /api/v0/nodes`).
    static func nodes() throws -> [Node] {
        let object = try JSONSerialization.jsonObject(with: call("GET", "/api/v0/nodes?detail=true")) as? [String: Any]
        let list = ((object?["data"] as? [String: Any])?["result"] as? [String: Any])?["result"] as? [[String: Any]] ?? []
        return list.map {
            Node(id: $0["node_id"] as? String ?? "", isHead: $0["is_head_node"] as? Bool ?? false, state: $0["state"] as? String ?? "",
                 resources: ($0["resources_total"] as? [String: Any] ?? [:]).compactMapValues { ($0 as? Double) ?? ($0 as? Int).map(Double.init) })
        }
    }

    /// One call to the head with curl (blocking; the body of the answer, empty on failure).
    @discardableResult
    static func call(_ method: String, _ path: String, json: [String: Any]? = nil) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        var arguments = ["-s", "-m", "5", "-X", method, "-H", "Authorization: Bearer \(token ?? "")"]
        if let json {
            arguments += ["-H", "Content-Type: application/json", "--data-binary", String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self)]
        }
        process.arguments = arguments + ["\(address)\(path)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return data
    }
}

/// After each test: no job that appeared on the head during it is listed FAILED with
/// `JOB_SUPERVISOR_ACTOR_DIED` while its worker wrote a succeeded record or the run stopped it —
/// what Ray's job monitor writes for a job deleted while it looked. (A job whose node really
/// died is deleted by the run loop two seconds after it ended, so it is not listed either.)
struct HeadListsNoJobFailedByItsDeletion: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard testCase != nil, RayTestCluster.answers else { return try await function() }
        let before = Set(try RayTestCluster.jobs().compactMap { $0["submission_id"] as? String })
        try await function()
        let isNew = { (job: [String: Any]) in (job["submission_id"] as? String).map { !before.contains($0) } ?? false }
        guard try RayTestCluster.jobs().contains(where: isNew) else { return }
        // Jobs are deleted 2 s after they end, and a job written back by Ray's monitor shows
        // within a second of its deletion.
        try await Task.sleep(nanoseconds: 3_500_000_000)
        let failed = try RayTestCluster.jobs().filter {
            isNew($0) && $0["status"] as? String == "FAILED" && $0["error_type"] as? String == "JOB_SUPERVISOR_ACTOR_DIED"
        }
        #expect(failed.isEmpty, "the head lists job(s) FAILED by their supervisor's death: \(failed.compactMap { $0["submission_id"] })")
    }
}

extension Trait where Self == HeadListsNoJobFailedByItsDeletion {
    static var headListsNoJobFailedByItsDeletion: Self { Self() }
}

@Suite struct RayHeadRequirementTests {
    @Test func aHeadAnswersWhereOneIsRequired() {
        if RayTestCluster.required {
            #expect(RayTestCluster.answers, "DATAFLOW_REQUIRE_RAY=1 but no Ray head answers at \(RayTestCluster.address) (Scripts/ray-local.sh start)")
        } else if !RayTestCluster.answers {
            print("note: \(RayTestCluster.skipNote)")
        }
    }
}

/// The Ray executor on a real Ray head (`Scripts/ray-local.sh`): whole workflows through the
/// public API, each task a Ray job running the test worker program.
@Suite(.serialized, .enabled(if: RayTestCluster.answers, RayTestCluster.skipNote), .headListsNoJobFailedByItsDeletion)
struct RayExecutorTests {
    @Test func theRayExecutorConformsWithJobsAttachedToTheStore() async throws {
        try await checkExecutorConformance(RayTestCluster.executor())
    }

    @Test func theRayExecutorConformsWithValuesThroughFiles() async throws {
        try await checkExecutorConformance(RayTestCluster.executor(.init(reachesStore: false)))
    }

    /// Three stages as three Ray jobs: right, and zero-copy (each job attached to the run's store).
    @Test func aThreeStageTensorPipelinePassesValuesThroughTheStore() async throws {
        try await withWorkdir { workdir in
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 64 << 20, executor: try RayTestCluster.executor())
            options.runID = "ray-pipeline-\(getpid())"
            let run = try await ClusterWorkflows.pipeline().run(options)
            let report = try run.result(named: "total", as: String.self)
            #expect(report.hasPrefix("total=\(ClusterWorkflows.pipelineTotal) store=\(run.store.name) "), "\(report)")
            let events = try RunLog.read(at: "\(workdir)/runs/\(options.runID!)/run.jsonl").filter { $0.kind == .attempt }
            #expect(events.map(\.executor) == ["ray", "ray", "ray"] && events.allSatisfy { $0.engineState == "SUCCEEDED" }, "\(events.map(\.engineState))")
            #expect(events.allSatisfy { $0.value?.reason.contains("cannot reach the store") != true })
            // Ray's log of each job is in the attempt log; the head keeps none of the run's jobs.
            let log = try String(contentsOfFile: "\(workdir)/runs/\(options.runID!)/logs/make.1.log", encoding: .utf8)
            #expect(log.contains("Ray's log of job"), "\(log)")
            // (Deleted 2 s after they ended: see `_RayRunLoop.deleteDelaySeconds`.)
            var left: [[String: Any]] = []
            for _ in 0..<40 {
                left = try RayTestCluster.jobs().filter { ($0["metadata"] as? [String: String])?["dataflow_run"] == options.runID }
                if left.isEmpty { break }
                try await Task.sleep(nanoseconds: 250_000_000)
            }
            #expect(left.isEmpty, "the head still keeps \(left.count) job(s) of the run")
        }
    }

    /// A task that throws: failed, with its message and the entrypoint's exit code.
    @Test func aFailingEntrypointCarriesItsExitCode() async throws {
        try await withWorkdir { workdir in
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: try RayTestCluster.executor())
            options.runID = "ray-failing-\(getpid())"
            let error = await expectDataflowError(.taskFailed) { try await ClusterWorkflows.failing().run(options) }
            let failure = error?.failures.first
            #expect(failure?.outcome == .failed && failure?.message.contains("the input was bad") == true && failure?.message.contains("FAILED, exit code 1") == true, "\(String(describing: failure))")
        }
    }

    /// A wrong token is a clear error naming the address, before anything is submitted.
    @Test func aWrongTokenIsAClearErrorNamingTheAddress() async throws {
        try await withWorkdir { workdir in
            let executor = try RayTestCluster.executor(.init(token: "not-the-token"))
            let error = await expectDataflowError(.executor) {
                try await ClusterWorkflows.failing().run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: executor))
            }
            #expect(error?.message.contains(RayTestCluster.address) == true && error?.message.contains("403") == true, "\(String(describing: error))")
        }
    }

    /// Cancelling a run stops its job: the attempt is cancelled, and no job of the run is left
    /// running on the head.
    @Test func aStoppedRunLeavesNoJobRunning() async throws {
        try await withWorkdir { workdir in
            try FileManager.default.createDirectory(atPath: TestWorkflows.markerDirectory, withIntermediateDirectories: true)
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: try RayTestCluster.executor())
            options.runID = "ray-stop-\(getpid())"
            let marker = TestWorkflows.cancelMarkerPath(runID: options.runID!, attempt: 1)
            let stopOptions = options
            let running = Task { try await TestWorkflows.conformanceCancel().run(stopOptions) }
            for _ in 0..<600 where !FileManager.default.fileExists(atPath: marker) { try await Task.sleep(nanoseconds: 100_000_000) }
            running.cancel()
            await expectDataflowError(.runCancelled) { try await running.value }
            let events = try RunLog.read(at: "\(workdir)/runs/\(options.runID!)/run.jsonl").filter { $0.kind == .attempt }
            #expect(events.compactMap(\.outcome) == [.cancelled] && events.first?.engineState == "STOPPED", "\(events.map { $0.engineState ?? "-" })")
            let active = try RayTestCluster.jobs().filter {
                ($0["metadata"] as? [String: String])?["dataflow_run"] == options.runID && ["PENDING", "RUNNING"].contains($0["status"] as? String ?? "")
            }
            #expect(active.isEmpty)
        }
    }

    /// `max_submit = 2`: the head's own job list never shows more than two of the run's jobs
    /// while a 20-task fan-out runs.
    @Test func maxSubmitIsNeverExceeded() async throws {
        try await withWorkdir { workdir in
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: try RayTestCluster.executor(.init(maxSubmit: 2)))
            options.runID = "ray-max-submit-\(getpid())"
            let runID = options.runID!
            let finished = Flag()
            let fanOutOptions = options
            let running = Task {
                defer { finished.set() }
                return try await ClusterWorkflows.fanOut(count: 20).run(fanOutOptions)
            }
            var most = 0
            var looks = 0
            while !finished.isSet {
                let ours = try RayTestCluster.jobs().filter {
                    ($0["metadata"] as? [String: String])?["dataflow_run"] == runID && ["PENDING", "RUNNING"].contains($0["status"] as? String ?? "")
                }
                most = max(most, ours.count)
                looks += 1
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            let run = try await running.value
            #expect(try run.result(named: "sum", as: Int.self) == (0..<20).reduce(0) { $0 + $1 * $1 + 1_000_000 })
            #expect(most <= 2 && most >= 1, "at most \(most) jobs at once over \(looks) looks")
        }
    }

    /// With `autoscaler_aware`, a task needing a resource no node has fails before anything runs.
    @Test func aResourceNoNodeHasIsAnImmediateError() async throws {
        try await withWorkdir { workdir in
            let started = Date()
            let error = await expectDataflowError(.resourcesExceedExecutor) {
                try await ClusterWorkflows.impossible(resources: Resources(custom: ["tpu_v9": 1])).run(
                    RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: try RayTestCluster.executor()))
            }
            #expect(error?.task == "wants-too-much" && error?.message.contains("tpu_v9") == true, "\(String(describing: error))")
            #expect(Date().timeIntervalSince(started) < 30)
        }
    }

    /// local → ray → local with values through files for the Ray job.
    @Test func aMixedGraphRunsAcrossLocalAndRay() async throws {
        try await withWorkdir { workdir in
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20)
            options.executors = ["hpc": try RayTestCluster.executor(.init(reachesStore: false))]
            options.runID = "ray-mixed-\(getpid())"
            let run = try await ClusterWorkflows.mixed().run(options)
            #expect(try run.result(named: "report", as: String.self) == "\(Double((0..<4096).reduce(0) { $0 + $1 % 11 + 1 })) over 4096")
            let events = try RunLog.read(at: "\(workdir)/runs/\(options.runID!)/run.jsonl").filter { $0.kind == .attempt }
            #expect(events.first { $0.task == "middle" }?.executor == "hpc")
            #expect(events.first { $0.task == "source" }?.value?.reason.contains("cannot reach the store") == true)
        }
    }

    /// Lineage on the cluster: the value a Ray job reads is lost before the job starts (its
    /// exchange file damaged): the job finds it lost, and its producer runs again.
    @Test func aLostInputOfAJobIsRecomputed() async throws {
        try await LineageTests.checkALostInputOfAJobIsRecomputed(executor: try RayTestCluster.executor(.init(reachesStore: false)), runID: "ray-lineage-\(getpid())")
    }
}

/// A flag set once, from any task.
private final class Flag: @unchecked Sendable {  // `value` is guarded by `lock`
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

/// A driver killed with SIGKILL (no clean-up of its own): its Ray job's worker notices that the
/// driver is gone and ends, so the head runs nothing of the dead run, and the run's store is left
/// consistent (nothing half-made once the dead are reclaimed).
extension RayExecutorTests {
    @Test func aKilledDriversJobEndsAndItsStoreStaysConsistent() async throws {
        try await withWorkdir { workdir in
            let runID = "ray-killed-driver-\(getpid())"
            let driver = try ChildProcess.spawn(
                executable: ProcessExecutorTests.workerPath,
                arguments: ["--drive-ray", RayTestCluster.address, RayTestCluster.tokenFile, workdir, runID], outputFile: "\(workdir)/driver.log")
            let marker = "\(NSTemporaryDirectory())dataflow-markers-\(driver.pid)/waits-\(runID).1.pid"
            for _ in 0..<600 where !FileManager.default.fileExists(atPath: marker) { try await Task.sleep(nanoseconds: 100_000_000) }
            #expect(FileManager.default.fileExists(atPath: marker), "the task never started in its Ray job: \(String(describing: try? String(contentsOfFile: "\(workdir)/driver.log", encoding: .utf8)))")
            driver.signal(SIGKILL)
            _ = await driver.exit()
            func active() throws -> Int {
                try RayTestCluster.jobs().filter {
                    ($0["metadata"] as? [String: String])?["dataflow_run"] == runID && ["PENDING", "RUNNING"].contains($0["status"] as? String ?? "")
                }.count
            }
            for _ in 0..<300 where try active() > 0 { try await Task.sleep(nanoseconds: 100_000_000) }
            #expect(try active() == 0, "the dead driver's job still runs")
            // The store the driver made for the run: consistent, then removed.
            let store = try SharedObjectStore.attach(named: "run-\(runID)")
            _ = try store.reclaimDeadProcesses()
            try store.verifyIntegrity()
            #expect(try store.statistics().creatingCount == 0)
            try? SharedObjectStore.remove(named: "run-\(runID)")
            try? FileManager.default.removeItem(atPath: "\(NSTemporaryDirectory())dataflow-markers-\(driver.pid)")
        }
    }
}

/// A node lost mid-task: a second Ray node on this machine (`Scripts/ray-local.sh node-start`,
/// which needs the head started with `RAY_LOCAL_MULTINODE=1`) offers the custom resource `pin`;
/// the head's own `pin` is held by a job of the test's, so the task's first attempt runs on the
/// second node. The test kills that node (SIGKILL to all its processes) while the attempt runs,
/// then frees the head's `pin`: the attempt is counted as preempted, and the retry, submitted
/// once Ray has declared the node dead, succeeds on the head.
extension RayExecutorTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Scripts/ray-local.sh").path

    /// Whether the head accepts more nodes and offers `pin` (`.ci/run` starts it so).
    static var headIsMultiNode: Bool {
        let ip = (try? String(contentsOfFile: "/run/ray-local/node_ip", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        return ip != nil && ip != "127.0.0.1" && (try? RayTestCluster.nodes().contains { $0.isHead && $0.resources["pin"] != nil }) == true
    }

    static func script(_ arguments: [String], log: String) async -> ChildProcess.Exit {
        guard let child = try? ChildProcess.spawn(executable: "/bin/bash", arguments: [script] + arguments, outputFile: log) else { return .exited(127) }
        return await child.exit()
    }

    @Test func aNodeLostMidTaskIsPreemptedAndTheRetrySucceedsOnTheHead() async throws {
        guard Self.headIsMultiNode else {
            let note = "the Ray head is not multi-node with a `pin` resource (RAY_LOCAL_MULTINODE=1 RAY_LOCAL_RESOURCES='{\"slot\": 4, \"pin\": 1}' Scripts/ray-local.sh start); the node-loss test is skipped"
            if RayTestCluster.required { Issue.record("\(note) although a Ray cluster is required") } else { print("note: \(note)") }
            return
        }
        try await withWorkdir { workdir in
            let release = "\(workdir)/release-head-pin"
            let blocker = "df-test-pin-\(getpid())"
            var failure: (any Error)?
            do {
                try await Self.loseANodeMidTask(workdir: workdir, blocker: blocker, release: release)
            } catch {
                failure = error
            }
            _ = FileManager.default.createFile(atPath: release, contents: nil)
            _ = await Self.script(["node-stop", "n2"], log: "\(workdir)/node.log")
            for _ in 0..<100 where try RayTestCluster.job(blocker).map({ ["PENDING", "RUNNING"].contains($0["status"] as? String ?? "") }) == true {
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            _ = try? RayTestCluster.call("DELETE", "/api/jobs/\(blocker)")
            if let failure { throw failure }
        }
    }

    static func loseANodeMidTask(workdir: String, blocker: String, release: String) async throws {
        let started = await Self.script(["node-start", "n2", #"{"pin": 1}"#, "1"], log: "\(workdir)/node.log")
        #expect(started == .exited(0), "\(String(describing: try? String(contentsOfFile: "\(workdir)/node.log", encoding: .utf8)))")
        // The head's pin, held until the second node is gone.
        _ = try RayTestCluster.call("POST", "/api/jobs/", json: [
            "submission_id": blocker, "entrypoint": "while [ ! -e \(release) ]; do sleep 0.1; done",
            "entrypoint_resources": ["pin": 1, "node:__internal_head__": 0.001],
        ])
        for _ in 0..<300 where try RayTestCluster.job(blocker)?["status"] as? String != "RUNNING" { try await Task.sleep(nanoseconds: 100_000_000) }
        #expect(try RayTestCluster.job(blocker)?["status"] as? String == "RUNNING")

        try FileManager.default.createDirectory(atPath: TestWorkflows.markerDirectory, withIntermediateDirectories: true)
        let marker = TestWorkflows.markerPath(task: "pinned", attempt: 1)
        unlink(marker)
        var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, executor: try RayTestCluster.executor())
        options.runID = "ray-node-lost"
        let running = Task { try await ClusterWorkflows.pinned().run(options) }
        for _ in 0..<600 where !FileManager.default.fileExists(atPath: marker) { try await Task.sleep(nanoseconds: 100_000_000) }
        #expect(FileManager.default.fileExists(atPath: marker), "the first attempt never started")
        let nodes = try RayTestCluster.nodes()
        #expect(await Self.script(["node-kill", "n2"], log: "\(workdir)/node.log") == .exited(0))
        _ = FileManager.default.createFile(atPath: release, contents: nil)

        let run = try await running.value
        #expect(try run.result(named: "pinned", as: Int.self) == 2)
        let events = try RunLog.read(at: "\(workdir)/runs/ray-node-lost/run.jsonl").filter { $0.kind == .attempt }
        #expect(events.compactMap(\.outcome) == [.preempted, .succeeded], "\(events.map { "\($0.outcome.map { "\($0)" } ?? "-") \($0.message ?? "")" })")
        #expect(events.first?.engineState == "FAILED JOB_SUPERVISOR_ACTOR_DIED")
        let head = nodes.first { $0.isHead }.map { String($0.id.prefix(12)) }
        let second = nodes.first { !$0.isHead && $0.state == "ALIVE" }.map { String($0.id.prefix(12)) }
        #expect(events.first?.node == second && events.last?.node == head, "attempts ran on \(events.map { $0.node ?? "-" }); head \(head ?? "-"), second node \(second ?? "-")")
    }
}
