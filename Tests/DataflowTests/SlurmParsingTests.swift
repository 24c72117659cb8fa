import Dataflow
@testable import DataflowSlurm
import Foundation
import Testing

/// What the SLURM executor reads from SLURM's tools and what it decides from it, on the exact
/// text SLURM 22.05 prints (research/engines.md §1.3; seen again on this project's cluster).
/// These run without a cluster; `SlurmExecutorTests` runs the same paths on a real one.
@Suite struct SlurmParsingTests {
    @Test func sacctLinesBecomeJobStates() {
        let text = """
            59_3|COMPLETED|0:0|vm|None
            59_[4-49%2]|PENDING|0:0|None assigned|JobArrayTaskLimit
            110|FAILED|1:0|vm|NonZeroExitCode
            5|CANCELLED by 0|0:15|vm|None
            6|TIMEOUT|0:0|vm|TimeLimit
            39|FAILED|0:9|vm|JobLaunchFailure
            """
        let states = Dictionary(uniqueKeysWithValues: SlurmJobStatus.parseSacct(text).map { ($0.key, $0) })
        #expect(states.count == 5, "the pending array range is no job: \(states.keys.sorted())")
        #expect(states["59_3"]?.state == "COMPLETED" && states["59_3"]?.isFinal == true && states["59_3"]?.node == "vm")
        #expect(states["110"]?.exitStatus == 1 && states["110"]?.signal == nil && states["110"]?.reason == "NonZeroExitCode")
        #expect(states["5"]?.state == "CANCELLED" && states["5"]?.cancelledBy == "0" && states["5"]?.signal == 15)
        #expect(states["39"]?.signal == 9 && states["39"]?.exitStatus == 0)
    }

    @Test func squeueLinesCarryTheRawWaitStatus() {
        let text = """
            1_[2-3%2]|PENDING|JobArrayTaskLimit|0||
            1_2|FAILED|NonZeroExitCode|512|vm|
            7|CANCELLED|None|15|vm|
            8|COMPLETED|None|0|vm|
            """
        let states = Dictionary(uniqueKeysWithValues: SlurmJobStatus.parseSqueue(text).map { ($0.key, $0) })
        #expect(states.count == 3)
        #expect(states["1_2"]?.exitStatus == 2 && states["1_2"]?.signal == nil)
        #expect(states["7"]?.signal == 15 && states["7"]?.exitStatus == nil)
        #expect(states["8"]?.exitStatus == 0)
    }

    @Test func outcomesComeFromTheRecordAndSlurmsState() {
        let ok = WorkerResult(outcome: .succeeded, output: nil, message: nil, bytesIn: 0)
        let threw = WorkerResult(outcome: .failed, output: nil, message: "bad input", bytesIn: 0)
        func decide(_ state: String, _ record: WorkerResult?, cancelled: Bool = false, started: Bool = true, grace: Bool = false,
                    exit: Int32? = nil, signal: Int32? = nil, by: String? = nil) -> String {
            let status = SlurmJobStatus(key: "12", state: state, cancelledBy: by, exitStatus: exit, signal: signal)
            switch SlurmOutcome.decide(status: status, record: record, cancelledByRun: cancelled, started: started, withinGrace: grace, jobLabel: "SLURM job 12") {
            case .record(let record, let suffix): return "record \(record.outcome)\(suffix)"
            case .decided(let outcome, let message): return "\(outcome): \(message)"
            case .waitForRecord: return "wait"
            }
        }
        #expect(decide("COMPLETED", ok) == "record succeeded")
        #expect(decide("COMPLETED", nil, grace: true) == "wait")
        #expect(decide("COMPLETED", nil).hasPrefix("failed: SLURM job 12 COMPLETED but its worker wrote no attempt record"))
        #expect(decide("FAILED", threw, exit: 1) == "record failed (SLURM job 12 FAILED, exit code 1)")
        #expect(decide("FAILED", nil, exit: 3).hasPrefix("failed: SLURM job 12 FAILED, exit code 3"))
        #expect(decide("OUT_OF_MEMORY", ok).hasPrefix("failed: out of memory"))
        #expect(decide("TIMEOUT", nil).hasPrefix("failed: time limit"))
        #expect(decide("PREEMPTED", nil).hasPrefix("preempted: SLURM ended SLURM job 12: PREEMPTED"))
        #expect(decide("NODE_FAIL", threw).hasPrefix("preempted"))
        #expect(decide("CANCELLED", nil, started: false, by: "0").hasPrefix("preempted: SLURM job 12 was cancelled by uid 0 before it started"))
        #expect(decide("CANCELLED", nil, started: true, by: "1000").hasPrefix("failed: SLURM job 12 was cancelled by uid 1000 while it ran"))
        #expect(decide("CANCELLED", nil, cancelled: true).hasPrefix("cancelled: run cancelled"))
    }

    @Test func resourcesAndSettingsBecomeSbatchArguments() {
        let options = SlurmExecutor.Options(partition: "batch", account: "lab", sbatchArguments: ["--exclusive"])
        let placement = SlurmSubmission.placement(
            resources: Resources(cpu: 1.5, memoryBytes: (3 << 30) + 1, gpu: 0.5, custom: ["license": 2]), timeoutSeconds: 90,
            settings: ["partition": "gpu", "sbatch_args": "--constraint=avx2 --exclude=n3"], options: options)
        #expect(placement == [
            "--nodes=1", "--ntasks=1", "--cpus-per-task=2", "--mem=3073M", "--gres=gpu:1,license:2", "--partition=gpu", "--account=lab",
            "--time=3", "--exclusive", "--constraint=avx2", "--exclude=n3",
        ])
        let timed = SlurmSubmission.placement(resources: Resources(), timeoutSeconds: 10, settings: ["time": "02:00:00"], options: SlurmExecutor.Options())
        #expect(timed.contains("--time=02:00:00") && !timed.contains { $0.hasPrefix("--mem") || $0.hasPrefix("--gres") })
    }

    /// The whole run id is in the job name, so that `squeue --name=df-<run id>` finds the run.
    @Test func jobNamesKeepTheWholeRunIDAndAreOnePerRun() {
        let runID = "acc-pipeline-20261207-205144-dba"
        #expect(SlurmSubmission.jobName(runID: runID) == "df-acc-pipeline-20261207-205144-dba")
        let long = "demo-r1032444-f64.e3-s42-20261201-111513-30dc-and-a-long-tail"
        #expect(SlurmSubmission.jobName(runID: long) == "df-\(long)")
        #expect(SlurmSubmission.jobName(runID: long) != SlurmSubmission.jobName(runID: long + "2"))
        // Ids SLURM's name would mangle, or too long: a safe start and a hash of the whole id.
        let odd = SlurmSubmission.jobName(runID: "a run/with spaces")
        #expect(odd.hasPrefix("df-a_run_with_spaces-") && odd != SlurmSubmission.jobName(runID: "a run/with_spaces"), "\(odd)")
        let tooLong = SlurmSubmission.jobName(runID: String(repeating: "x", count: 300))
        #expect(tooLong.count <= 3 + 200 + 1 + 8 && tooLong != SlurmSubmission.jobName(runID: String(repeating: "x", count: 301)), "\(tooLong)")
    }

    @Test func anArrayScriptPicksItsSpecAndLogByIndex() {
        let directory = RunDirectory(path: "/shared/runs/r1")
        let submission = SlurmSubmission(
            members: [
                .init(taskName: "sq[0]", attempt: 1, specPath: "/shared/runs/r1/workers/sq[0].1.spec.json", logPath: "/shared/runs/r1/logs/sq[0].1.log"),
                .init(taskName: "sq[1]", attempt: 1, specPath: "/shared/runs/r1/workers/it's.json", logPath: "/shared/runs/r1/logs/b.log"),
            ],
            placement: ["--cpus-per-task=1"], jobName: "df-r1-1", runID: "r1", runDirectory: directory, throttle: 4)
        let script = submission.script(workerCommand: ["/opt/my program"])
        #expect(script.contains("specs=('/shared/runs/r1/workers/sq[0].1.spec.json' '/shared/runs/r1/workers/it'\\''s.json')"), "\(script)")
        #expect(script.contains("exec '/opt/my program' --dataflow-worker \"${specs[$i]}\""), "\(script)")
        let arguments = submission.arguments(warningSignalSeconds: 30)
        #expect(arguments.contains("--array=0-1%4") && arguments.contains("--job-name=df-r1-1") && arguments.contains("--chdir=/shared/runs/r1"))
        #expect(arguments.contains("--signal=B:USR2@30") && arguments.last == submission.scriptPath)
        #expect(submission.key(of: 1, jobID: "77") == "77_1")
    }

    @Test func badSettingsAreClearErrors() {
        for (options, setting) in [
            (SlurmExecutor.Options(pollIntervalMinSeconds: 5, pollIntervalMaxSeconds: 1), "poll_interval"),
            (SlurmExecutor.Options(timeLimit: "forever"), "time"),
            (SlurmExecutor.Options(arrayThrottle: 0), "array_throttle"),
            (SlurmExecutor.Options(maxJobs: 0), "max_jobs"),
        ] {
            do {
                _ = try SlurmExecutor(options)
                Issue.record("accepted \(setting)")
            } catch {
                #expect(error.code == .invalidOption && error.message.contains(setting), "\(error)")
            }
        }
    }
}
