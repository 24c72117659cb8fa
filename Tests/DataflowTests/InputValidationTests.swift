import Dataflow
import Foundation
import Materialize
import ObjectStore
import Testing

/// User-given strings that become paths cannot leave the work directory, and user mistakes are
/// typed errors before anything runs — never a trap.
@Suite struct InputValidationTests {
    /// A fresh parent directory holding the work directory `<parent>/work`, removed afterwards.
    func withParent(_ body: (_ parent: String, _ workdir: String) async throws -> Void) async throws {
        try await withWorkdir { parent in
            let workdir = "\(parent)/work"
            try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
            try await body(parent, workdir)
        }
    }

    /// Every file below `directory`, relative to it.
    func files(below directory: String) -> [String] {
        (FileManager.default.enumerator(atPath: directory)?.allObjects as? [String]) ?? []
    }

    @Test(arguments: ["../../escaped", "..", ".", "a/b", "", ".hidden", "tab\there", String(repeating: "x", count: 191)])
    func aRunIDThatIsNoPlainNameIsRefusedBeforeAnythingIsWritten(runID: String) async throws {
        try await withParent { parent, workdir in
            let workflow = Workflow("escape")
            workflow.task("t") { 1 }
            let error = await expectDataflowError(.invalidOption) {
                try await workflow.run(RunOptions(workdir: workdir, runID: runID))
            }
            #expect(error?.message.contains("invalid run id") == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("\t") == false, "control characters are escaped")
            #expect(files(below: parent) == ["work"], "something was written: \(files(below: parent))")
        }
    }

    @Test func anEmptyWorkDirectoryIsRefused() async throws {
        let workflow = Workflow("no-workdir")
        workflow.task("t") { 1 }
        let error = await expectDataflowError(.invalidOption) { try await workflow.run(RunOptions(workdir: "")) }
        #expect(error?.message.contains("work directory") == true)
    }

    /// Task and workflow names with path characters stay file names inside the run directory:
    /// logs, attempt directories of shell tasks, and kept values.
    @Test func taskAndWorkflowNamesWithPathCharactersStayInsideTheRunDirectory() async throws {
        try await withParent { parent, workdir in
            let workflow = Workflow("../../wf/..", policy: .always)
            let up = workflow.task("../up") { () -> String in
                TaskContext.current!.logger.info("a log line")
                return "up"
            }
            let slash = workflow.task("a/b", up) { (x: String) in x + "/b" }
            let dots = workflow.task("..", slash) { (x: String) in x + ".." }
            let shell = workflow.shell(
                "../shell/..", "set -e; cat \"$DATAFLOW_INPUT____IN\" > \"$DATAFLOW_OUTPUT\"; echo to-the-log", inputs: ("../in", dots),
                output: String.self)
            workflow.task(".", shell) { (x: String) in x.count }
            let run = try await workflow.run(RunOptions(workdir: workdir, storeCapacityBytes: 16 << 20, results: [".", "../shell/.."]))
            let shellOutput = try run.result(named: "../shell/..", as: String.self)
            #expect(try run.result(named: ".", as: Int.self) == "up/b..".count, "\(shellOutput)")
            #expect(files(below: parent).allSatisfy { $0 == "work" || $0.hasPrefix("work/") }, "\(files(below: parent))")
            let runRelative = String(run.directory.dropFirst(workdir.count + 1))
            #expect(runRelative.hasPrefix("runs/") && !runRelative.dropFirst(5).contains("/") && !runRelative.contains(".."))
            for file in files(below: workdir) {
                #expect(file.hasPrefix("\(runRelative)") || file.hasPrefix("spill") || file == "runs", "\(file) is outside the run directory")
            }
            let written = files(below: run.directory)
            #expect(written.contains { $0.hasPrefix("logs/") && $0.hasSuffix(".1.log") }, "\(written)")
            #expect(written.filter { $0.hasPrefix("values/") }.count == 5, "\(written)")
        }
    }

    @Test func anEmptyTaskNameIsRefused() async throws {
        let workflow = Workflow("unnamed")
        workflow.task("") { 1 }
        let error = await expectDataflowError(.invalidOption) { try await workflow.run(RunOptions(workdir: NSTemporaryDirectory())) }
        #expect(error?.message.contains("empty name") == true)
    }

    @Test(arguments: [
        Resources(cpu: -1), Resources(memoryBytes: -1), Resources(gpu: -0.5), Resources(custom: ["license": -1]),
        Resources(cpu: .nan),
    ])
    func negativeResourcesAreRefusedNamingTheTask(resources: Resources) async throws {
        let workflow = Workflow("negative")
        workflow.task("greedy", options: TaskOptions(resources: resources)) { 1 }
        let error = await expectDataflowError(.invalidOption) { try workflow.validate(capacity: Resources(cpu: 4)) }
        #expect(error?.task == "greedy" && error?.message.contains("zero or more") == true, "\(error?.message ?? "")")
    }

    @Test(arguments: [RetryPolicy(backoffSeconds: -1), RetryPolicy(maximumBackoffSeconds: -2), RetryPolicy(backoffSeconds: .nan)])
    func aNegativeRetryBackoffIsRefused(retries: RetryPolicy) async throws {
        let workflow = Workflow("backoff")
        workflow.task("t", options: TaskOptions(retries: retries)) { 1 }
        let error = await expectDataflowError(.invalidOption) { try workflow.validate(capacity: Resources()) }
        #expect(error?.task == "t")
    }

    /// `addDependency` with a task of another workflow is a validation error naming it, like an
    /// input from another workflow — not a trap that kills the program.
    @Test func anOrderingEdgeOnAnotherWorkflowsTaskIsAValidationError() async throws {
        let mine = Workflow("mine")
        let own = mine.task("own") { 1 }
        let other = Workflow("other")
        let theirs = other.task("theirs") { 2 }
        mine.addDependency(theirs, after: own)
        let error = await expectDataflowError(.foreignInput) { try mine.validate(capacity: Resources()) }
        #expect(error?.message.contains("theirs") == true && error?.message.contains("mine") == true, "\(error?.message ?? "")")
        // The mirror case (own task after another workflow's) was already one.
        let again = Workflow("again")
        let first = again.task("first") { 1 }
        again.addDependency(first, after: theirs)
        await expectDataflowError(.foreignInput) { try again.validate(capacity: Resources()) }
    }
}
