import Dataflow
import DataflowTestWorkflows
import Foundation
import Materialize
import ObjectStore
import Testing

/// Memory pressure inside whole workflows, as a user meets it: a store too small for every value
/// at once, where spilling (not failing) is what the README promises under `auto`.
@Suite(.serialized) struct MemoryPressureTests {
    /// Three 16 MiB tensors in a 40 MiB store, at most two needed at once (see
    /// `TestWorkflows.memoryPressure`): made in place and returned by value, on the local
    /// executor and on warm worker processes.
    @Test(arguments: [true, false], ["local", "processes"])
    func aStoreTooSmallForEveryValueSpillsColdValuesInsteadOfFailing(inPlace: Bool, executor: String) async throws {
        try await withWorkdir { workdir in
            let pool = executor == "processes"
                ? try ProcessExecutor(.init(workerCount: 1, executable: ProcessExecutorTests.workerPath, prefaultStore: false)) : nil
            defer { pool?.shutdown() }
            var options = RunOptions(workdir: workdir, concurrency: 1, storeCapacityBytes: 40 << 20)
            options.memoryWaitSeconds = 5
            if let pool { options.executor = .processes(pool) }
            let run = try await TestWorkflows.memoryPressure(inPlace: inPlace).run(options)
            let scalars = Double(4 << 20)
            #expect(try run.result(named: "ab", as: Double.self) == 3 * scalars)
            #expect(try run.result(named: "cs", as: Double.self) == 3 * scalars)
            // Something went to a spill file and came back (the parent restores what a worker spilled).
            #expect(run.spill.restoredObjectCount > 0, "nothing was restored")
            if pool == nil { #expect(run.spill.spilledObjectCount > 0, "nothing was spilled") }
            try run.store.verifyIntegrity()
            let statistics = try run.store.statistics()
            #expect(statistics.objectCount == 2, "only the two results are left: \(statistics)")
        }
    }

    /// The default 1 GiB store holds three idle 256 MiB values when a fourth must be made.
    @Test func theDefaultStoreMakesAFourth256MiBValueWhenThreeIdleOnesFillIt() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("four-quarters")
            let scalars = 64 << 20  // 256 MiB of Float
            func make(_ name: String, _ value: Float) -> TaskRef<Tensor<Float>> {
                workflow.task(name) { () throws -> Tensor<Float> in
                    try TaskContext.current!.makeTensor(shape: [scalars], of: Float.self) { out in
                        for index in out.indices { out[index] = value }
                    }
                }
            }
            let first = make("v1", 1), second = make("v2", 2), third = make("v3", 3)
            let fourth = make("v4", 4)
            for earlier in [first, second, third] { workflow.addDependency(fourth, after: earlier) }
            for (index, value) in [first, second, third, fourth].enumerated() {
                let sum = workflow.task("s\(index + 1)", value) { (x: Tensor<Float>) in x[0] + x[x.count - 1] }
                workflow.addDependency(sum, after: fourth)
            }
            let run = try await workflow.run(RunOptions(workdir: workdir, concurrency: 1))
            for index in 1...4 { #expect(try run.result(named: "s\(index)", as: Float.self) == Float(2 * index)) }
            #expect(run.spill.spilledObjectCount >= 1)
            try run.store.verifyIntegrity()
        }
    }

    /// When nothing can be made free (a task needs three 16 MiB inputs at once in a 40 MiB
    /// store), the task fails soon, and the error names what pins the memory.
    @Test func whenNothingCanBeFreedTheTaskFailsNamingWhatPinsTheMemory() async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("too-much-at-once")
            let parts = (1...3).map { index in
                workflow.task("part\(index)") { () throws -> Tensor<Float> in
                    try TaskContext.current!.makeTensor(shape: [4 << 20], of: Float.self) { out in
                        for i in out.indices { out[i] = Float(index) }
                    }
                }
            }
            workflow.task("all", parts[0], parts[1], parts[2]) { (a: Tensor<Float>, b: Tensor<Float>, c: Tensor<Float>) in
                a[0] + b[0] + c[0]
            }
            var options = RunOptions(workdir: workdir, concurrency: 1, storeCapacityBytes: 40 << 20)
            options.memoryWaitSeconds = 0.5
            let error = await expectDataflowError(.taskFailed) { try await workflow.run(options) }
            let message = error?.failures.first?.message ?? ""
            #expect(error?.failures.map(\.task) == ["all"], "\(message)")
            #expect(message.contains("does not fit") && message.contains("sealed-in-use"), "\(message)")
        }
    }
}
