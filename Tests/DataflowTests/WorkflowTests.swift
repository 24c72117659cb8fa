import Dataflow
import Foundation
import Materialize
import ObjectStore
import Synchronization
import Testing

/// Building, validating and running workflows on the local executor.
@Suite struct WorkflowTests {
    @Test func chainFanOutAndFanInComputeTheRightResults() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("numbers")
            let base = workflow.task("base") { 10 }
            let doubled = workflow.task("double", base) { $0 * 2 }
            let squares = workflow.map("square", over: [1, 2, 3, 4]) { (x: Int) in x * x }
            let sum = workflow.gather("sum", squares) { $0.reduce(0, +) }
            let total = workflow.task("total", doubled, sum) { a, b in Double(a + b) }
            let text = workflow.task("describe", total, base) { (t: Double, b: Int) in "total \(t) from base \(b)" }
            let leavesOnly = try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20))
            #expect(leavesOnly.resultNames == ["describe"])  // by default: the leaves
            #expect(try leavesOnly.result(text) == "total 50.0 from base 10")
            let run = try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, results: ["total", "describe"]))
            #expect(try run.result(total) == 50)
            #expect(try run.result(text) == "total 50.0 from base 10")
        }
    }

    @Test func aTensorPassesToTheNextTaskWithoutACopy() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("tensors")
            let produced = workflow.task("produce") { () throws -> Tensor<Float> in
                try TaskContext.current!.makeTensor(shape: [1024, 256], of: Float.self) { scalars in
                    for index in scalars.indices { scalars[index] = Float(index % 7) }
                }
            }
            let inPlace = workflow.task("check", produced) { (x: Tensor<Float>) -> Bool in
                // The consumer's input is the very object the producer wrote (its output id for
                // attempt 1), and the view's scalars are that object's bytes, in place.
                let context = TaskContext.current!
                let handle = x.handle!
                let sameObject = handle.id == ObjectID(deriving: "\(context.runID)/produce/1")
                let viewAddress = x.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!) }
                let objectAddress = handle.withUnsafeBytes { $0.baseAddress! }
                return sameObject && viewAddress == objectAddress + 64 && x[6] == 6 && x[7] == 0
            }
            let store = try SharedObjectStore.create(named: "test-wf-zero-copy-\(getpid())", capacityBytes: 16 << 20)
            defer { try? SharedObjectStore.remove(named: store.name) }
            let run = try await workflow.run(RunOptions(workdir: workdir, store: store))
            #expect(try run.result(inPlace))
            try store.verifyIntegrity()
        }
    }

    /// A task that returns its input unchanged passes the very object on; the value stays alive
    /// for the consumers of both tasks (found by the hand-off benchmark: it was freed early).
    @Test func aTaskMayPassItsInputThrough() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("pass-through")
            let source = workflow.task("source") { () throws -> Tensor<Float> in
                try TaskContext.current!.makeTensor(shape: [100], of: Float.self) { for i in $0.indices { $0[i] = 1 } }
            }
            let same = workflow.task("same", source) { (x: Tensor<Float>) in x }
            let first = workflow.task("sum-source", source) { (x: Tensor<Float>) in x.reduce(0, +) }
            let second = workflow.task("sum-same", same) { (x: Tensor<Float>) in x.reduce(0, +) }
            let run = try await workflow.run(RunOptions(workdir: workdir, concurrency: 1, storeCapacityBytes: 16 << 20))
            #expect(try run.result(first) == 100 && run.result(second) == 100)
            #expect(try run.store.statistics().objectCount == 2)  // the two results; the tensor is freed
            // Asking for the source as a result keeps the object, though "same" is no result.
            let kept = try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, results: ["source", "sum-same"]))
            #expect(try kept.result(source).count == 100)
        }
    }

    @Test func theProgressLineShowsTasksAndStoreBytesAndIsQuietOffATerminal() async throws {
        try await withWorkdir { workdir in
            let lines = Mutex<[String]>([])
            let workflow = Workflow("progress")
            let data = workflow.task("data") { Tensor<Float>([1, 2, 3]) }
            workflow.task("sum", data) { (x: Tensor<Float>) in x.reduce(0, +) }
            var options = RunOptions(workdir: workdir, runID: "progress-1", storeCapacityBytes: 16 << 20)
            options.progress = .always
            options.progressWriter = { line in lines.withLock { $0.append(line) } }
            _ = try await workflow.run(options)
            let last = try #require(lines.withLock { $0.last })
            #expect(last.hasPrefix("\r[progress-1] 2/2 done, 0 running, 0 failed | store "))
            #expect(last.contains("in use, 0 B spilled") && last.hasSuffix("\n"))
            // Off a terminal (as under `swift test`), the default shows nothing.
            let quiet = Mutex(0)
            var automatic = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20)
            automatic.progressWriter = { _ in quiet.withLock { $0 += 1 } }
            _ = try await workflow.run(automatic)
            #expect(quiet.withLock { $0 } == 0)
        }
    }

    @Test func validationNamesTheTaskAtFault() async throws {
        let capacity = Resources(cpu: 2, memoryBytes: 1 << 30, gpu: 0, custom: ["license": 1])
        let duplicate = Workflow("dup")
        duplicate.task("a") { 1 }
        duplicate.task("a") { 2 }
        await expectDataflowError(.duplicateTaskName) { try duplicate.validate(capacity: capacity) }

        let cyclic = Workflow("cycle")
        let a = cyclic.task("a") { 1 }
        let b = cyclic.task("b", a) { $0 + 1 }
        let c = cyclic.task("c", b) { $0 + 1 }
        cyclic.addDependency(a, after: c)
        let cycle = await expectDataflowError(.cycle) { try cyclic.validate(capacity: capacity) }
        #expect(cycle?.message.contains("a") == true && cycle?.message.contains("b") == true && cycle?.message.contains("c") == true)

        let greedy = Workflow("greedy")
        greedy.task("gpu-hungry", options: TaskOptions(resources: Resources(cpu: 1, gpu: 1))) { 1 }
        let excess = await expectDataflowError(.resourcesExceedExecutor) { try greedy.validate(capacity: capacity) }
        #expect(excess?.task == "gpu-hungry" && excess?.message.contains("gpu") == true)
        let licensed = Workflow("licensed")
        licensed.task("two-licenses", options: TaskOptions(resources: Resources(custom: ["license": 2]))) { 1 }
        await expectDataflowError(.resourcesExceedExecutor) { try licensed.validate(capacity: capacity) }

        let other = Workflow("other")
        let foreign = other.task("theirs") { 1 }
        let mine = Workflow("mine")
        mine.task("uses-theirs", foreign) { $0 }
        let error = await expectDataflowError(.foreignInput) { try mine.validate(capacity: capacity) }
        #expect(error?.task == "uses-theirs")

        let bad = Workflow("bad")
        bad.task("t", options: TaskOptions(timeoutSeconds: 0)) { 1 }
        await expectDataflowError(.invalidOption) { try bad.validate(capacity: capacity) }
        await expectDataflowError(.unknownTask) { try await Workflow("w").run(RunOptions(results: ["nope"])) }
    }

    @Test func aHundredThousandTaskGraphBuildsAndValidates() throws {
        let workflow = Workflow("big")
        var previous = workflow.task("t0") { 0 }
        for index in 1..<100_000 {
            previous = index % 2 == 0 ? workflow.task("t\(index)", previous) { $0 + 1 } : workflow.task("t\(index)") { index }
        }
        try workflow.validate(capacity: Resources(cpu: 2))
        #expect(workflow.taskCount == 100_000)
    }

    @Test func concurrencyLimitAndResourcesAreRespected() async throws {
        try await withWorkdir { workdir in
            let limited = Concurrency()
            let workflow = Workflow("limited")
            for index in 0..<8 {
                workflow.task("t\(index)", options: TaskOptions(resources: Resources(cpu: 0.1))) { () async throws -> Int in
                    limited.enter()
                    try await Task.sleep(nanoseconds: 20_000_000)
                    limited.leave()
                    return index
                }
            }
            _ = try await workflow.run(RunOptions(workdir: workdir, concurrency: 3, storeCapacityBytes: 16 << 20))
            #expect(limited.most == 3)

            // A custom resource of 1 "slot": tasks needing it never overlap, whatever the concurrency.
            let slotted = Concurrency()
            let exclusive = Workflow("exclusive")
            for index in 0..<4 {
                exclusive.task("t\(index)", options: TaskOptions(resources: Resources(cpu: 0.1, custom: ["slot": 1]))) { () async throws -> Int in
                    slotted.enter()
                    try await Task.sleep(nanoseconds: 10_000_000)
                    slotted.leave()
                    return index
                }
            }
            _ = try await exclusive.run(RunOptions(workdir: workdir, concurrency: 4, capacity: Resources(cpu: 4, memoryBytes: 1 << 30, custom: ["slot": 1]), storeCapacityBytes: 16 << 20))
            #expect(slotted.most == 1)
        }
    }

    @Test func retriesAreCountedByCause() async throws {
        try await withWorkdir { workdir in
            let flaky = Counter(), preempted = Counter()
            let workflow = Workflow("retries")
            let fails = workflow.task("flaky", options: TaskOptions(retries: RetryPolicy(failures: 2, preemptions: 0, backoffSeconds: 0.01))) { () throws -> Int in
                if flaky.next() < 3 { throw Boom() }
                return 7
            }
            let spot = workflow.task("spot", options: TaskOptions(retries: RetryPolicy(failures: 0, preemptions: 1, backoffSeconds: 0.01))) { () throws -> Int in
                if preempted.next() < 2 { throw TaskPreempted("node reclaimed") }
                return 8
            }
            let sum = workflow.task("sum", fails, spot) { $0 + $1 }
            let run = try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20))
            #expect(try run.result(sum) == 15)
            let attempts = try RunLog.read(at: run.logPath).filter { $0.kind == .attempt }
            #expect(attempts.filter { $0.task == "flaky" }.map(\.outcome) == [.failed, .failed, .succeeded])
            #expect(attempts.filter { $0.task == "spot" }.map(\.outcome) == [.preempted, .succeeded])
            #expect(attempts.first { $0.task == "flaky" }?.message == "boom")
            #expect(attempts.allSatisfy { $0.executor == "local" && $0.start != nil && $0.end != nil })
            // The failure limit does not cover preemptions, nor the reverse.
            let strict = Workflow("strict")
            strict.task("spot", options: TaskOptions(retries: RetryPolicy(failures: 5, preemptions: 0))) { () throws -> Int in throw TaskPreempted() }
            let error = await expectDataflowError(.taskFailed) { try await strict.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20)) }
            #expect(error?.failures.first?.outcome == .preempted && error?.failures.first?.attempts == 1)
        }
    }

    @Test func aFailureStopsSchedulingByDefaultAndReportsEveryFailure() async throws {
        try await withWorkdir { workdir in
            let later = Counter()
            let workflow = Workflow("stop")
            let bad = workflow.task("bad") { () throws -> Int in throw Boom() }
            workflow.task("after-bad", bad) { $0 }
            // Independent work that would start only after "bad" failed (concurrency 1).
            workflow.task("independent", options: TaskOptions(resources: Resources(cpu: 1))) { () -> Int in later.next(); return 1 }
            let error = await expectDataflowError(.taskFailed) { try await workflow.run(RunOptions(workdir: workdir, concurrency: 1, storeCapacityBytes: 16 << 20)) }
            #expect(error?.failures.map(\.task) == ["bad"])
            #expect(error?.message.contains("bad") == true && error?.message.contains("boom") == true)
            #expect(later.current == 0)
        }
    }

    @Test func keepGoingRunsIndependentTasksAndSkipsDependents() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("keep-going")
            let bad = workflow.task("bad") { () throws -> Int in throw Boom() }
            let worse = workflow.task("worse") { () throws -> Int in throw Boom() }
            workflow.task("after-bad", bad) { $0 }
            workflow.task("after-both", bad, worse) { $0 + $1 }
            let good = workflow.task("good") { 5 }
            workflow.task("after-good", good) { $0 + 1 }
            let error = await expectDataflowError(.taskFailed) {
                try await workflow.run(RunOptions(workdir: workdir, runID: "keep-going-run", onFailure: .keepGoing, storeCapacityBytes: 16 << 20))
            }
            #expect(Set(error?.failures.map(\.task) ?? []) == ["bad", "worse"])
            let events = try RunLog.read(at: "\(workdir)/runs/keep-going-run/run.jsonl")
            #expect(events.contains { $0.task == "after-good" && $0.outcome == .succeeded })
            #expect(Set(events.filter { $0.outcome == .skipped }.compactMap(\.task)) == ["after-bad", "after-both"])
            #expect(events.last?.kind == .runFinished && events.last?.failed == 2)
        }
    }

    @Test func anAttemptPastItsTimeoutFails() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("timeout")
            workflow.task("slow", options: TaskOptions(timeoutSeconds: 0.05)) { () async throws -> Int in
                try await Task.sleep(nanoseconds: 5_000_000_000)
                return 1
            }
            let error = await expectDataflowError(.taskFailed) { try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20)) }
            #expect(error?.failures.first?.message.contains("timed out") == true)
        }
    }

    /// A local task that ignores cancellation past its timeout is reported failed at the
    /// timeout, and its lane takes the next task while the body still runs on its thread.
    @Test func aTaskThatIgnoresCancellationPastItsTimeoutDoesNotHoldItsLane() async throws {
        try await withWorkdir { workdir in
            let bodyFinished = Counter()
            // The body blocks until the test opens the gate, after the run returned: it never
            // checks for cancellation, so only a lane that does not wait for it lets the run end.
            let gate = DispatchSemaphore(value: 0)
            defer { gate.signal() }
            let workflow = Workflow("ignores-cancellation")
            let hog = workflow.task("hog", options: TaskOptions(timeoutSeconds: 0.2)) { () -> Int in
                gate.wait()
                bodyFinished.next()
                return 1
            }
            let next = workflow.task("next") { bodyFinished.current }
            workflow.addDependency(next, after: hog)  // (an ordering edge on a failed task: skipped)
            let independent = workflow.task("independent") { bodyFinished.current }
            _ = independent
            var options = RunOptions(workdir: workdir, concurrency: 1, onFailure: .keepGoing, storeCapacityBytes: 16 << 20)
            options.runID = "ignores-cancellation"
            let error = await expectDataflowError(.taskFailed) { try await workflow.run(options) }
            #expect(error?.failures.map(\.task) == ["hog"] && error?.failures.first?.message.contains("timed out") == true)
            // The run ended while the body still ran: its lane did not wait for it.
            #expect(bodyFinished.current == 0, "the run waited for the body to return")
            let events = try RunLog.read(at: "\(workdir)/runs/ignores-cancellation/run.jsonl").filter { $0.kind == .attempt }
            #expect(events.first { $0.task == "independent" }?.outcome == .succeeded)
        }
    }

    @Test func cancellingARunStopsItAndLeavesTheStoreConsistent() async throws {
        try await withWorkdir { workdir in
            let store = try SharedObjectStore.create(named: "test-wf-cancel-\(getpid())", capacityBytes: 16 << 20)
            defer { try? SharedObjectStore.remove(named: store.name) }
            let started = Counter()
            let workflow = Workflow("cancel")
            let first = workflow.task("first") { () throws -> Tensor<Float> in
                try TaskContext.current!.makeTensor(shape: [1000], of: Float.self) { $0[0] = 1 }
            }
            workflow.task("slow", first) { (x: Tensor<Float>) async throws -> Int in
                started.next()
                try await Task.sleep(nanoseconds: 600_000_000_000)  // cancelled long before
                return x.count
            }
            let run = Task { try await workflow.run(RunOptions(workdir: workdir, store: store)) }
            while started.current == 0 { try await Task.sleep(nanoseconds: 1_000_000) }
            run.cancel()
            do {
                _ = try await run.value
                Issue.record("expected cancellation")
            } catch let error as DataflowError {
                #expect(error.code == .runCancelled)
            }
            try store.verifyIntegrity()
            let stats = try store.statistics()
            #expect(stats.objectCount == 0 && stats.creatingCount == 0, "\(stats); \((try? store.capacityReport()).map { "\($0)" } ?? "")")
        }
    }

    /// A run that throws hands no result to its caller, so it leaves none in the caller's
    /// store either (the results of the tasks that succeeded beside a failed one are freed).
    @Test func aFailedRunLeavesNoResultInTheCallersStore() async throws {
        try await withWorkdir { workdir in
            let store = try SharedObjectStore.create(named: "test-wf-failed-\(getpid())", capacityBytes: 16 << 20)
            defer { try? SharedObjectStore.remove(named: store.name) }
            let workflow = Workflow("failed-leaves-nothing")
            let made = workflow.task("made") { () throws -> Tensor<Float> in Tensor<Float>([1, 2, 3]) }
            workflow.task("fine", made) { (x: Tensor<Float>) in Double(x.count) }
            workflow.task("broken", options: TaskOptions(retries: RetryPolicy(failures: 0))) { () throws -> Int in throw Boom() }
            let options = RunOptions(workdir: workdir, onFailure: .keepGoing, store: store)
            await expectDataflowError(.taskFailed) { try await workflow.run(options) }
            try store.verifyIntegrity()
            let stats = try store.statistics()
            #expect(stats.objectCount == 0, "\(stats)")
        }
    }

    @Test func theRunDirectoryRecordsEveryAttemptAndValue() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("recorded", policy: .final)
            let data = workflow.task("data") { () -> Tensor<Double> in
                TaskContext.current!.logger.info("making data")
                return Tensor([1, 2, 3])
            }
            let total = workflow.task("total", data) { (x: Tensor<Double>) in x.reduce(0, +) }
            let run = try await workflow.run(RunOptions(workdir: workdir, runID: "recorded-1", storeCapacityBytes: 16 << 20))
            #expect(run.directory == "\(workdir)/runs/recorded-1")
            let events = try RunLog.read(at: run.logPath)
            #expect(events.first?.kind == .runStarted && events.last?.kind == .runFinished)
            let attempt = try #require(events.first { $0.kind == .attempt && $0.task == "data" })
            #expect(attempt.bytesOut == 64 + 24 && attempt.value?.policy == .final)
            let log = try String(contentsOfFile: try #require(attempt.logFile), encoding: .utf8)
            #expect(log.contains("making data"))
            #expect(events.contains { $0.kind == .attempt && $0.task == "total" && $0.bytesIn == 88 })
            // The intermediate value was freed after its consumer; the leaf is in values/ (final).
            #expect(events.contains { $0.kind == .valueFreed && $0.task == "data" })
            #expect(FileManager.default.fileExists(atPath: "\(run.directory)/values/total.dfspill"))
            #expect(try SpillFile.read(at: "\(run.directory)/values/total.dfspill").header.typeTag == "float64")
            #expect(try run.result(total) == 6)
            #expect(try run.store.statistics().objectCount == 1)
            await expectDataflowError(.notARequestedResult) { try run.result(data) }
        }
    }
}

/// The run log's hand-written JSON lines read back as the very events written.
@Suite struct RunLogTests {
    @Test func runLogLinesRoundTripThroughTheDecoder() throws {
        try withTemporaryRunLog { log, path in
            var event = RunLogEvent.testing(kind: .attempt, runID: "run \"quoted\" \\ back")
            event.task = "task\nwith\tcontrol\u{01} and ünïcode ✓"
            event.executor = "local"
            event.attempt = 3
            event.start = Date(timeIntervalSince1970: 1_763_758_000.25)
            event.end = Date(timeIntervalSince1970: 1_763_758_001.5)
            event.outcome = .failed
            event.message = "boom"
            event.bytesIn = 12
            event.bytesOut = 34
            event.value = Materializer.ValueRecord(
                id: ObjectID(deriving: "v"), name: "v", policy: .final, byteCount: 34, files: ["/a b/c.dfspill", "x"],
                inMemory: false, remainingConsumers: 0, reason: "final: a leaf", contentHash: UInt64.max)
            event.logFile = "/tmp/log"
            event.lineage = TaskLineage(
                key: 0x0123_4567_89ab_cdef, token: 7, definition: 0, parameters: UInt64.max, inputs: [1, 0xfedc_ba98_7654_3210],
                version: "2 \"b\"", files: ["c.txt=00000000000000ff"], keptFile: "/k", fromRun: "r0")
            var reused = RunLogEvent.testing(kind: .reused, runID: "r")
            reused.lineage = TaskLineage(key: 5, token: 5, definition: 6, inputs: [])
            var finished = RunLogEvent.testing(kind: .runFinished, runID: "r")
            finished.workflow = "w"
            finished.reused = 2
            finished.taskCount = 5
            finished.succeeded = 4
            finished.failed = 1
            finished.skipped = 0
            // Lines leave out the run id outside the run's first and last lines: `read` fills it in.
            var extremes = RunLogEvent.testing(kind: .valueFreed, runID: "")
            extremes.attempt = 0
            extremes.bytesIn = Int.min
            extremes.bytesOut = Int.max
            extremes.taskCount = -7
            extremes.start = Date(timeIntervalSince1970: 0)
            extremes.end = Date(timeIntervalSince1970: 1_763_758_000.000001)
            log.append(event)
            log.append(reused)
            log.append(finished)
            log.append(extremes)
            log.flush()
            let read = try RunLog.read(at: path)
            for index in [0, 1, 3] { #expect(read[index].runID == "r") }
            var expected = [event, reused, finished, extremes]
            for index in expected.indices { expected[index].runID = "r" }
            #expect(read == expected)
            // The run-finished line keeps its own id, escaped, and `readEnds` finds it.
            var quoted = finished
            quoted.runID = "run \"quoted\" \\ back"
            let other = try RunLog(testingDirectory: "\((path as NSString).deletingLastPathComponent)/other")
            other.append(quoted)
            other.flush()
            #expect(try RunLog.readEnds(at: other.logPath).finished == quoted)
        }
    }
}
