import Dataflow
import Foundation
import Synchronization

/// Runs each attempt as a Ray job through the Ray Jobs REST API on the dashboard: the job's
/// entrypoint is the workflow program in worker mode (`cd <dir> && exec <program>
/// --dataflow-worker <spec.json>`), and Ray's job status together with the attempt record the
/// worker writes last decide how it ended (`RayOutcome`).
///
///     let ray = try RayExecutor(.init(dashboardAddress: "http://head:8265", maxSubmit: 16))
///     let run = try await workflow.run(RunOptions(executor: ray))
///
/// - Submission: `POST /api/jobs/` with a deterministic `submission_id`
///   (`df-<run>-<task>-<attempt>`), the environment on the entrypoint (`env NAME=value`; not
///   `runtime_env`, which costs a trip through Ray's runtime-env agent), `metadata` (run, task, attempt),
///   and resources: cpu → `entrypoint_num_cpus`, memory → `entrypoint_memory` (bytes), gpu →
///   `entrypoint_num_gpus` (fractions allowed), custom → `entrypoint_resources`. At most
///   `maxSubmit` jobs in flight; with `autoscalerAware`, only jobs that fit the cluster's free
///   resources now are submitted, and one that fits no node fails at once.
/// - Status: one `GET /api/jobs/` per round, the interval doubling from `pollIntervalMinSeconds`
///   to `pollIntervalMaxSeconds` while nothing changes.
/// - After a job ended: its log is appended to the attempt's log, and the job is deleted from
///   the head (which keeps ~85 MB per supervisor, and slows as history grows).
/// - Cancellation: `POST /api/jobs/{id}/stop`, then the job is watched until Ray says it ended
///   (a PENDING job's stop is delivered only when it gets resources: see `pendingStopWatchSeconds`).
///
/// - Note: Thread-safe: state is behind locks; the loop runs as one task while jobs are in flight.
public final class RayExecutor: Executor {
    public let options: Options
    let client: RayClient
    private let loop: _RayRunLoop
    private let capacity = LockedValue<RayClient.Capacity?>(nil)

    /// - Throws: `.invalidOption` naming a bad setting or an unreadable token file.
    public init(_ options: Options = Options(), transport: any RayTransport = URLSessionRayTransport()) throws(DataflowError) {
        try options.validate()
        self.options = options
        self.client = RayClient(base: URL(string: options.dashboardAddress)!, token: try options.resolvedToken(), transport: transport, timeoutSeconds: options.requestTimeoutSeconds)
        self.loop = _RayRunLoop(options: options, client: client)
    }

    public var kind: String { "ray" }

    public var capabilities: ExecutorCapabilities {
        let host = URL(string: options.dashboardAddress)?.host ?? ""
        let local = ["127.0.0.1", "localhost", "::1", ProcessInfo.processInfo.hostName].contains(host)
        return ExecutorCapabilities(
            reachesStore: options.reachesStore ?? local, sharesRunDirectory: true, nodeResources: capacity.withLock { $0 }.flatMap(Self.largestNode),
            canCancel: true, maxConcurrentAttempts: 10_000, schedulesResources: true)
    }

    /// Checks that the dashboard answers with this token (`GET /api/version`) and, with
    /// `autoscalerAware`, reads what the nodes have.
    /// - Throws: `.executor` naming the address (no answer, a missing or refused token).
    public func connect() async throws(DataflowError) {
        _ = try await client.version()
        if options.autoscalerAware {
            let known = try await client.capacity()
            capacity.withLock { $0 = known }
        }
    }

    public func run(_ attempt: AttemptLaunch) async -> AttemptEnding {
        if attempt.isShell { return await attempt.runHere() }
        let prepared: PreparedAttempt
        let specPath: String
        do {
            prepared = try await attempt.prepare()
            specPath = try prepared.writeSpecFile()
            unlink(prepared.spec.resultPath)
        } catch {
            return attempt.ending(.error, message: error.message)
        }
        let resources = attempt.resources
        if options.autoscalerAware, let known = capacity.withLock({ $0 }), !known.nodeTotals.isEmpty,
            !known.nodeTotals.contains(where: { Self.fits(resources, in: $0) })
        {
            return attempt.ending(.error, message: "ray: task '\(attempt.taskName)' asks for \(resources), which no node of the cluster at \(options.dashboardAddress) has")
        }
        let directory = options.workingDirectory ?? attempt.runDirectory.path
        let program = ([options.executable ?? attempt.workerProgram] + options.arguments + [WorkerSpec.flag, specPath]).map(Self.quote).joined(separator: " ")
        var environment = options.environment
        environment["DATAFLOW_DRIVER_PID"] = String(getpid())
        environment["DATAFLOW_DRIVER_HOST"] = ProcessInfo.processInfo.hostName
        environment["DATAFLOW_RUN_ID"] = attempt.runID
        // The variables ride on the entrypoint (`env NAME=value ...`), not in `runtime_env`:
        // a runtime environment, even of variables only, goes through Ray's runtime-env agent
        // first (measured here: about 0.2 s more per job).
        let variables = environment.sorted { $0.key < $1.key }.map { Self.quote("\($0.key)=\($0.value)") }.joined(separator: " ")
        var body: [String: Any] = [
            "entrypoint": "cd \(Self.quote(directory)) && exec env \(variables) \(program)",
            "submission_id": Self.submissionID(runDirectory: attempt.runDirectory.path, runID: attempt.runID, task: attempt.taskName, attempt: attempt.attempt),
            "metadata": ["dataflow_run": attempt.runID, "dataflow_task": attempt.taskName, "dataflow_attempt": String(attempt.attempt)],
            "entrypoint_num_cpus": resources.cpu,
        ]
        if resources.memoryBytes > 0 { body["entrypoint_memory"] = resources.memoryBytes }
        if resources.gpu > 0 { body["entrypoint_num_gpus"] = resources.gpu }
        if !resources.custom.isEmpty { body["entrypoint_resources"] = resources.custom }
        return await loop.submit(.init(id: loop.makeRequestID(), launch: attempt, prepared: prepared, body: body, resources: resources))
    }

    public func leftovers(runID: String) -> String? {
        let prefix = "df-" + String(runID.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "_" }.prefix(40)) + "-"
        return "Ray jobs whose submission id starts with \(prefix) on \(options.dashboardAddress) (each running one ends itself within a second once it finds the driver gone, on the driver's host; end one now: ray job stop ID)"
    }

    /// The submission id of an attempt: deterministic (the run id, the task, a hash of the run
    /// directory and the task, the attempt), so a resubmission finds the same job, and runs of
    /// the same id in other work directories do not collide.
    public static func submissionID(runDirectory: String, runID: String, task: String, attempt: Int) -> String {
        func safe(_ text: String, _ limit: Int) -> String {
            String(text.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "_" }.prefix(limit))
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(runDirectory)\u{0}\(task)".utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "df-\(safe(runID, 40))-\(safe(task, 40))-\(String(hash & 0xffff_ffff, radix: 16))-\(attempt)"
    }

    /// Whether `resources` fit within a node's (or the free) amounts, Ray's names: `CPU`,
    /// `GPU`, `memory` (bytes), custom names as declared (or camelCased, as `/api/cluster_status` writes them).
    static func fits(_ resources: Resources, in available: [String: Double]) -> Bool {
        func amount(_ name: String) -> Double { available[name] ?? available[camelCased(name)] ?? 0 }
        guard resources.cpu <= amount("CPU") + 1e-9, resources.gpu <= amount("GPU") + 1e-9 else { return false }
        if resources.memoryBytes > 0, Double(resources.memoryBytes) > amount("memory") { return false }
        return resources.custom.allSatisfy { $0.value <= amount($0.key) + 1e-9 }
    }

    static func camelCased(_ name: String) -> String {
        let parts = name.split(separator: "_")
        guard parts.count > 1 else { return name }
        return String(parts[0]) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    /// The largest amounts any node has, as `Resources`.
    static func largestNode(_ capacity: RayClient.Capacity) -> Resources? {
        guard !capacity.nodeTotals.isEmpty else { return nil }
        var largest = Resources(cpu: 0)
        for node in capacity.nodeTotals {
            largest.cpu = max(largest.cpu, node["CPU"] ?? 0)
            largest.gpu = max(largest.gpu, node["GPU"] ?? 0)
            largest.memoryBytes = max(largest.memoryBytes, Int(node["memory"] ?? 0))
            for (name, value) in node where !["CPU", "GPU", "memory", "object_store_memory"].contains(name) && !name.hasPrefix("node:") {
                largest.custom[name] = max(largest.custom[name] ?? 0, value)
            }
        }
        return largest
    }

    static func quote(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}
