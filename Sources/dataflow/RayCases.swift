import Dataflow
import DataflowRay
import Foundation

/// The Ray cases (`dataflow bench --cases ray/`; only when asked for: they need a head): 50
/// trivial tasks through the Ray executor beside 50 raw job submissions of `true` through the
/// same REST API, observed to completion, in the same run. Both ask for one CPU per job
/// (`entrypoint_num_cpus`), and both may have all 50 in flight (`max_submit = 50` for ours).
/// A sample is the whole run's time divided by 50 (seconds per task). The head is
/// `$RAY_DASHBOARD_ADDRESS` (default http://127.0.0.1:8265), its token `$RAY_AUTH_TOKEN` or the
/// file `$DATAFLOW_RAY_TOKEN_FILE` (default /run/ray-local/auth_token).
enum RayCases {
    static func all() -> [any BenchCase] { [RayRawJobs(), RayFanout(autoscalerAware: true), RayFanout(autoscalerAware: false)] }

    static let taskCount = 50
    static var address: String { ProcessInfo.processInfo.environment["RAY_DASHBOARD_ADDRESS"] ?? "http://127.0.0.1:8265" }
    static var tokenFile: String { ProcessInfo.processInfo.environment["DATAFLOW_RAY_TOKEN_FILE"] ?? "/run/ray-local/auth_token" }
    static var token: String? {
        ProcessInfo.processInfo.environment["RAY_AUTH_TOKEN"]
            ?? FileManager.default.contents(atPath: tokenFile).map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
    }
}

/// `ray/raw-jobs`: 50 `POST /api/jobs/` of `true`, then `GET /api/jobs/` every 0.25 s until all
/// ended; the jobs are deleted afterwards (not timed).
struct RayRawJobs: BenchCase {
    let name = "ray/raw-jobs"
    let unit = BenchUnit.operation
    func sizes(_ settings: BenchSettings) -> [Int] { [MemoryLayout<Int>.size] }

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let transport = URLSessionRayTransport()
        var headers = ["Content-Type": "application/json"]
        if let token = RayCases.token { headers["Authorization"] = "Bearer \(token)" }
        func call(_ method: String, _ path: String, _ body: [String: Any]? = nil) async throws -> Data {
            let (status, data) = try await transport.send(
                method: method, url: URL(string: RayCases.address + path)!, headers: headers,
                body: try body.map { try JSONSerialization.data(withJSONObject: $0) }, timeoutSeconds: 30)
            guard status == 200 else {
                throw CommandError.benchFailed(benchCase: name, bytes: 0, reason: "\(method) \(path): HTTP \(status) \(String(decoding: data.prefix(300), as: UTF8.self))")
            }
            return data
        }
        var samples: [Double] = []
        for run in 0..<settings.runs {
            let ids = (0..<RayCases.taskCount).map { "dataflow-bench-raw-\(getpid())-\(run)-\($0)" }
            let seconds = try await Stopwatch.time {
                for id in ids { _ = try await call("POST", "/api/jobs/", ["entrypoint": "true", "submission_id": id, "entrypoint_num_cpus": 1]) }
                let wanted = Set(ids)
                while true {
                    let list = try JSONSerialization.jsonObject(with: try await call("GET", "/api/jobs/")) as? [[String: Any]] ?? []
                    let ended = list.filter { wanted.contains($0["submission_id"] as? String ?? "") && ["SUCCEEDED", "FAILED", "STOPPED"].contains($0["status"] as? String ?? "") }
                    if ended.count == ids.count { break }
                    try await Task.sleep(nanoseconds: 250_000_000)
                }
            }
            for id in ids { _ = try? await call("DELETE", "/api/jobs/\(id)") }
            samples.append(seconds / Double(RayCases.taskCount))
        }
        return samples
    }
}

/// `ray/fanout`: a `map` of 50 trivial Swift tasks through the Ray executor (the `dataflow`
/// program is each job's worker: it builds `bench-slurm-fanout-50` again).
struct RayFanout: BenchCase {
    /// With it (the default), jobs wait in our queue until they fit the cluster's free
    /// resources; without it (`ray/fanout[unaware]`), all 50 are submitted at once, as the raw case does.
    let autoscalerAware: Bool
    var name: String { autoscalerAware ? "ray/fanout" : "ray/fanout[unaware]" }
    let unit = BenchUnit.operation
    func sizes(_ settings: BenchSettings) -> [Int] { [MemoryLayout<Int>.size] }

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            var options = RayExecutor.Options(dashboardAddress: RayCases.address, maxSubmit: RayCases.taskCount, autoscalerAware: autoscalerAware)
            options.token = RayCases.token
            let executor = try RayExecutor(options)
            let workflow = BenchWorkflows.slurmFanout(count: RayCases.taskCount)
            let bench = try BenchStore(valueBytes: RayCases.taskCount * 256, liveValues: 1, maxObjects: 4 * RayCases.taskCount + 1024)
            defer { bench.remove() }
            var run = RunOptions(workdir: settings.scratchDirectory, store: bench.store, results: [], executor: executor)
            run.progress = .never
            var finished: WorkflowRun?
            let seconds = try await Stopwatch.time { finished = try await workflow.run(run) }
            if let done = finished { try? FileManager.default.removeItem(atPath: done.directory) }
            samples.append(seconds / Double(RayCases.taskCount))
        }
        return samples
    }
}
