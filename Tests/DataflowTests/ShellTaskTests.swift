import Dataflow
import Foundation
import Materialize
import ObjectStore
import Testing

/// Shell tasks: inputs as files, output from a file, failures, timeouts.
@Suite struct ShellTaskTests {
    @Test func aShellCommandReadsItsInputsAsFilesAndItsOutputComesBackIntoTheStore() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("shell")
            let lines = workflow.task("lines") { "pear\napple\nfig\n" }
            let suffix = workflow.task("suffix") { "!" }
            let sorted = workflow.shell(
                "sort", #"echo "sorting $(wc -l < "$DATAFLOW_INPUT_LINES") lines" >&2; sort "$DATAFLOW_INPUT_LINES" | sed "s/$/$(cat "$DATAFLOW_INPUT_END_MARK")/" > "$DATAFLOW_OUTPUT""#,
                inputs: ("lines", lines), ("end-mark", suffix), output: String.self)
            let count = workflow.task("count", sorted) { (text: String) in text.split(separator: "\n").count }
            let run = try await workflow.run(RunOptions(workdir: workdir, runID: "shell-1", storeCapacityBytes: 16 << 20, results: ["sort", "count"]))
            #expect(try run.result(sorted) == "apple!\nfig!\npear!\n")
            #expect(try run.result(count) == 3)
            let events = try RunLog.read(at: run.logPath)
            let attempt = try #require(events.first { $0.task == "sort" && $0.kind == .attempt })
            #expect(attempt.outcome == .succeeded && attempt.bytesIn == "pear\napple\nfig\n".utf8.count + 1)
            #expect(try String(contentsOfFile: try #require(attempt.logFile), encoding: .utf8).contains("sorting 3 lines"))
            // `auto` wrote the input files because a consumer needed them, and removed them with the values.
            let lineValue = try #require(events.first { $0.task == "lines" && $0.kind == .attempt }?.value)
            #expect(lineValue.reason.contains("needs a file"))
            let freed = try #require(events.first { $0.task == "lines" && $0.kind == .valueFreed })
            #expect(freed.value == nil, "the freed line carries a record only when files stay")
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(run.directory)/exchange").isEmpty)
        }
    }

    @Test func aFailingCommandFailsTheAttemptWithItsStatus() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("shell-fail")
            workflow.shell("exit-3", "echo about to fail >&2; exit 3", options: TaskOptions(retries: RetryPolicy(failures: 1, backoffSeconds: 0.01)))
            let error = await expectDataflowError(.taskFailed) { try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20)) }
            let failure = try #require(error?.failures.first)
            #expect(failure.attempts == 2 && failure.outcome == .failed)
            #expect(failure.message.contains("exited with status 3"))

            let silent = Workflow("shell-silent")
            silent.shell("no-output", "true")
            let noOutput = await expectDataflowError(.taskFailed) { try await silent.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20)) }
            #expect(noOutput?.failures.first?.message.contains("wrote no output file") == true)

            let notText = Workflow("shell-binary")
            notText.shell("binary", #"printf '\xff\xfe' > "$DATAFLOW_OUTPUT""#, output: String.self)
            let binary = await expectDataflowError(.taskFailed) { try await notText.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20)) }
            #expect(binary?.failures.first?.message.contains("UTF-8") == true)
        }
    }

    /// The command itself is stopped at the timeout (not only its attempt reported failed): its
    /// process is gone soon after, long before its own 120 s.
    @Test func aCommandPastItsTimeoutIsTerminated() async throws {
        try await withWorkdir { workdir in
            let pidFile = "\(workdir)/sleeper.pid"
            let workflow = Workflow("shell-timeout")
            workflow.shell(
                "sleeper", "echo $$ > \"\(pidFile)\"; exec sleep 120", options: TaskOptions(timeoutSeconds: 0.3))
            let error = await expectDataflowError(.taskFailed) { try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20)) }
            #expect(error?.failures.first?.message.contains("timed out") == true)
            let pid = try #require(pid_t((try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
            /// Running (not gone, not a zombie waiting to be reaped).
            func running() -> Bool {
                guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
                return !(stat.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).hasPrefix("Z") ?? false)
            }
            // SIGTERM at 0.3 s from a watchdog thread (then SIGKILL 2 s later); allow a loaded,
            // sanitized machine plenty of time before calling it not terminated.
            for _ in 0..<600 where running() { try await Task.sleep(nanoseconds: 100_000_000) }
            #expect(!running(), "the command (pid \(pid)) still runs after its timeout")
            if running() { kill(pid, SIGKILL) }
        }
    }

    /// The command is started with no signal blocked (Foundation.Process, started from async
    /// code, passes the starting thread's blocked signals on): at its timeout it gets SIGTERM and
    /// can clean up, instead of lingering until SIGKILL.
    @Test func aCommandPastItsTimeoutGetsSIGTERMAndCanCleanUp() async throws {
        try await withWorkdir { workdir in
            let marker = "\(workdir)/got-term"
            let ready = "\(workdir)/trap-set"
            // bash must have set its trap before the SIGTERM comes. It says so in `ready`; on a
            // machine so loaded that it had not by the timeout, the run proves nothing, and is
            // tried again with a longer timeout (a clean-clone CI run once saw over 2 s).
            for timeout in [3.0, 10, 30] {
                let workflow = Workflow("shell-sigterm")
                workflow.shell(
                    "trapper", "trap 'echo cleaned-up > \"\(marker)\"; exit 3' TERM; touch \"\(ready)\"; sleep 100 & wait",
                    options: TaskOptions(timeoutSeconds: timeout))
                let error = await expectDataflowError(.taskFailed) { try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20)) }
                #expect(error?.failures.first?.message.contains("timed out") == true)
                if FileManager.default.fileExists(atPath: ready) { break }
            }
            #expect(FileManager.default.fileExists(atPath: ready), "bash never set its trap")
            #expect(FileManager.default.fileExists(atPath: marker), "the command never saw SIGTERM")
        }
    }

    @Test func aNeverValueCannotFeedAShellCommand() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("shell-never")
            let secret = workflow.task("secret", options: TaskOptions(policy: .never)) { "in memory only" }
            workflow.shell("cat", #"cat "$DATAFLOW_INPUT_SECRET" > "$DATAFLOW_OUTPUT""#, inputs: ("secret", secret))
            let error = await expectDataflowError(.taskFailed) { try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20)) }
            #expect(error?.failures.first?.task == "secret")
            #expect(error?.failures.first?.message.contains("never") == true)
        }
    }
}
