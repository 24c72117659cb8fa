import Dataflow
import Foundation
import Materialize
import ObjectStore

/// Workflows whose values get lost mid-run, for the lineage tests: the consumer must see its
/// input's producer run again (and that producer's own producer, when its value is gone too).
public enum LineageWorkflows {
    /// How the value of "scale" is lost before "total" reads it.
    public enum Loss: String, Sendable, CaseIterable {
        /// Spilled to its file, then a byte of the file flipped.
        case corruptSpillFile
        /// Spilled to its file, then the file deleted.
        case deleteSpillFile
        /// Deleted from memory, never spilled (an eviction).
        case evict
    }

    public static func all() -> [Workflow] {
        Loss.allCases.map { lossChain($0, workdir: "") } + [lossChain(.evict, workdir: "", deterministic: false)]
    }

    /// make → scale → total, and a task "lose" (on the executor named "here", which must be a
    /// local one) that runs after "scale" and before "total" and loses the value of "scale"
    /// (attempt 1) as `loss` says. "total" runs on the run's default executor.
    /// `deterministic: false` marks "scale" non-deterministic (its loss must fail the run).
    public static func lossChain(_ loss: Loss, workdir: String, deterministic: Bool = true, policy: MaterializationPolicy = .auto) -> Workflow {
        let workflow = Workflow("lineage-\(loss.rawValue)\(deterministic ? "" : "-nondeterministic")", policy: policy)
        let made = workflow.task("make") { () -> Tensor<Float> in Tensor<Float>((0..<65_536).map { Float($0 % 13) }) }
        let scaled = workflow.task("scale", made, options: TaskOptions(deterministic: deterministic)) { (x: Tensor<Float>) throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: x.shape, of: Float.self) { out in
                for index in out.indices { out[index] = 2 * x[index] }
            }
        }
        let lose = workflow.task("lose", options: TaskOptions(executor: "here")) { () throws -> Int in
            let context = TaskContext.current!
            let store = context.store
            // Attempt 1's value, or (in a resumed run) the value restored from a kept file.
            let id = [0, 1].map { Workflow.outputID(runID: context.runID, task: "scale", attempt: $0) }.first { (try? store.get($0)) != nil }
                ?? Workflow.outputID(runID: context.runID, task: "scale", attempt: 1)
            switch loss {
            case .evict:
                try store.delete(id)
            case .corruptSpillFile, .deleteSpillFile:
                // Another spill manager of the same store writes the run's spill file for it.
                let spill = try SpillManager(store: store, rootDirectory: RunDirectory.spillRoot(workdir: workdir))
                let outcome = try spill.spill(id)
                guard outcome.evicted else { throw LossFailed(what: "scale's value was not evicted: \(outcome)") }
                var paths = [spill.path(for: id)]
                // A consumer without the store reads the value's exchange file: that goes too.
                let exchange = RunDirectory(workdir: workdir, runID: context.runID).exchangeDirectory + "/scale.dfspill"
                if FileManager.default.fileExists(atPath: exchange) { paths.append(exchange) }
                for path in paths {
                    if loss == .deleteSpillFile {
                        guard unlink(path) == 0 else { throw LossFailed(what: "cannot delete \(path)") }
                    } else {
                        try flipAByte(of: path)
                    }
                }
            }
            return 1
        }
        workflow.addDependency(lose, after: scaled)
        let total = workflow.task("total", scaled) { (x: Tensor<Float>) -> Double in x.reduce(0.0) { $0 + Double($1) } }
        workflow.addDependency(total, after: lose)
        return workflow
    }

    /// The expected "total".
    public static var expectedTotal: Double { Double((0..<65_536).reduce(0) { $0 + 2 * ($1 % 13) }) }

    /// Flips one byte of a spill file's payload (its 101st, or its last if it is shorter).
    public static func flipAByte(of path: String) throws {
        guard let handle = FileHandle(forUpdatingAtPath: path) else { throw LossFailed(what: "cannot open \(path)") }
        let size = try handle.seekToEnd()
        guard size > UInt64(SpillFileHeader.byteCount) else { throw LossFailed(what: "\(path) has no payload") }
        let offset = min(UInt64(SpillFileHeader.byteCount + 100), size - 1)  // a byte of the payload
        try handle.seek(toOffset: offset)
        let byte = try handle.read(upToCount: 1)?.first ?? 0
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: Data([byte ^ 0xFF]))
        try handle.close()
    }

    struct LossFailed: Error, CustomStringConvertible {
        var what: String
        var description: String { what }
    }
}
