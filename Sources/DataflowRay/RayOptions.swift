import Dataflow
import Foundation

extension RayExecutor {
    /// The executor's settings (the `[executor.<name>]` table of `type = "ray"`).
    ///
    /// - Note: A value type; thread-safe.
    public struct Options: Sendable {
        /// The dashboard, e.g. `http://127.0.0.1:8265` (default: `$RAY_DASHBOARD_ADDRESS`, else that).
        public var dashboardAddress: String
        /// The bearer token (default: `$RAY_AUTH_TOKEN`, else the file `tokenFile` names, else
        /// `$RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token` if it exists; none: no header).
        public var token: String?
        public var tokenFile: String?
        /// Where entrypoints start (`cd`), on the filesystem the cluster shares with this
        /// program (default: the run directory).
        public var workingDirectory: String?
        /// Status is read once per round (`GET /api/jobs/`); the interval starts here, doubles
        /// while nothing changes, up to the maximum, and is back to the minimum when a job changes.
        public var pollIntervalMinSeconds: Double
        public var pollIntervalMaxSeconds: Double
        /// At most this many Ray jobs of this executor in flight (each holds a supervisor actor
        /// of ~85 MB on the head).
        public var maxSubmit: Int
        /// Read the cluster's free resources before submitting: a task that does not fit now
        /// waits in our queue (not as a PENDING Ray job), and one that fits no node is an error
        /// at once.
        public var autoscalerAware: Bool
        /// Jobs attach to the run's store (`true`: the head and its nodes are this host) or get
        /// files in the shared run directory (`false`). Default: attach when the dashboard
        /// address is a loopback address.
        public var reachesStore: Bool?
        /// The worker program (default: this program) and arguments before the worker flag.
        public var executable: String?
        public var arguments: [String]
        /// Environment variables for every job (set on the entrypoint with `env`).
        public var environment: [String: String]
        /// Seconds an HTTP call may take.
        public var requestTimeoutSeconds: Double
        /// How long a stopped job that Ray still lists as PENDING is watched before the attempt
        /// is reported cancelled with a note that Ray may still start it (Ray delivers a pending
        /// job's stop only when its supervisor gets resources).
        public var pendingStopWatchSeconds: Double
        /// After a job lost its supervisor (its node died?), how long new submissions wait at
        /// most for Ray to declare that node DEAD, so that a retry does not land on a node that
        /// is gone but not yet known to be (Ray's health checks take about 15 s).
        public var nodeLossWaitSeconds: Double

        public init(
            dashboardAddress: String? = nil, token: String? = nil, tokenFile: String? = nil, workingDirectory: String? = nil,
            pollIntervalMinSeconds: Double = 0.25, pollIntervalMaxSeconds: Double = 5, maxSubmit: Int = 8, autoscalerAware: Bool = true,
            reachesStore: Bool? = nil, executable: String? = nil, arguments: [String] = [], environment: [String: String] = [:],
            requestTimeoutSeconds: Double = 30, pendingStopWatchSeconds: Double = 30, nodeLossWaitSeconds: Double = 60
        ) {
            self.dashboardAddress = dashboardAddress ?? ProcessInfo.processInfo.environment["RAY_DASHBOARD_ADDRESS"] ?? "http://127.0.0.1:8265"
            self.token = token
            self.tokenFile = tokenFile
            self.workingDirectory = workingDirectory
            self.pollIntervalMinSeconds = pollIntervalMinSeconds
            self.pollIntervalMaxSeconds = pollIntervalMaxSeconds
            self.maxSubmit = maxSubmit
            self.autoscalerAware = autoscalerAware
            self.reachesStore = reachesStore
            self.executable = executable
            self.arguments = arguments
            self.environment = environment
            self.requestTimeoutSeconds = requestTimeoutSeconds
            self.pendingStopWatchSeconds = pendingStopWatchSeconds
            self.nodeLossWaitSeconds = nodeLossWaitSeconds
        }

        /// Checks the settings.
        /// - Throws: `.invalidOption` naming the setting.
        public func validate() throws(DataflowError) {
            func bad(_ name: String, _ why: String) -> DataflowError { DataflowError(.invalidOption, "ray executor: \(name) \(why)") }
            guard let url = URL(string: dashboardAddress), url.host != nil, ["http", "https"].contains(url.scheme ?? "") else {
                throw bad("dashboard_address", "\(dashboardAddress.debugDescription) is no http(s) URL (e.g. \"http://127.0.0.1:8265\")")
            }
            guard pollIntervalMinSeconds > 0, pollIntervalMaxSeconds >= pollIntervalMinSeconds else {
                throw bad("poll_interval_min/poll_interval_max", "must be positive, the maximum at least the minimum (\(pollIntervalMinSeconds), \(pollIntervalMaxSeconds))")
            }
            guard maxSubmit >= 1 else { throw bad("max_submit", "must be at least 1, not \(maxSubmit)") }
            guard requestTimeoutSeconds > 0, pendingStopWatchSeconds >= 0, nodeLossWaitSeconds >= 0 else { throw bad("request_timeout", "must be positive") }
        }

        /// The token to send: `token`, `$RAY_AUTH_TOKEN`, `tokenFile`, `$RAY_AUTH_TOKEN_PATH`,
        /// `~/.ray/auth_token`, in that order (nil: none).
        /// - Throws: `.invalidOption` when a named token file cannot be read.
        func resolvedToken() throws(DataflowError) -> String? {
            if let token, !token.isEmpty { return token }
            let environment = ProcessInfo.processInfo.environment
            if let token = environment["RAY_AUTH_TOKEN"], !token.isEmpty { return token }
            for (path, named) in [(tokenFile, true), (environment["RAY_AUTH_TOKEN_PATH"], true), (NSHomeDirectory() + "/.ray/auth_token", false)] {
                guard let path, !path.isEmpty else { continue }
                guard let data = FileManager.default.contents(atPath: path) else {
                    if named { throw DataflowError(.invalidOption, "ray executor: cannot read the token file '\(path)'") }
                    continue
                }
                let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if !token.isEmpty { return token }
            }
            return nil
        }
    }
}
