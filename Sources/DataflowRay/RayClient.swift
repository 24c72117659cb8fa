import Dataflow
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP exchange with the Ray dashboard: what the executor needs of HTTP, so that the
/// client behind it can change (URLSession today; async-http-client if URLSession's Linux
/// defects bite) without touching the executor.
///
/// - Note: Implementations must be thread-safe.
public protocol RayTransport: Sendable {
    /// Sends `method` to `url` with `headers` and `body`; returns the status and the body.
    /// - Throws: when no answer came (connection refused, timeout).
    func send(method: String, url: URL, headers: [String: String], body: Data?, timeoutSeconds: Double) async throws -> (status: Int, body: Data)
}

/// `RayTransport` over Foundation's `URLSession` (FoundationNetworking on Linux, libcurl
/// underneath): no dependency beyond the toolchain. One ephemeral session per transport.
///
/// - Note: Thread-safe (URLSession is).
public final class URLSessionRayTransport: RayTransport {
    private let session: URLSession

    public init() {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 4
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        session = URLSession(configuration: configuration)
    }

    deinit { session.finishTasksAndInvalidate() }

    public func send(method: String, url: URL, headers: [String: String], body: Data?, timeoutSeconds: Double) async throws -> (status: Int, body: Data) {
        var request = URLRequest(url: url, timeoutInterval: timeoutSeconds)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = body
        let (data, response) = try await session.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }
}

/// The Ray Jobs REST API calls the executor makes, with typed errors that name the address.
///
/// - Note: Thread-safe (immutable).
struct RayClient: Sendable {
    let base: URL
    let token: String?
    let transport: any RayTransport
    let timeoutSeconds: Double

    /// What the dashboard says of a job (`GET /api/jobs/...`).
    struct JobDetails: Decodable, Sendable {
        var submission_id: String?
        var status: String
        var message: String?
        var error_type: String?
        var driver_exit_code: Int?
        var driver_node_id: String?
        var start_time: Double?
        var end_time: Double?
        var metadata: [String: String]?
    }

    /// A call that did not get the answer it needed.
    func failure(_ what: String, status: Int, body: Data) -> DataflowError {
        // A Python traceback says what went wrong on its last line.
        let whole = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let lines = whole.split(whereSeparator: \.isNewline)
        let text = whole.hasPrefix("Traceback") || whole.contains("\nTraceback") ? String(lines.last ?? "") : String(whole.prefix(600))
        switch status {
        case 401: return DataflowError(.executor, "ray at \(base.absoluteString): \(what): the dashboard wants a token (401 \(text)); set `token`, $RAY_AUTH_TOKEN or `token_file`")
        case 403: return DataflowError(.executor, "ray at \(base.absoluteString): \(what): the token was refused (403 \(text))")
        default: return DataflowError(.executor, "ray at \(base.absoluteString): \(what): HTTP \(status): \(text)")
        }
    }

    func call(_ method: String, _ path: String, json: Any? = nil) async throws(DataflowError) -> (status: Int, body: Data) {
        guard let url = URL(string: path, relativeTo: base) else { throw DataflowError(.executor, "ray: bad path \(path)") }
        var headers = ["Accept": "application/json"]
        if let token { headers["Authorization"] = "Bearer \(token)" }
        var body: Data?
        if let json {
            headers["Content-Type"] = "application/json"
            body = try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        }
        do {
            return try await transport.send(method: method, url: url, headers: headers, body: body, timeoutSeconds: timeoutSeconds)
        } catch {
            throw DataflowError(.executor, "ray at \(base.absoluteString): \(method) \(path): no answer (\(error.localizedDescription)); is the head running?")
        }
    }

    /// `GET /api/version`: the Ray version (checks the address and the token).
    func version() async throws(DataflowError) -> String {
        let (status, body) = try await call("GET", "/api/version")
        guard status == 200, let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw failure("GET /api/version", status: status, body: body)
        }
        return object["ray_version"] as? String ?? "?"
    }

    /// `POST /api/jobs/`.
    func submit(_ request: [String: Any]) async throws(DataflowError) {
        let (status, body) = try await call("POST", "/api/jobs/", json: request)
        guard status == 200 else { throw failure("submitting job \(request["submission_id"] ?? "?")", status: status, body: body) }
    }

    /// `GET /api/jobs/`: every job the head keeps (one call per round covers all in flight).
    func jobs() async throws(DataflowError) -> [JobDetails] {
        let (status, body) = try await call("GET", "/api/jobs/")
        guard status == 200 else { throw failure("GET /api/jobs/", status: status, body: body) }
        if let list = try? JSONDecoder().decode([JobDetails].self, from: body) { return list }
        struct Wrapped: Decodable { var data: [JobDetails] }  // before Ray 2.54
        if let wrapped = try? JSONDecoder().decode(Wrapped.self, from: body) { return wrapped.data }
        throw DataflowError(.executor, "ray at \(base.absoluteString): GET /api/jobs/ answered no job list: \(String(decoding: body.prefix(300), as: UTF8.self))")
    }

    /// `GET /api/jobs/{id}/logs`: the job's whole log (nil when it has none).
    func logs(_ id: String) async -> String? {
        guard let (status, body) = try? await call("GET", "/api/jobs/\(id)/logs"), status == 200,
            let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any]
        else { return nil }
        return object["logs"] as? String
    }

    /// `POST /api/jobs/{id}/stop`.
    func stop(_ id: String) async {
        _ = try? await call("POST", "/api/jobs/\(id)/stop")
    }

    /// `DELETE /api/jobs/{id}` (finished jobs only).
    func delete(_ id: String) async {
        _ = try? await call("DELETE", "/api/jobs/\(id)")
    }

    /// Each node's state by node id (`/api/v0/nodes`: ALIVE, DEAD, ...).
    func nodeStates() async throws(DataflowError) -> [String: String] {
        var states: [String: String] = [:]
        for node in try await nodeList() {
            if let id = node["node_id"] as? String, let state = node["state"] as? String { states[id] = state }
        }
        return states
    }

    /// `GET /api/v0/nodes?detail=true`: every node the head knows, as JSON objects.
    private func nodeList() async throws(DataflowError) -> [[String: Any]] {
        let (status, body) = try await call("GET", "/api/v0/nodes?detail=true&limit=1000")
        guard status == 200, let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw failure("GET /api/v0/nodes", status: status, body: body)
        }
        let data = object["data"] as? [String: Any]
        return (data?["result"] as? [String: Any])?["result"] as? [[String: Any]] ?? data?["result"] as? [[String: Any]] ?? []
    }

    /// What the cluster has: each node's total resources (`/api/v0/nodes`, alive nodes) and
    /// what is free now (`/api/cluster_status`: total − used).
    struct Capacity: Sendable {
        var nodeTotals: [[String: Double]]
        var free: [String: Double]?
    }

    func capacity() async throws(DataflowError) -> Capacity {
        let result = try await nodeList()
        var totals: [[String: Double]] = []
        for node in result where (node["state"] as? String) != "DEAD" {
            var resources: [String: Double] = [:]
            for (name, value) in node["resources_total"] as? [String: Any] ?? [:] {
                if let number = value as? Double { resources[name] = number } else if let number = value as? Int { resources[name] = Double(number) }
            }
            totals.append(resources)
        }
        var free: [String: Double]?
        if let (status, body) = try? await call("GET", "/api/cluster_status"), status == 200,
            let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
            let usage = (((object["data"] as? [String: Any])?["clusterStatus"] as? [String: Any])?["loadMetricsReport"] as? [String: Any])?["usage"] as? [String: Any],
            !usage.isEmpty
        {
            var map: [String: Double] = [:]
            for (name, pair) in usage {
                guard let values = pair as? [Any], values.count == 2 else { continue }
                let used = (values[0] as? Double) ?? Double(values[0] as? Int ?? 0)
                let total = (values[1] as? Double) ?? Double(values[1] as? Int ?? 0)
                map[name] = total - used
            }
            free = map
        }
        return Capacity(nodeTotals: totals, free: free)
    }
}
