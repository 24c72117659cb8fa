import Dataflow
import DataflowCLI
import Foundation
import ObjectStore
import Testing
@testable import DataflowCommand

/// `runs list`, `runs show` and `store stats` on things a test makes, and on missing ones.
@Suite struct InspectionTests {
    func temporaryDirectory() -> String {
        NSTemporaryDirectory() + "dataflow-command-test-\(UUID().uuidString)"
    }

    /// A program's run with the library's default work directory is what `dataflow runs list`
    /// shows with the command's default: one default (`$DATAFLOW_WORKDIR`, else `./.dataflow`).
    @Test func theLibraryAndTheCommandShareOneDefaultWorkDirectory() async throws {
        let cwd = FileManager.default.currentDirectoryPath
        #expect(RunOptions().workdir == "\(cwd)/.dataflow")
        #expect(WorkdirOptions.resolve(nil, environment: [:]) == RunOptions.defaultWorkdir(environment: [:]))
        let workdir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: workdir) }
        let environment = ["DATAFLOW_WORKDIR": workdir]
        let workflow = Workflow("default-workdir")
        workflow.task("t") { 42 }
        var options = RunOptions(workdir: RunOptions.defaultWorkdir(environment: environment))
        options.progress = .never
        let run = try await workflow.run(options)
        #expect(run.directory.hasPrefix(workdir + "/runs/"))
        let list = try RunsCommand.List.render(workdir: WorkdirOptions.resolve(nil, environment: environment), format: .text)
        #expect(list.contains(run.runID))
    }

    @Test func runsListAndShowATinyWorkflow() async throws {
        let workdir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: workdir) }
        let workflow = Workflow("tiny", policy: .final)
        let numbers = workflow.task("numbers") { () throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: [1024], of: Float.self) { span in
                for index in span.indices { span[index] = Float(index) }
            }
        }
        let total = workflow.task("total", numbers) { (x: Tensor<Float>) in Double(x.reduce(0, +)) }
        var options = RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20)
        options.progress = .never
        let run = try await workflow.run(options)
        #expect(try run.result(total) == 523_776)

        let list = try RunsCommand.List.render(workdir: workdir, format: .text)
        #expect(list.contains(run.runID))
        #expect(list.contains("succeeded"))
        let show = try RunsCommand.Show.render(run: run.runID, workdir: workdir, format: .text)
        for expected in ["numbers", "total", "succeeded", "4.1 KiB", "total.dfspill", "(final)"] {
            #expect(show.contains(expected), "runs show lacks \(expected):\n\(show)")
        }
        // A unique prefix works too; JSON parses and lists both tasks.
        let json = try RunsCommand.Show.render(run: String(run.runID.prefix(run.runID.count - 2)), workdir: workdir, format: .json)
        let summary = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect((summary?["tasks"] as? [[String: Any]])?.count == 2)
    }

    @Test func runsShowNamesAMissingRun() throws {
        let workdir = temporaryDirectory()
        #expect {
            _ = try RunsCommand.Show.render(run: "no-such-run", workdir: workdir, format: .text)
        } throws: { error in
            "\(error)".contains("'no-such-run'") && "\(error)".contains(workdir)
        }
        #expect(try RunsCommand.List.render(workdir: workdir, format: .text).contains("no runs"))
    }

    @Test func storeStatsOnALiveStore() throws {
        let name = "dataflow-command-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let workdir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: workdir) }
        let store = try SharedObjectStore.create(named: name, capacityBytes: 8 << 20)
        defer { try? SharedObjectStore.remove(named: name) }
        let big = try store.makeTensor(ObjectID(deriving: "big"), shape: [256 * 1024], of: Float.self) { span in
            for index in span.indices { span[index] = 1 }
        }
        try store.put("small", id: ObjectID(deriving: "small"))
        // A spill directory for this store instance, with one spill file in it.
        let spill = "\(workdir)/spill/\(name)-\(store.instanceID)"
        try FileManager.default.createDirectory(atPath: spill, withIntermediateDirectories: true)
        try Data(count: 1000).write(to: URL(fileURLWithPath: "\(spill)/x.dfspill"))

        let report = try StoreReport.make(storeNamed: name, workdir: workdir)
        #expect(report.objectCount == 2)
        #expect(report.statistics.sealedInUseCount == 1)  // `big` is held by this test
        #expect(report.statistics.sealedIdleCount == 1)
        #expect(report.largestObjects.first?.id == ObjectID(deriving: "big").description)
        #expect(report.largestObjects.first?.bytes == big.scalarByteCount + 64)
        #expect(report.spilledBytes == 1000 && report.spilledFiles == 1)
        #expect(report.processIDs.contains(getpid()))
        let text = report.text
        for expected in ["store '\(name)'", "high water", "largest free block", "sealed, in use", "largest objects", "spilled: 1 file(s)"] {
            #expect(text.contains(expected), "store stats lacks \(expected):\n\(text)")
        }
        #expect(try JSONOutput.encode(report).contains("\"highWaterBytes\""))
        // The probe for the largest objects allocated nothing.
        #expect(try store.statistics().objectCount == 2)
        withExtendedLifetime(big) {}
    }

    @Test func storeStatsNamesAMissingStore() {
        #expect {
            _ = try StoreReport.make(storeNamed: "nosuch-\(getpid())", workdir: "/tmp")
        } throws: { error in
            "\(error)".contains("'nosuch-\(getpid())'")
        }
    }

    @Test func demoRunsEndToEnd() async throws {
        let workdir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: workdir) }
        let output = try await DemoCommand.execute(
            megabytes: 2, features: 16, epochs: 2, seed: 7, arguments: WorkflowRunArguments.parse(["--workdir", workdir, "--progress", "never"]))
        for expected in ["features", "normalize", "fit", "evaluate", "without a copy", "R²", "values/evaluate.dfspill"] {
            #expect(output.contains(expected), "demo output lacks \(expected):\n\(output)")
        }
    }
}
