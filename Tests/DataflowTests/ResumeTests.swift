import Dataflow
import DataflowTestWorkflows
import Foundation
import Materialize
import ObjectStore
import Testing

/// Re-runs (`RunOptions.resume`): an unchanged workflow reuses its kept results and runs
/// nothing; a changed version, parameter, file dependency or input runs exactly what it
/// touches; a damaged kept file runs its task again; `resumePlan` (`--dry-run --resume`) says
/// why.
@Suite(.serialized) struct ResumeTests {
    struct Fixture {
        var workdir: String
        var config: String { "\(workdir)/config.txt" }

        func run(_ runID: String, version: String = "1", scale: String = "1", resume: Bool = true, executor: any Executor = LocalExecutor())
            async throws -> (run: WorkflowRun, ran: [String], reused: [String])
        {
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 32 << 20, executor: executor)
            options.runID = runID
            options.resume = resume
            let run = try await ResumeWorkflows.chain(configPath: config, reportVersion: version, scale: scale).run(options)
            let events = try RunLog.read(at: "\(workdir)/runs/\(runID)/run.jsonl")
            let ran = events.filter { $0.kind == .attempt && $0.outcome == .succeeded }.compactMap(\.task)
            let reused = events.filter { $0.kind == .reused }.compactMap(\.task)
            return (run, ran.sorted(), reused.sorted())
        }

        func plan(version: String = "1") throws -> [String: ResumeDecision] {
            var options = RunOptions(workdir: workdir)
            options.resume = true
            let decisions = try ResumeWorkflows.chain(configPath: config, reportVersion: version).resumePlan(options)
            return Dictionary(uniqueKeysWithValues: decisions.map { ($0.task, $0) })
        }
    }

    func withFixture(_ body: (Fixture) async throws -> Void) async throws {
        try await withWorkdir { workdir in
            let fixture = Fixture(workdir: workdir)
            try "first\n".write(toFile: fixture.config, atomically: true, encoding: .utf8)
            try await body(fixture)
        }
    }

    @Test func anUnchangedReRunReusesEveryKeptResultAndRunsNothing() async throws {
        try await withFixture { fixture in
            let first = try await fixture.run("first", resume: false)
            #expect(first.ran == ["double", "label", "report", "source"])
            let again = try await fixture.run("again")
            #expect(again.ran == [])
            #expect(again.reused == ["double", "label", "report", "source"])
            #expect(try again.run.result(named: "report", as: String.self) == ResumeWorkflows.expectedReport(label: "first"))
            // And again from the resumed run's own log (a chain of resumes).
            let third = try await fixture.run("third")
            #expect(third.ran == [])
            #expect(try third.run.result(named: "report", as: String.self) == ResumeWorkflows.expectedReport(label: "first"))
            // Without --resume everything runs.
            #expect(try await fixture.run("plain", resume: false).ran.count == 4)
            // The result's own kept file damaged: a re-run that would run nothing runs "report".
            try LineageWorkflows.flipAByte(of: "\(fixture.workdir)/runs/plain/values/report.dfspill")
            let repaired = try await fixture.run("repaired")
            #expect(repaired.ran == ["report"])
            #expect(try repaired.run.result(named: "report", as: String.self) == ResumeWorkflows.expectedReport(label: "first"))
        }
    }

    @Test func aChangedVersionRunsOnlyThatTaskOnKeptInputs() async throws {
        try await withFixture { fixture in
            _ = try await fixture.run("first", resume: false)
            let plan = try fixture.plan(version: "2")
            #expect(plan["report"]?.action == .run)
            #expect(plan["report"]?.reason == "version changed ('1' → '2')", "\(String(describing: plan["report"]))")
            #expect(plan["double"]?.action == .reuse && plan["source"]?.action == .reuse)
            let bumped = try await fixture.run("bumped", version: "2")
            #expect(bumped.ran == ["report"])
            #expect(try bumped.run.result(named: "report", as: String.self) == ResumeWorkflows.expectedReport(label: "first"))
            // A changed parameter too.
            let scaled = try await fixture.run("scaled", version: "2", scale: "3")
            #expect(scaled.ran == ["report"])
            #expect(try scaled.run.result(named: "report", as: String.self) == ResumeWorkflows.expectedReport(label: "first", scale: 3))
        }
    }

    @Test func aChangedFileDependencyRunsTheShellTaskAndWhatReadsIt() async throws {
        try await withFixture { fixture in
            _ = try await fixture.run("first", resume: false)
            try "second\n".write(toFile: fixture.config, atomically: true, encoding: .utf8)
            let plan = try fixture.plan()
            #expect(plan["label"]?.reason == "file dependency '\(fixture.config)' changed", "\(String(describing: plan["label"]))")
            #expect(plan["report"]?.reason == "input 'label' runs again", "\(String(describing: plan["report"]))")
            let changed = try await fixture.run("changed")
            #expect(changed.ran == ["label", "report"])
            #expect(try changed.run.result(named: "report", as: String.self) == ResumeWorkflows.expectedReport(label: "second"))
            // Nothing changed since: nothing runs.
            #expect(try await fixture.run("same").ran == [])
        }
    }

    @Test func aKeptFileThatFailsItsChecksumRunsItsTaskAgain() async throws {
        try await withFixture { fixture in
            _ = try await fixture.run("first", resume: false)
            let kept = "\(fixture.workdir)/runs/first/values/double.dfspill"
            #expect(FileManager.default.fileExists(atPath: kept))
            try LineageWorkflows.flipAByte(of: kept)
            // "report" runs (a new version) and reads "double": its kept file fails its checksum
            // as it is restored, so "double" runs again.
            let again = try await fixture.run("again", version: "2")
            #expect(again.ran == ["double", "report"], "\(again.ran)")
            #expect(try again.run.result(named: "report", as: String.self) == ResumeWorkflows.expectedReport(label: "first"))
            // A kept file that is gone: the same.
            try FileManager.default.removeItem(atPath: "\(fixture.workdir)/runs/again/values/double.dfspill")
            let plan = try fixture.plan(version: "3")
            #expect(plan["double"]?.action == .run && plan["double"]?.reason.contains("is gone") == true, "\(String(describing: plan["double"]))")
            #expect(try await fixture.run("gone", version: "3").ran == ["double", "report"])
        }
    }

    /// A consumer on worker processes reads a restored kept value from the store.
    @Test func restoredValuesFeedConsumersOnWorkerProcesses() async throws {
        try await withFixture { fixture in
            _ = try await fixture.run("first", resume: false)
            let pool = try ProcessExecutor(.init(workerCount: 1, executable: ProcessExecutorTests.workerPath, prefaultStore: false))
            defer { pool.shutdown() }
            let bumped = try await fixture.run("bumped", version: "2", executor: pool)
            #expect(bumped.ran == ["report"])
            #expect(try bumped.run.result(named: "report", as: String.self) == ResumeWorkflows.expectedReport(label: "first"))
        }
    }

    /// Under `final`, only the leaf is kept: an unchanged re-run restores it and skips the
    /// rest, which nothing that runs reads.
    @Test func underFinalOnlyTheLeafIsKeptAndTheRestIsSkipped() async throws {
        try await withWorkdir { workdir in
            let config = "\(workdir)/config.txt"
            try "first\n".write(toFile: config, atomically: true, encoding: .utf8)
            var options = RunOptions(workdir: workdir, storeCapacityBytes: 32 << 20)
            options.runID = "first"
            _ = try await ResumeWorkflows.chain(configPath: config, policy: .final).run(options)
            options.runID = "again"
            options.resume = true
            let decisions = try ResumeWorkflows.chain(configPath: config, policy: .final).resumePlan(options)
            #expect(decisions.map(\.action) == [.skip, .skip, .skip, .reuse], "\(decisions)")
            let run = try await ResumeWorkflows.chain(configPath: config, policy: .final).run(options)
            #expect(try run.result(named: "report", as: String.self) == ResumeWorkflows.expectedReport(label: "first"))
            let events = try RunLog.read(at: "\(workdir)/runs/again/run.jsonl")
            #expect(!events.contains { $0.kind == .attempt })
        }
    }

    /// A value a resumed run restored, lost mid-run: its producer runs again, and so does the
    /// producer's own producer, which the resumed run had not even restored.
    @Test func aRestoredValueLostMidRunIsRecomputedWithWhatTheResumeSkipped() async throws {
        try await withWorkdir { workdir in
            var options = LineageTests.options(workdir: workdir, runID: "first", executor: LocalExecutor())
            let first = try await LineageWorkflows.lossChain(.evict, workdir: workdir, policy: .always).run(options)
            #expect(try first.result(named: "total", as: Double.self) == LineageWorkflows.expectedTotal)
            options.runID = "again"
            options.resume = true
            options.rerun = ["lose", "total"]
            let again = try await LineageWorkflows.lossChain(.evict, workdir: workdir, policy: .always).run(options)
            #expect(try again.result(named: "total", as: Double.self) == LineageWorkflows.expectedTotal)
            let events = try RunLog.read(at: "\(workdir)/runs/again/run.jsonl")
            let recomputed = events.filter { $0.kind == .recompute }
            #expect(recomputed.compactMap(\.task) == ["scale", "make"], "\(recomputed.map { $0.message ?? "" })")
            #expect(recomputed.last?.message?.contains("a resumed run did not restore it") == true)
            let finished = events.last { $0.kind == .runFinished }
            #expect((finished?.reused ?? 0) == 0 && finished?.succeeded == 4, "\(String(describing: finished))")
        }
    }
}
