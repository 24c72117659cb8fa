import Dataflow
import Foundation
import Materialize
import ObjectStore
import Testing

/// A requested result is kept (in memory while the `WorkflowRun` lives) under every policy.
@Suite struct RequestedResultsTests {
    /// `src → mid → leafT` (a tensor) and `src → summary`: every leaf, and an intermediate value
    /// asked for by name, can be read after the run, whatever the policy.
    @Test(arguments: MaterializationPolicy.allCases)
    func everyRequestedResultCanBeReadUnderEveryPolicy(policy: MaterializationPolicy) async throws {
        try await withWorkdir { workdir in
            let workflow = Workflow("results-\(policy)", policy: policy)
            let source = workflow.task("src") { () throws -> Tensor<Float> in
                try TaskContext.current!.makeTensor(shape: [1000], of: Float.self) { out in
                    for index in out.indices { out[index] = Float(index) }
                }
            }
            let middle = workflow.task("mid", source) { (x: Tensor<Float>) throws -> Tensor<Float> in
                try TaskContext.current!.makeTensor(shape: x.shape, of: Float.self) { out in
                    for index in out.indices { out[index] = 2 * x[index] }
                }
            }
            let leaf = workflow.task("leafT", middle) { (x: Tensor<Float>) in Tensor<Float>(x.scalars.map { $0 + 1 }) }
            let summary = workflow.task("summary", source) { (x: Tensor<Float>) in "\(x.count) scalars" }

            // The default: every leaf.
            let leaves = try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20))
            #expect(leaves.resultNames == ["leafT", "summary"])
            #expect(try leaves.result(leaf)[999] == 1999)
            #expect(try leaves.result(summary) == "1000 scalars")
            let freed = try RunLog.read(at: leaves.logPath).filter { $0.kind == .valueFreed }.compactMap(\.task)
            #expect(!freed.contains("leafT") && !freed.contains("summary"), "a result was freed: \(freed)")

            // An intermediate value asked for by name is kept too, after its consumer is done.
            let named = try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, results: ["mid", "leafT"]))
            #expect(try named.result(middle)[10] == 20)
            #expect(try named.result(leaf)[10] == 21)
            try named.store.verifyIntegrity()
        }
    }
}
