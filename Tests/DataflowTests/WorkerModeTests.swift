import Dataflow
import Foundation
import Materialize
import ObjectStore
import Testing

/// Worker mode: one task of a workflow runs in a separate process of a program that builds the
/// same workflow (Tests/DataflowTestWorker), with its inputs from the store or from files.
@Suite(.serialized) struct WorkerModeTests {
    static var workerURL: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("DataflowTestWorker")
    }

    /// Writes `spec`, runs the worker on it, and returns its exit status and result.
    func runWorker(_ spec: WorkerSpec, in directory: String) async throws -> (status: Int32, result: WorkerResult?) {
        let specPath = "\(directory)/spec-\(spec.taskName).json"
        try JSONEncoder().encode(spec).write(to: URL(fileURLWithPath: specPath))
        let process = Process()
        process.executableURL = Self.workerURL
        process.arguments = [WorkerSpec.flag, specPath]
        // Wait without blocking a Swift-concurrency thread (other tests need them).
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            process.terminationHandler = { _ in continuation.resume() }
            do { try process.run() } catch { continuation.resume() }
        }
        let result = FileManager.default.contents(atPath: spec.resultPath).flatMap { try? JSONDecoder().decode(WorkerResult.self, from: $0) }
        return (process.terminationStatus, result)
    }

    @Test func aWorkerRunsOneTaskWithItsInputsAndOutputInTheStore() async throws {
        try await withWorkdir { directory in
            let store = try SharedObjectStore.create(named: "test-worker-store-\(getpid())", capacityBytes: 16 << 20)
            defer { try? SharedObjectStore.remove(named: store.name) }
            let input = try store.put(Tensor<Float>([1, 2, 3, 4]), id: .random())
            let spec = WorkerSpec(
                runID: "run-w1", taskName: "double", attempt: 1, storeName: store.name,
                inputs: [.object(input.descriptor)], runDirectory: directory, resultPath: "\(directory)/result.json")
            let (status, result) = try await runWorker(spec, in: directory)
            #expect(status == 0)
            let worker = try #require(result)
            #expect(worker.outcome == .succeeded && worker.bytesIn == input.byteCount)
            guard case .object(let descriptor)? = worker.output else {
                Issue.record("expected the output in the store, got \(String(describing: worker.output))")
                return
            }
            // The worker wrote its output in place in the shared store; the parent reads it.
            #expect(descriptor.id == ObjectID(deriving: "run-w1/double/1"))
            #expect(try store.get(descriptor).decode(as: Tensor<Float>.self).scalars == [2, 4, 6, 8])
            let log = try String(contentsOfFile: "\(directory)/logs/double.1.log", encoding: .utf8)
            #expect(log.contains("doubling 4 scalars"))
            // The worker has exited: its process slot and references are reclaimed.
            try store.reclaimDeadProcesses()
            #expect(try store.attachedProcessIDs() == [getpid()])
            try store.verifyIntegrity()
        }
    }

    @Test func aWorkerWithoutTheStoreReadsAndWritesFiles() async throws {
        try await withWorkdir { directory in
            // Inputs as spill files, as on a node that shares only a filesystem with the run.
            let scratch = try SharedObjectStore.create(named: "test-worker-files-\(getpid())", capacityBytes: 4 << 20)
            defer { try? SharedObjectStore.remove(named: scratch.name) }
            try SpillFile.write(try scratch.put(40, id: .random()), to: "\(directory)/a.dfspill")
            let spec = WorkerSpec(
                runID: "run-w2", taskName: "add", attempt: 1, storeName: nil,
                inputs: [.file("\(directory)/a.dfspill"), .file("\(directory)/a.dfspill")],
                runDirectory: directory, resultPath: "\(directory)/result.json")
            let (status, result) = try await runWorker(spec, in: directory)
            #expect(status == 0)
            guard case .file(let path)? = result?.output else {
                Issue.record("expected a file output, got \(String(describing: result))")
                return
            }
            #expect(path == "\(directory)/exchange/add.1.out.dfspill")
            let restored = try SpillFile.restore(from: path, into: scratch)
            #expect(try restored.decode(as: Int.self) == 82)
        }
    }

    @Test func aFailingTaskOrABadSpecIsReported() async throws {
        try await withWorkdir { directory in
            let failing = WorkerSpec(
                runID: "run-w3", taskName: "fail", attempt: 2, storeName: nil, inputs: [],
                runDirectory: directory, resultPath: "\(directory)/fail.json")
            let (status, result) = try await runWorker(failing, in: directory)
            #expect(status == 1 && result?.outcome == .failed && result?.message == "the task is broken")
            #expect(try String(contentsOfFile: "\(directory)/logs/fail.2.log", encoding: .utf8).contains("the task is broken"))

            var unknown = failing
            unknown.taskName = "no-such-task"
            unknown.resultPath = "\(directory)/unknown.json"
            let (unknownStatus, unknownResult) = try await runWorker(unknown, in: directory)
            #expect(unknownStatus == 1 && unknownResult?.outcome == .error)
            #expect(unknownResult?.message?.contains("no-such-task") == true)

            var wrongInputs = failing
            wrongInputs.taskName = "double"
            wrongInputs.resultPath = "\(directory)/wrong.json"
            #expect(try await runWorker(wrongInputs, in: directory).result?.message?.contains("takes 1 inputs") == true)
        }
    }
}
