import Dataflow
import DataflowTestWorkflows
import Foundation
import FreshProcessExecutor
import ObjectStore
import Testing

/// Lineage: a value lost mid-run (its spill file damaged or deleted, or the value gone from
/// memory) is recomputed from its producer, up the graph as far as needed, on every kind of
/// executor the consumer may run on; what cannot be recomputed fails naming the chain.
@Suite(.serialized) struct LineageTests {
    enum Consumer: String, CaseIterable {
        case local, processes, filesOnly
    }

    static func executor(_ consumer: Consumer) throws -> (any Executor, () -> Void) {
        switch consumer {
        case .local: return (LocalExecutor(), {})
        case .processes:
            let pool = try ProcessExecutor(.init(workerCount: 1, executable: ProcessExecutorTests.workerPath, prefaultStore: false))
            return (pool, { pool.shutdown() })
        case .filesOnly:
            return (FreshProcessExecutor(.init(executable: ProcessExecutorTests.workerPath, reachesStore: false)), {})
        }
    }

    static func options(workdir: String, runID: String, executor: any Executor) -> RunOptions {
        var options = RunOptions(workdir: workdir, storeCapacityBytes: 32 << 20, executor: executor)
        options.executors = ["here": LocalExecutor()]
        options.runID = runID
        return options
    }

    @Test(arguments: LineageWorkflows.Loss.allCases, Consumer.allCases)
    func aLostValueIsRecomputedFromItsProducers(loss: LineageWorkflows.Loss, consumer: Consumer) async throws {
        try await withWorkdir { workdir in
            let (executor, shutdown) = try Self.executor(consumer)
            defer { shutdown() }
            let runID = "lineage-\(loss.rawValue)-\(consumer.rawValue)"
            let run = try await LineageWorkflows.lossChain(loss, workdir: workdir).run(Self.options(workdir: workdir, runID: runID, executor: executor))
            #expect(try run.result(named: "total", as: Double.self) == LineageWorkflows.expectedTotal)
            let events = try RunLog.read(at: "\(workdir)/runs/\(runID)/run.jsonl")
            if consumer == .filesOnly && loss == .evict {
                // The consumer reads the value's file, which the eviction left alone.
                #expect(!events.contains { $0.kind == .recompute })
                return
            }
            let recomputed = events.filter { $0.kind == .recompute }
            // "scale" runs again for "total"; its own input ("make", freed after "scale" read
            // it) is gone as well, so "make" runs again for it.
            #expect(recomputed.map { $0.task ?? "-" } == ["scale", "make"], "\(recomputed.map { $0.message ?? "" })")
            #expect(recomputed.first?.message?.contains("input 1 of 'total'") == true, "\(recomputed.first?.message ?? "")")
            if loss == .deleteSpillFile {
                // The run log names the file that is gone.
                #expect(recomputed.first?.message?.contains(".dfspill") == true, "\(recomputed.first?.message ?? "")")
            }
            let attempts = events.filter { $0.kind == .attempt }
            func outcomes(_ task: String) -> [AttemptOutcome] { attempts.filter { $0.task == task }.compactMap(\.outcome) }
            #expect(outcomes("total") == [.error, .succeeded], "\(attempts.filter { $0.task == "total" }.map { $0.message ?? "" })")
            #expect(outcomes("scale") == [.succeeded, .error, .succeeded])
            #expect(outcomes("make") == [.succeeded, .succeeded])
            #expect(outcomes("lose") == [.succeeded])
        }
    }

    @Test func aLostValueOfANonDeterministicTaskFailsNamingTheChain() async throws {
        try await withWorkdir { workdir in
            let workflow = LineageWorkflows.lossChain(.evict, workdir: workdir, deterministic: false)
            let error = await expectDataflowError(.taskFailed) {
                try await workflow.run(Self.options(workdir: workdir, runID: "lineage-nondeterministic", executor: LocalExecutor()))
            }
            let failure = error?.failures.first
            #expect(failure?.task == "total")
            #expect(failure?.message.contains("the value of 'scale', input 1 of 'total', was lost") == true, "\(failure?.message ?? "")")
            #expect(failure?.message.contains("non-deterministic") == true, "\(failure?.message ?? "")")
        }
    }

    @Test func recomputationsAreBounded() async throws {
        try await withWorkdir { workdir in
            var options = Self.options(workdir: workdir, runID: "lineage-bounded", executor: LocalExecutor())
            options.recomputeLimit = 0
            let error = await expectDataflowError(.taskFailed) {
                try await LineageWorkflows.lossChain(.deleteSpillFile, workdir: workdir).run(options)
            }
            let failure = error?.failures.first
            #expect(failure?.task == "total")
            #expect(failure?.message.contains("recomputeLimit") == true, "\(failure?.message ?? "")")
        }
    }

    /// The cluster suites' lineage test: the chain with its consumer on `executor` (a batch
    /// engine whose jobs read files), the value the job reads damaged before the job starts.
    static func checkALostInputOfAJobIsRecomputed(executor: any Executor, runID: String) async throws {
        try await withWorkdir { workdir in
            let options = options(workdir: workdir, runID: runID, executor: executor)
            let run = try await LineageWorkflows.lossChain(.corruptSpillFile, workdir: workdir).run(options)
            #expect(try run.result(named: "total", as: Double.self) == LineageWorkflows.expectedTotal)
            let events = try RunLog.read(at: "\(workdir)/runs/\(runID)/run.jsonl")
            #expect(events.filter { $0.kind == .recompute }.compactMap(\.task) == ["scale", "make"])
            #expect(events.filter { $0.kind == .attempt && $0.task == "total" }.compactMap(\.outcome) == [.error, .succeeded])
        }
    }
}
