import Dataflow
import Foundation
import Synchronization

/// The Ray executor's loop: submits queued attempts while fewer than `maxSubmit` jobs are in
/// flight (and, with `autoscalerAware`, while they fit the cluster's free resources), reads every
/// job's status with one `GET /api/jobs/` per round, and finishes the attempts whose jobs ended:
/// their log into the attempt log, the ending from Ray's status and the attempt record. The job
/// is deleted from the head `deleteDelaySeconds` after it ended, not at once: Ray's job manager
/// watches each job's supervisor actor once a second, and when it finds the actor gone and the
/// job's entry gone too (deleted while it looked), it writes the job back as FAILED ("Job
/// supervisor actor died"). A job that comes back anyway is deleted again. A program that exits
/// within that delay leaves its last jobs listed with their true final state (SUCCEEDED,
/// STOPPED), never FAILED.
///
/// - Note: Thread-safe: state is under `state`'s lock; continuations are resumed outside it.
final class _RayRunLoop: Sendable {
    struct Request: Sendable {
        var id: Int
        var launch: AttemptLaunch
        var prepared: PreparedAttempt
        /// The `POST /api/jobs/` body.
        var body: [String: _SendableJSON]
        var resources: Resources
        var submissionID: String

        init(id: Int, launch: AttemptLaunch, prepared: PreparedAttempt, body: [String: Any], resources: Resources) {
            self.id = id
            self.launch = launch
            self.prepared = prepared
            self.body = body.mapValues { _SendableJSON($0) }
            self.resources = resources
            self.submissionID = body["submission_id"] as? String ?? ""
        }
    }

    struct Job {
        var request: Request
        var continuation: CheckedContinuation<AttemptEnding, Never>
        var submittedAt: Date
        var stopRequested = false
        var stopSent: Date?
        var lastStatus: String?
        var finalSince: Date?
    }

    private struct State {
        var queued: [(Request, CheckedContinuation<AttemptEnding, Never>)] = []
        var jobs: [String: Job] = [:]
        var idOfRequest: [Int: String] = [:]
        var cancelledEarly: Set<Int> = []
        var loopRunning = false
        /// Resources of this loop's jobs that ended lately (Ray's usage still counts them).
        var recentlyEnded: [(at: Date, resources: Resources)] = []
        /// Nodes whose job lost its supervisor, by node id, with when: submissions wait until
        /// Ray declares them DEAD (at most `nodeLossWaitSeconds`).
        var lostNodes: [String: Date] = [:]
        /// Jobs that ended, by submission id, with when: deleted once `deleteDelaySeconds` passed.
        var toDelete: [String: Date] = [:]
        /// Jobs deleted, with when: watched for `resurrectionWatchSeconds` and deleted again if
        /// the head lists them again.
        var deleted: [String: Date] = [:]
    }

    /// How long after a job ended it is deleted from the head: more than the job manager's
    /// monitoring period (1 s in Ray 2.x), so that its monitor has seen the supervisor end.
    static let deleteDelaySeconds: Double = 2
    /// How long a deleted job is watched for coming back (see the type's doc).
    static let resurrectionWatchSeconds: Double = 6

    /// How long `/api/cluster_status` may still count a job that ended (its monitor's period).
    static let usageLagSeconds: Double = 6

    /// The amount of Ray resource `name` that `resources` asks for.
    static func amount(of name: String, in resources: Resources) -> Double {
        switch name {
        case "CPU": resources.cpu
        case "GPU": resources.gpu
        case "memory": Double(resources.memoryBytes)
        default: resources.custom[name] ?? 0
        }
    }

    private let state = LockedValue(State())
    private let sleeper = PollSleeper()
    private let options: RayExecutor.Options
    private let client: RayClient
    private let nextRequestID = Atomic<Int>(0)
    /// The most jobs this loop had in flight at once (for tests and the bench).
    let peakInFlight = Atomic<Int>(0)

    init(options: RayExecutor.Options, client: RayClient) {
        self.options = options
        self.client = client
    }

    func makeRequestID() -> Int { nextRequestID.add(1, ordering: .relaxed).newValue }

    func submit(_ request: Request) async -> AttemptEnding {
        let id = request.id
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<AttemptEnding, Never>) in
                let (cancelled, start) = state.withLock { state -> (Bool, Bool) in
                    if state.cancelledEarly.remove(id) != nil { return (true, false) }
                    state.queued.append((request, continuation))
                    defer { state.loopRunning = true }
                    return (false, !state.loopRunning)
                }
                if cancelled {
                    continuation.resume(returning: request.launch.ending(.cancelled, message: "run cancelled before the job was submitted"))
                    return
                }
                sleeper.wake()
                if start { Task.detached { await self.loop() } }
            }
        } onCancel: {
            self.cancel(requestID: id)
        }
    }

    private func cancel(requestID id: Int) {
        let queued = state.withLock { state -> (Request, CheckedContinuation<AttemptEnding, Never>)? in
            if let position = state.queued.firstIndex(where: { $0.0.id == id }) { return state.queued.remove(at: position) }
            if let job = state.idOfRequest[id] { state.jobs[job]?.stopRequested = true } else { state.cancelledEarly.insert(id) }
            return nil
        }
        if let (request, continuation) = queued {
            continuation.resume(returning: request.launch.ending(.cancelled, message: "run cancelled before the job was submitted"))
        }
        sleeper.wake()
    }

    private func loop() async {
        var interval = options.pollIntervalMinSeconds
        while true {
            await submitWhatFits()
            // Stops the run asked for.
            let stops = state.withLock { state -> [String] in
                let ids = state.jobs.values.filter { $0.stopRequested && $0.stopSent == nil }.map(\.request.submissionID)
                for id in ids { state.jobs[id]?.stopSent = Date() }
                return ids
            }
            for id in stops { await client.stop(id) }
            await deleteEndedJobs()
            let (done, onlyDeletions) = state.withLock { state -> (Bool, Bool) in
                guard state.jobs.isEmpty && state.queued.isEmpty else { return (false, false) }
                guard state.toDelete.isEmpty && state.deleted.isEmpty else { return (false, true) }
                state.loopRunning = false
                return (true, true)
            }
            if done { return }
            if onlyDeletions {
                // No attempt waits on this: the head is looked at twice a second for deletions.
                await sleeper.sleep(seconds: 0.5)
                _ = await pollRound()
                continue
            }
            // Look again soon when a job's worker has written its record (the job ends within
            // moments), or when attempts wait in our queue for room.
            let soon = !stops.isEmpty || state.withLock { !$0.queued.isEmpty } || recordWritten()
            await sleeper.sleep(seconds: soon ? options.pollIntervalMinSeconds : interval)
            let changed = await pollRound()
            interval = changed ? options.pollIntervalMinSeconds : min(options.pollIntervalMaxSeconds, interval * 2)
        }
    }

    /// Deletes the jobs that ended `deleteDelaySeconds` ago (all at once), and forgets deleted
    /// jobs watched long enough.
    private func deleteEndedJobs() async {
        let now = Date()
        let due = state.withLock { state -> [String] in
            let due = state.toDelete.filter { now.timeIntervalSince($0.value) >= Self.deleteDelaySeconds }.map(\.key)
            for id in due {
                state.toDelete[id] = nil
                state.deleted[id] = now
            }
            state.deleted = state.deleted.filter { now.timeIntervalSince($0.value) < Self.resurrectionWatchSeconds }
            return due
        }
        await delete(due)
    }

    private func delete(_ ids: [String]) async {
        guard !ids.isEmpty else { return }
        let client = self.client
        await withTaskGroup(of: Void.self) { group in
            for id in ids { group.addTask { await client.delete(id) } }
        }
    }

    /// Whether a job in flight has its attempt record (its worker is done).
    private func recordWritten() -> Bool {
        state.withLock { $0.jobs.values.map(\.request.prepared) }.contains(where: \.hasRecord)
    }

    /// Submits queued attempts, in order, while fewer than `maxSubmit` are in flight and (with
    /// `autoscalerAware`) while each fits what the cluster has free now.
    ///
    /// Free = the nodes' totals − what this loop's jobs in flight hold − what others hold. Ray's
    /// `/api/cluster_status` usage lags by seconds (its autoscaler monitor updates it
    /// periodically), so others' share is its usage less what this loop's jobs held over the last
    /// `usageLagSeconds` (still counted there after they ended).
    private func submitWhatFits() async {
        let room = state.withLock { max(0, options.maxSubmit - $0.jobs.count) }
        guard room > 0, state.withLock({ !$0.queued.isEmpty }) else { return }
        guard await lostNodesAreDead() else { return }
        var free: [String: Double]?
        if options.autoscalerAware, let capacity = try? await client.capacity(), let statusFree = capacity.free {
            var totals: [String: Double] = [:]
            for node in capacity.nodeTotals { totals.merge(node, uniquingKeysWith: +) }
            let now = Date()
            let (ours, recent) = state.withLock { state -> ([Resources], [Resources]) in
                state.recentlyEnded.removeAll { now.timeIntervalSince($0.at) > Self.usageLagSeconds }
                return (state.jobs.values.map(\.request.resources), state.recentlyEnded.map(\.resources))
            }
            var available = totals
            for (name, total) in totals {
                let key = statusFree[name] != nil ? name : RayExecutor.camelCased(name)
                guard let statusAvailable = statusFree[key] else { continue }
                let used = total - statusAvailable
                let oursThen = (ours + recent).reduce(0.0) { $0 + Self.amount(of: name, in: $1) }
                let oursNow = ours.reduce(0.0) { $0 + Self.amount(of: name, in: $1) }
                available[name] = total - oursNow - max(0, used - oursThen)
            }
            free = available
        }
        let batch = state.withLock { state -> [(Request, CheckedContinuation<AttemptEnding, Never>)] in
            var taken: [(Request, CheckedContinuation<AttemptEnding, Never>)] = []
            var index = 0
            while index < state.queued.count && taken.count < room {
                let resources = state.queued[index].0.resources
                if var available = free {
                    guard RayExecutor.fits(resources, in: available) else {
                        index += 1
                        continue
                    }
                    Self.subtract(resources, from: &available)
                    free = available
                }
                taken.append(state.queued.remove(at: index))
            }
            // Nothing fits and nothing of ours runs: submit the first anyway (the free numbers
            // may be stale; Ray then queues it).
            if taken.isEmpty && state.jobs.isEmpty && !state.queued.isEmpty { taken.append(state.queued.removeFirst()) }
            return taken
        }
        for (request, continuation) in batch {
            do {
                try await submitOne(request)
            } catch {
                continuation.resume(returning: request.launch.ending(.error, message: "\(error.message) (task '\(request.launch.taskName)' attempt \(request.launch.attempt))"))
                continue
            }
            let cancelledMeanwhile = state.withLock { state -> Bool in
                state.jobs[request.submissionID] = Job(request: request, continuation: continuation, submittedAt: Date())
                state.idOfRequest[request.id] = request.submissionID
                let inFlight = state.jobs.count
                var peak = peakInFlight.load(ordering: .relaxed)
                while inFlight > peak {
                    let (exchanged, original) = peakInFlight.compareExchange(expected: peak, desired: inFlight, ordering: .relaxed)
                    if exchanged { break }
                    peak = original
                }
                if state.cancelledEarly.remove(request.id) != nil {
                    state.jobs[request.submissionID]?.stopRequested = true
                    return true
                }
                return false
            }
            if cancelledMeanwhile { sleeper.wake() }
        }
    }

    /// Whether every node that lately lost a job's supervisor is DEAD (or gone) in Ray's node
    /// list, or was lost more than `nodeLossWaitSeconds` ago. Until then Ray may still place a
    /// retry on a node that has died but is not yet declared dead (its health checks take about
    /// 15 s), where the job would hang.
    private func lostNodesAreDead() async -> Bool {
        let now = Date()
        let lost = state.withLock { state -> [String] in
            state.lostNodes = state.lostNodes.filter { now.timeIntervalSince($0.value) < options.nodeLossWaitSeconds }
            return Array(state.lostNodes.keys)
        }
        guard !lost.isEmpty else { return true }
        guard let states = try? await client.nodeStates() else { return true }
        let dead = lost.filter { states[$0] != "ALIVE" }
        return state.withLock { state in
            for node in dead { state.lostNodes[node] = nil }
            return state.lostNodes.isEmpty
        }
    }

    /// `POST /api/jobs/`; a finished job of an earlier run with the same id is deleted first.
    private func submitOne(_ request: Request) async throws(DataflowError) {
        let body = request.body.mapValues(\.value)
        do {
            try await client.submit(body)
        } catch let error where error.message.contains("already exists") {
            await client.delete(request.submissionID)
            try await client.submit(body)
        }
    }

    private static func subtract(_ resources: Resources, from available: inout [String: Double]) {
        available["CPU", default: 0] -= resources.cpu
        available["GPU", default: 0] -= resources.gpu
        if resources.memoryBytes > 0 { available["memory", default: 0] -= Double(resources.memoryBytes) }
        for (name, amount) in resources.custom { available[name, default: 0] -= amount }
    }

    /// One `GET /api/jobs/`; finishes the jobs that ended. Returns whether any job changed.
    private func pollRound() async -> Bool {
        guard let listed = try? await client.jobs() else { return false }
        var byID: [String: RayClient.JobDetails] = [:]
        for job in listed { if let id = job.submission_id { byID[id] = job } }
        let now = Date()
        // Deleted jobs the head lists again (written back by its monitor): deleted again.
        let back = state.withLock { state -> [String] in
            state.deleted.keys.filter { id in byID[id].map { ["SUCCEEDED", "FAILED", "STOPPED"].contains($0.status) } ?? false }
        }
        await delete(back)
        let (candidates, changed) = state.withLock { state -> ([Job], Bool) in
            var candidates: [Job] = []
            var changed = false
            for id in state.jobs.keys {
                guard let details = byID[id] else { continue }
                if state.jobs[id]!.lastStatus != details.status { changed = true }
                state.jobs[id]!.lastStatus = details.status
                if ["SUCCEEDED", "FAILED", "STOPPED"].contains(details.status) {
                    if state.jobs[id]!.finalSince == nil { state.jobs[id]!.finalSince = now }
                    candidates.append(state.jobs[id]!)
                } else if details.status == "PENDING", let sent = state.jobs[id]!.stopSent,
                    now.timeIntervalSince(sent) > options.pendingStopWatchSeconds
                {
                    candidates.append(state.jobs[id]!)  // reported honestly below
                }
            }
            return (candidates, changed)
        }
        var finished: [(Job, AttemptEnding)] = []
        for job in candidates {
            let id = job.request.submissionID
            let launch = job.request.launch
            guard let details = byID[id] else { continue }
            let label = "Ray job \(id)"
            if details.status == "PENDING" {
                finished.append((job, launch.ending(
                    .cancelled,
                    message: "run cancelled: \(label) was asked to stop \(Int(options.pendingStopWatchSeconds)) s ago and Ray still lists it PENDING (Ray delivers the stop when it gets resources; its entrypoint may still run then)")))
                continue
            }
            let record = job.request.prepared.writtenRecord()
            let decision = RayOutcome.decide(
                status: details.status, errorType: details.error_type, exitCode: details.driver_exit_code, message: details.message, record: record,
                stoppedByRun: job.stopRequested, withinGrace: now.timeIntervalSince(job.finalSince ?? now) < 10, jobLabel: label)
            let cause = AttemptCause(
                exitStatus: details.driver_exit_code.flatMap { $0 >= 0 ? Int32($0) : nil }, signal: details.driver_exit_code.flatMap { $0 < 0 ? Int32(-$0) : nil },
                engineState: details.error_type.map { "\(details.status) \($0)" } ?? details.status, node: details.driver_node_id.map { String($0.prefix(12)) })
            switch decision {
            case .waitForRecord:
                continue
            case .decided(let outcome, let message):
                if outcome == .preempted, let type = details.error_type, RayOutcome.infrastructureLost.contains(type), let node = details.driver_node_id {
                    state.withLock { $0.lostNodes[node] = now }
                }
                finished.append((job, launch.ending(outcome, message: message, cause: cause)))
            case .record(let record, let suffix):
                if record.outcome == .succeeded {
                    finished.append((job, await launch.ending(record, cause: cause)))
                } else {
                    finished.append((job, launch.ending(record.outcome, message: (record.message ?? "the task did not succeed") + suffix, cause: cause)))
                }
            }
        }
        // Each ended job's log into its attempt log: all at once. The job is deleted from the
        // head later (see `deleteDelaySeconds`).
        let client = self.client
        await withTaskGroup(of: Void.self) { group in
            for (job, _) in finished where job.lastStatus != "PENDING" {
                let id = job.request.submissionID
                let logPath = job.request.launch.logPath
                group.addTask {
                    if let logs = await client.logs(id), !logs.isEmpty { Self.append(logs, toLog: logPath, jobID: id) }
                }
            }
        }
        state.withLock { state in
            for (job, _) in finished where job.lastStatus != "PENDING" {
                state.toDelete[job.request.submissionID] = job.finalSince ?? now
            }
            for (job, _) in finished {
                state.jobs[job.request.submissionID] = nil
                state.idOfRequest[job.request.id] = nil
                state.recentlyEnded.append((now, job.request.resources))
            }
        }
        for (job, ending) in finished where ending.outcome != .succeeded {
            _ = try? job.request.launch.store?.reclaimDeadProcesses()
        }
        for (job, ending) in finished {
            withExtendedLifetime(job.request.prepared) {}
            job.continuation.resume(returning: ending)
        }
        return changed || !finished.isEmpty
    }


    /// Appends Ray's log of the job to the attempt log.
    static func append(_ logs: String, toLog path: String, jobID: String) {
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) }
        guard let handle = FileHandle(forWritingAtPath: path) else { return }
        handle.seekToEndOfFile()
        handle.write(Data("---- Ray's log of job \(jobID) ----\n\(logs)\(logs.hasSuffix("\n") ? "" : "\n")".utf8))
        try? handle.close()
    }
}

/// A JSON value (strings, numbers, booleans, arrays, objects) carried across tasks.
struct _SendableJSON: @unchecked Sendable {  // only JSONSerialization's plain value types
    let value: Any
    init(_ value: Any) { self.value = value }
}
