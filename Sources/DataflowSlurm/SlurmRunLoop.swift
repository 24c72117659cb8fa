import Dataflow
import Foundation
import Logging
import Synchronization

/// The SLURM executor's engine room: one loop per executor that submits what the lanes
/// queued, asks SLURM once per round for the state of every job in flight (one query per run,
/// by the run's job name), and resumes the attempts whose jobs ended.
///
/// Lanes call `submit(_:)` and are suspended until their job ended (no thread waits). The loop
/// runs as a detached task while anything is queued or in flight, and ends when nothing is.
///
/// - Note: Thread-safe: all state is under `state`'s lock; continuations are resumed outside it.
final class _SlurmRunLoop: Sendable {
    /// One attempt to submit.
    struct Request: Sendable {
        var id: Int
        var launch: AttemptLaunch
        var prepared: PreparedAttempt
        var specPath: String
        var placement: [String]
        /// Attempts with the same group (a `map`'s first attempts, same placement) may share an array.
        var arrayGroup: String?
        var jobName: String
    }

    /// A submitted attempt.
    struct Job {
        var request: Request
        var continuation: CheckedContinuation<AttemptEnding, Never>
        /// `123` or `123_4`.
        var key: String
        var submittedAt: Date
        var cancelRequested = false
        var scancelSent = false
        var seenRunning = false
        var lastStatus: SlurmJobStatus?
        /// When a final state was first seen (the record's grace period runs from here).
        var finalSince: Date?
    }

    private struct State {
        var queued: [(Request, CheckedContinuation<AttemptEnding, Never>)] = []
        var jobs: [String: Job] = [:]
        /// Request id → job key, while in flight.
        var keyOfRequest: [Int: String] = [:]
        /// Cancellations that came before their request was queued.
        var cancelledEarly: Set<Int> = []
        var loopRunning = false
        /// Job names of runs that cancelled jobs (their `runEnded` waits for the queue to drain).
        var runsWithCancellations: Set<String> = []
    }

    private let state = LockedValue(State())
    private let sleeper = PollSleeper()
    private let options: SlurmExecutor.Options
    /// What `connect()` learned (nil before).
    private let cluster: _SlurmClusterState
    private let nextRequestID = Atomic<Int>(0)
    /// Each round's queries, submissions and endings at debug level (`DATAFLOW_SLURM_LOG=debug`
    /// prints them on standard error).
    private let logger: Logger = {
        var logger = Logger(label: "dataflow.slurm") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = ProcessInfo.processInfo.environment["DATAFLOW_SLURM_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
        return logger
    }()

    init(options: SlurmExecutor.Options, cluster: _SlurmClusterState) {
        self.options = options
        self.cluster = cluster
    }

    func makeRequestID() -> Int { nextRequestID.add(1, ordering: .relaxed).newValue }

    // MARK: Lanes

    /// Queues `request` and waits until its job ended. Cancelling the calling task cancels the
    /// job (`scancel`) and waits until SLURM says it ended.
    func submit(_ request: Request) async -> AttemptEnding {
        let id = request.id
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<AttemptEnding, Never>) in
                let (cancelledAlready, startLoop) = state.withLock { state -> (Bool, Bool) in
                    if state.cancelledEarly.remove(id) != nil { return (true, false) }
                    state.queued.append((request, continuation))
                    defer { state.loopRunning = true }
                    return (false, !state.loopRunning)
                }
                if cancelledAlready {
                    continuation.resume(returning: request.launch.ending(.cancelled, message: "run cancelled before the job was submitted"))
                    return
                }
                wake()
                if startLoop { Task.detached { await self.loop() } }
            }
        } onCancel: {
            self.cancel(requestID: id)
        }
    }

    private func cancel(requestID id: Int) {
        let queued = state.withLock { state -> (Request, CheckedContinuation<AttemptEnding, Never>)? in
            if let position = state.queued.firstIndex(where: { $0.0.id == id }) { return state.queued.remove(at: position) }
            if let key = state.keyOfRequest[id] {
                state.jobs[key]?.cancelRequested = true
                if let name = state.jobs[key]?.request.jobName { state.runsWithCancellations.insert(name) }
            } else {
                state.cancelledEarly.insert(id)
            }
            return nil
        }
        if let (request, continuation) = queued {
            continuation.resume(returning: request.launch.ending(.cancelled, message: "run cancelled before the job was submitted"))
        }
        wake()
    }

    /// After a run: jobs of it still in flight are cancelled, and if the run cancelled any, this
    /// waits (up to the command timeout) until none of its jobs is left in SLURM's queue.
    func runEnded(jobName: String) async {
        let (leftover, hadCancellations) = state.withLock { state -> ([String], Bool) in
            let keys = state.jobs.values.filter { $0.request.jobName == jobName && !$0.scancelSent }.map(\.key)
            for key in keys {
                state.jobs[key]?.cancelRequested = true
                state.jobs[key]?.scancelSent = true
            }
            return (keys, state.runsWithCancellations.remove(jobName) != nil)
        }
        if !leftover.isEmpty { _ = try? await command("scancel", leftover).run() }
        guard hadCancellations || !leftover.isEmpty else { return }
        let deadline = Date().addingTimeInterval(options.commandTimeoutSeconds)
        while Date() < deadline {
            let active = try? await command("squeue", ["-h", "--name=\(jobName)", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED,REQUEUED", "-o", "%i"]).run()
            if let active, active.status == 0, active.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return }
            try? await Task.sleep(nanoseconds: 200_000_000)
        }
    }

    // MARK: The loop

    private func loop() async {
        var interval = options.pollIntervalMinSeconds
        var lastPoll = Date.distantPast
        while true {
            // 1. Submit what is queued (after a short gather: a map's launches come one by one).
            if state.withLock({ !$0.queued.isEmpty }) {
                try? await Task.sleep(nanoseconds: UInt64(options.gatherSeconds * 1e9))
                let batch = state.withLock { state -> [(Request, CheckedContinuation<AttemptEnding, Never>)] in
                    let room = max(0, options.maxJobs - state.jobs.count)
                    let taken = Array(state.queued.prefix(room))
                    state.queued.removeFirst(taken.count)
                    return taken
                }
                if !batch.isEmpty {
                    await submitAll(batch)
                    interval = options.pollIntervalMinSeconds
                }
            }
            // 2. Cancel what the run asked to cancel, in one scancel.
            let cancels = state.withLock { state -> [String] in
                let keys = state.jobs.values.filter { $0.cancelRequested && !$0.scancelSent }.map(\.key)
                for key in keys { state.jobs[key]?.scancelSent = true }
                return keys
            }
            if !cancels.isEmpty {
                _ = try? await command("scancel", cancels.sorted()).run()
                interval = options.pollIntervalMinSeconds
            }
            // 3. Nothing left: the loop ends (the next submit starts another).
            let done = state.withLock { state -> Bool in
                guard state.jobs.isEmpty && state.queued.isEmpty else { return false }
                state.loopRunning = false
                return true
            }
            if done { return }
            // 4. Wait for the next round (a submission or a cancellation wakes it early). A job
            //    whose worker wrote its record is about to end: look again soon.
            if recordWritten() { interval = options.pollIntervalMinSeconds }
            await sleeper.sleep(seconds: max(0, interval - Date().timeIntervalSince(lastPoll)))
            if Date().timeIntervalSince(lastPoll) < options.pollIntervalMinSeconds * 0.5 && state.withLock({ !$0.queued.isEmpty }) { continue }
            // 5. One status query per run in flight; finish the jobs that ended.
            lastPoll = Date()
            let changed = await pollRound()
            logger.debug("poll round: changed \(changed), interval \(interval) s")
            interval = changed ? options.pollIntervalMinSeconds : min(options.pollIntervalMaxSeconds, interval * 2)
        }
    }

    /// Ends the loop's pause between rounds (a submission or a cancellation came).
    private func wake() { sleeper.wake() }

    // MARK: Submitting

    private func submitAll(_ batch: [(Request, CheckedContinuation<AttemptEnding, Never>)]) async {
        // Groups in arrival order: a map's first attempts with the same placement share one.
        var groups: [[(Request, CheckedContinuation<AttemptEnding, Never>)]] = []
        var groupIndex: [String: Int] = [:]
        let chunk = max(1, min(cluster.current?.maxArraySize ?? 1001, 1001) - 1)
        for item in batch {
            if options.arrays, let group = item.0.arrayGroup {
                let key = "\(item.0.jobName)\u{0}\(group)"
                if let index = groupIndex[key], groups[index].count < chunk {
                    groups[index].append(item)
                    continue
                }
                groupIndex[key] = groups.count
            }
            groups.append([item])
        }
        for group in groups { await submit(group) }
    }

    private func submit(_ group: [(Request, CheckedContinuation<AttemptEnding, Never>)]) async {
        let first = group[0].0
        let submission = SlurmSubmission(
            members: group.map {
                SlurmSubmission.Member(taskName: $0.0.launch.taskName, attempt: $0.0.launch.attempt, specPath: $0.0.specPath, logPath: $0.0.launch.logPath)
            },
            placement: first.placement, jobName: first.jobName, runID: first.launch.runID, runDirectory: first.launch.runDirectory,
            throttle: options.arrayThrottle)
        let tasks = group.count == 1 ? "task '\(first.launch.taskName)' attempt \(first.launch.attempt)" : "\(group.count) tasks of '\(first.arrayGroup ?? first.launch.taskName)'"
        func fail(_ message: String) {
            for (request, continuation) in group {
                continuation.resume(returning: request.launch.ending(.error, message: message))
            }
        }
        // Directories first: sbatch fails silently (JobLaunchFailure, 0:53) without them.
        let scriptPath = submission.scriptPath
        do {
            try FileManager.default.createDirectory(atPath: (scriptPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: first.launch.runDirectory.logsDirectory, withIntermediateDirectories: true)
            let script = submission.script(workerCommand: [options.executable ?? first.launch.workerProgram] + options.arguments)
            guard FileManager.default.createFile(atPath: scriptPath, contents: Data(script.utf8), attributes: [.posixPermissions: 0o700]) else {
                throw DataflowError(.runDirectory, "cannot write '\(scriptPath)'")
            }
        } catch {
            fail("slurm: cannot prepare the batch script of \(tasks): \(error)")
            return
        }
        let arguments = submission.arguments(warningSignalSeconds: options.warningSignalSeconds)
        let result: SlurmCommand.Result
        do {
            result = try await SlurmCommand(
                tool: "sbatch", arguments: arguments, environment: jobEnvironment(runID: first.launch.runID),
                timeoutSeconds: options.commandTimeoutSeconds
            ).run()
        } catch {
            fail("slurm: submitting \(tasks): \(error.message)")
            return
        }
        let jobID = result.output.split(whereSeparator: \.isNewline).first.map { String($0.split(separator: ";")[0]).trimmingCharacters(in: .whitespaces) } ?? ""
        guard result.status == 0, !jobID.isEmpty, jobID.allSatisfy(\.isNumber) else {
            fail("slurm refused \(tasks): \(result.message) (sbatch \(first.placement.joined(separator: " ")))")
            return
        }
        let now = Date()
        logger.debug("submitted \(tasks) as job \(jobID)")
        let cancelledMeanwhile = state.withLock { state -> Bool in
            var cancelled = false
            for (index, (request, continuation)) in group.enumerated() {
                let key = submission.key(of: index, jobID: jobID)
                state.jobs[key] = Job(request: request, continuation: continuation, key: key, submittedAt: now)
                state.keyOfRequest[request.id] = key
                // Cancelled while sbatch ran: cancel the job now.
                if state.cancelledEarly.remove(request.id) != nil {
                    state.jobs[key]!.cancelRequested = true
                    state.runsWithCancellations.insert(request.jobName)
                    cancelled = true
                }
            }
            return cancelled
        }
        if cancelledMeanwhile { wake() }
    }

    /// The jobs' environment: a minimal set, the driver's identity, and the executor's extra
    /// variables (no inherited `SLURM_*`: a driver inside a job would leak its own job's).
    private func jobEnvironment(runID: String) -> [String: String] {
        let inherited = ProcessInfo.processInfo.environment
        var environment: [String: String] = [:]
        for name in ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "LD_LIBRARY_PATH", "SLURM_CONF"] {
            if let value = inherited[name] { environment[name] = value }
        }
        environment["DATAFLOW_DRIVER_PID"] = String(getpid())
        environment["DATAFLOW_DRIVER_HOST"] = ProcessInfo.processInfo.hostName
        environment["DATAFLOW_RUN_ID"] = runID
        environment.merge(options.environment) { $1 }
        return environment
    }

    // MARK: Polling

    /// Whether a job in flight has its attempt record (its worker is done; SLURM will say so soon).
    private func recordWritten() -> Bool {
        state.withLock { $0.jobs.values.map(\.request.prepared) }.contains(where: \.hasRecord)
    }

    /// One status query per run in flight; finishes the jobs that ended. Returns whether any
    /// job ended or changed state.
    private func pollRound() async -> Bool {
        // By run: the SLURM job ids in flight (an array's id covers its tasks).
        let runs = state.withLock { state -> [String: Set<String>] in
            var ids: [String: Set<String>] = [:]
            for job in state.jobs.values { ids[job.request.jobName, default: []].insert(String(job.key.split(separator: "_")[0])) }
            return ids
        }
        var finishedAny = false
        for (jobName, ids) in runs {
            guard var statuses = await query(jobName: jobName, jobIDs: ids.sorted()) else { continue }
            // Jobs whose worker wrote its record but that accounting does not show ended yet
            // (slurmdbd lags slurmctld by 1-4 s here): slurmctld, which knows at once, is asked
            // for those only.
            let lagging = state.withLock { state in
                state.jobs.values.filter { $0.request.jobName == jobName && !(statuses[$0.key]?.isFinal ?? false) }
                    .filter { $0.request.prepared.hasRecord }.map(\.key)
            }
            if !lagging.isEmpty, statuses.count > 0 || options.statusSource != .squeue,
                let result = try? await command("squeue", ["-h", "-t", "all", "--jobs=\(lagging.sorted().joined(separator: ","))", "-O", Self.squeueFormat]).run(),
                result.status == 0
            {
                for status in SlurmJobStatus.parseSqueue(result.output) where status.isFinal { statuses[status.key] = status }
            }
            if await finish(jobName: jobName, statuses: statuses) { finishedAny = true }
        }
        return finishedAny
    }

    /// The states of run `jobName`'s jobs `jobIDs`, by key; nil when SLURM did not answer this
    /// round. (`sacct` by name *and* ids: by name alone, slurmdbd here lists a finished job
    /// 4-5 s later than by id, measured on 22.05.)
    private func query(jobName: String, jobIDs: [String]) async -> [String: SlurmJobStatus]? {
        let useSacct: Bool
        switch options.statusSource {
        case .sacct: useSacct = true
        case .squeue: useSacct = false
        case .auto: useSacct = cluster.current?.accountingWorks ?? true
        }
        if useSacct {
            let arguments = [
                "-X", "--parsable2", "--noheader", "--format=JobID,State,ExitCode,NodeList,Reason", "--name=\(jobName)",
                "--jobs=\(jobIDs.joined(separator: ","))",
            ]
            let result = try? await command("sacct", arguments).run()
            logger.debug("sacct \(jobName): status \(result?.status ?? -1), \(result?.output.split(whereSeparator: \.isNewline).count ?? 0) line(s)")
            if let result, result.status == 0 {
                return Dictionary(SlurmJobStatus.parseSacct(result.output).map { ($0.key, $0) }, uniquingKeysWith: { $1 })
            }
        }
        let arguments = ["-h", "-t", "all", "--name=\(jobName)", "-O", Self.squeueFormat]
        if let result = try? await command("squeue", arguments).run(), result.status == 0 {
            return Dictionary(SlurmJobStatus.parseSqueue(result.output).map { ($0.key, $0) }, uniquingKeysWith: { $1 })
        }
        return nil
    }

    /// Finishes the jobs of `jobName` whose state is final (and whose record is there, or whose
    /// grace period passed). Returns whether any finished or changed state.
    private func finish(jobName: String, statuses: [String: SlurmJobStatus]) async -> Bool {
        let now = Date()
        let (candidates, changed) = state.withLock { state -> ([Job], Bool) in
            var candidates: [Job] = []
            var changed = false
            for key in state.jobs.keys where state.jobs[key]!.request.jobName == jobName {
                guard let status = statuses[key] else {
                    // Never listed long after its submission (an array's pending tasks are
                    // listed as a range, not one by one, so only a job never seen at all counts).
                    let job = state.jobs[key]!
                    if job.lastStatus == nil, now.timeIntervalSince(job.submittedAt) > Self.unseenLimitSeconds,
                        !statuses.keys.contains(where: { $0.hasPrefix(key.split(separator: "_")[0] + "_") })
                    {
                        state.jobs[key]!.lastStatus = SlurmJobStatus(key: key, state: "UNSEEN")
                        state.jobs[key]!.finalSince = now
                        candidates.append(state.jobs[key]!)
                    }
                    continue
                }
                if state.jobs[key]!.lastStatus?.state != status.state { changed = true }
                state.jobs[key]!.lastStatus = status
                if status.state == "RUNNING" || status.state == "COMPLETING" { state.jobs[key]!.seenRunning = true }
                if status.isFinal {
                    if state.jobs[key]!.finalSince == nil { state.jobs[key]!.finalSince = now }
                    candidates.append(state.jobs[key]!)
                } else if status.state == "PENDING", let reason = status.reason, SlurmJobStatus.impossibleReasons.contains(reason) {
                    // It can never start: cancel it and report the reason (handled as final below).
                    var impossible = status
                    impossible.state = "IMPOSSIBLE"
                    state.jobs[key]!.lastStatus = impossible
                    state.jobs[key]!.finalSince = now
                    candidates.append(state.jobs[key]!)
                }
            }
            return (candidates, changed)
        }
        var finished: [(Job, AttemptEnding)] = []
        for job in candidates {
            guard let status = job.lastStatus, let since = job.finalSince else { continue }
            let launch = job.request.launch
            let label = "SLURM job \(job.key)"
            let cause = AttemptCause(exitStatus: status.exitStatus, signal: status.signal, engineState: status.state, node: status.node)
            if status.state == "UNSEEN" {
                _ = try? await command("scancel", [job.key]).run()
                finished.append((job, launch.ending(
                    .error, message: "slurm: \(label) of task '\(launch.taskName)' was not listed by sacct or squeue \(Int(Self.unseenLimitSeconds)) s after its submission (is slurmdbd or slurmctld healthy?); cancelled", cause: cause)))
                continue
            }
            if status.state == "IMPOSSIBLE" {
                _ = try? await command("scancel", [job.key]).run()
                finished.append((job, launch.ending(
                    .error, message: "slurm: \(label) of task '\(launch.taskName)' can never start as submitted (pending, reason \(status.reason ?? "?")); cancelled", cause: cause)))
                continue
            }
            let record = job.request.prepared.writtenRecord()
            let started = job.seenRunning || FileManager.default.fileExists(atPath: launch.logPath)
            let decision = SlurmOutcome.decide(
                status: status, record: record, cancelledByRun: job.cancelRequested, started: started,
                withinGrace: now.timeIntervalSince(since) < options.recordGraceSeconds, jobLabel: label)
            switch decision {
            case .waitForRecord:
                continue
            case .decided(let outcome, let message):
                finished.append((job, launch.ending(outcome, message: message, cause: cause)))
            case .record(let record, let suffix):
                if record.outcome == .succeeded {
                    finished.append((job, await launch.ending(record, cause: cause)))
                } else {
                    finished.append((job, launch.ending(record.outcome, message: (record.message ?? "the task did not succeed") + suffix, cause: cause)))
                }
            }
        }
        state.withLock { state in
            for (job, _) in finished {
                state.jobs[job.key] = nil
                state.keyOfRequest[job.request.id] = nil
            }
        }
        // A job that attached to the store and did not succeed may have died holding objects
        // (SIGKILL after a time limit, a preemption's KillWait): the store takes them back.
        for (job, ending) in finished where ending.outcome != .succeeded {
            _ = try? job.request.launch.store?.reclaimDeadProcesses()
        }
        for (job, ending) in finished {
            logger.debug("job \(job.key) (task '\(job.request.launch.taskName)'): \(job.lastStatus?.state ?? "?") → \(ending.outcome)")
            withExtendedLifetime(job.request.prepared) {}
            job.continuation.resume(returning: ending)
        }
        return changed || !finished.isEmpty
    }


    /// A job not listed by any status query this long after its submission is given up.
    static let unseenLimitSeconds: Double = 300

    /// `squeue -O` fields, as `SlurmJobStatus.parseSqueue` reads them.
    static let squeueFormat = "JobArrayID:|,State:|,Reason:|,exit_code:|,NodeList:|"

    private func command(_ tool: String, _ arguments: [String]) -> SlurmCommand {
        SlurmCommand(tool: tool, arguments: arguments, timeoutSeconds: options.commandTimeoutSeconds)
    }
}
