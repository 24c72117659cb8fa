import Foundation
import Materialize
import ObjectStore

/// The newest lineage of each task of a workflow, read from the run logs of earlier runs in the
/// work directory (newest run first; within a run, the last event of a task).
struct _LineageHistory {
    struct Entry {
        var lineage: TaskLineage
        var runID: String
    }

    var entries: [String: Entry] = [:]

    /// How many earlier runs are read at most.
    static let runLimit = 200

    /// Reads the runs of workflow `workflow` in `<workdir>/runs/`, except `runID`, until every
    /// name of `taskNames` has an entry.
    static func load(workdir: String, workflow: String, excluding runID: String, taskNames: Set<String>) -> _LineageHistory {
        var history = _LineageHistory()
        let runsDirectory = "\(workdir)/runs"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: runsDirectory) else { return history }
        var runs: [(path: String, started: Date, runID: String)] = []
        for name in names where name != runID {
            let path = "\(runsDirectory)/\(name)/run.jsonl"
            guard let first = firstLine(of: path), let event = try? decoder.decode(RunLogEvent.self, from: Data(first.utf8)),
                event.kind == .runStarted, event.workflow == workflow
            else { continue }
            runs.append((path, event.time, event.runID))
        }
        runs.sort { $0.started > $1.started }
        for run in runs.prefix(runLimit) {
            guard let text = try? String(contentsOfFile: run.path, encoding: .utf8) else { continue }
            var found: [String: Entry] = [:]
            for line in text.split(separator: "\n") where line.contains("\"lineage\"") {
                guard let event = try? decoder.decode(RunLogEvent.self, from: Data(line.utf8)), let task = event.task,
                    let lineage = event.lineage, event.kind == .reused || (event.kind == .attempt && event.outcome == .succeeded)
                else { continue }
                found[task] = Entry(lineage: lineage, runID: event.runID.isEmpty ? run.runID : event.runID)  // lines leave the run id out
            }
            for (task, entry) in found where history.entries[task] == nil { history.entries[task] = entry }
            if taskNames.allSatisfy({ history.entries[$0] != nil }) { break }
        }
        return history
    }

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return decoder
    }()

    private static func firstLine(of path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: 64 << 10), let text = String(data: data, encoding: .utf8) else { return nil }
        return text.split(separator: "\n", maxSplits: 1).first.map(String.init)
    }
}

/// What a resumed run does with one task, and why (`Workflow.resumePlan`, `--dry-run --resume`).
///
/// - Note: A value type; thread-safe.
public struct ResumeDecision: Sendable, Equatable, CustomStringConvertible {
    public enum Action: String, Sendable {
        /// The task runs.
        case run
        /// Its kept result is current: restored from `keptFile` if something reads it.
        case reuse
        /// Its result is current but not kept, and nothing that runs reads it.
        case skip
    }

    public var task: String
    public var action: Action
    /// Why, in words (for `run`: what changed).
    public var reason: String
    /// The kept file a reused result comes from.
    public var keptFile: String?
    /// The run that made the reused result.
    public var fromRun: String?

    public var description: String { "\(task): \(action.rawValue) (\(reason))" }
}

/// Decides, for a resumed run, which tasks run, which kept results are reused and which tasks
/// nothing needs. See `TaskLineage` for what "current" means.
struct _ResumePlanner {
    let nodes: [_TaskNode]
    let definitions: [_TaskDefinition]
    let history: _LineageHistory
    let isRequested: [Bool]
    /// Tasks asked to run whatever their lineage says (`RunOptions.rerun`).
    var forced: Set<String> = []

    /// The decisions, by task index; `damaged` are tasks whose kept file failed to restore, with why.
    func decide(damaged: [Int: String] = [:]) -> (decisions: [ResumeDecision], tokens: [UInt64?]) {
        let count = nodes.count
        let order = topologicalOrder()
        var unchanged = [Bool](repeating: false, count: count)
        var tokens = [UInt64?](repeating: nil, count: count)
        var reasons = [String](repeating: "", count: count)
        var reusable = [Bool](repeating: false, count: count)
        for index in order {
            let node = nodes[index]
            let definition = definitions[index]
            if forced.contains(node.name) {
                reasons[index] = "asked to run again (RunOptions.rerun, --rerun)"
                continue
            }
            guard let entry = history.entries[node.name] else {
                reasons[index] = "no earlier run made it"
                continue
            }
            let recorded = entry.lineage
            if (recorded.version ?? "") != definition.version {
                reasons[index] = "version changed (\(_quoted(recorded.version ?? "")) → \(_quoted(definition.version)))"
                continue
            }
            if (recorded.files ?? []) != definition.files {
                let changed = definition.files.first { !(recorded.files ?? []).contains($0) } ?? (recorded.files ?? []).first ?? ""
                let path = changed.split(separator: "=", maxSplits: 1).first.map(String.init) ?? changed
                reasons[index] = "file dependency '\(path)' changed"
                continue
            }
            if recorded.parameters != definition.parametersHash {
                reasons[index] = "parameters changed"
                continue
            }
            if recorded.definition != definition.hash {
                reasons[index] = "its command or output type changed"
                continue
            }
            guard recorded.inputs.count == node.inputs.count else {
                reasons[index] = "its inputs changed"
                continue
            }
            var inputReason: String?
            for (position, input) in node.inputs.enumerated() {
                if !unchanged[input] {
                    inputReason = "input '\(nodes[input].name)' runs again"
                    break
                }
                if recorded.inputs[position] != tokens[input] {
                    inputReason = "input '\(nodes[input].name)' changed"
                    break
                }
            }
            if let inputReason {
                reasons[index] = inputReason
                continue
            }
            unchanged[index] = true
            tokens[index] = recorded.token
            if let why = damaged[index] {
                reasons[index] = "its kept file is damaged (\(why))"
            } else if let kept = recorded.keptFile {
                if FileManager.default.fileExists(atPath: kept) {
                    reusable[index] = true
                    reasons[index] = "current"
                } else {
                    reasons[index] = "its kept file '\(kept)' is gone"
                }
            } else {
                reasons[index] = "current, but its policy (\(node.options.policy?.rawValue ?? "the workflow's")) kept no file of it (`final` keeps leaves, `always` every value)"
            }
        }
        var decisions = [ResumeDecision?](repeating: nil, count: count)
        var dependents = [[Int]](repeating: [], count: count)
        for (index, node) in nodes.enumerated() { for input in node.inputs { dependents[input].append(index) } }
        var hasDependents = [Bool](repeating: false, count: count)
        for node in nodes { for dependency in node.dependencies { hasDependents[dependency] = true } }
        for index in order.reversed() {
            let entry = history.entries[nodes[index].name]
            if reusable[index] {
                decisions[index] = ResumeDecision(
                    task: nodes[index].name, action: .reuse, reason: "current", keptFile: entry?.lineage.keptFile,
                    fromRun: entry?.lineage.fromRun ?? entry?.runID)
            } else if unchanged[index] && !isRequested[index] && hasDependents[index]
                && dependents[index].allSatisfy({ decisions[$0]?.action != .run })
            {
                decisions[index] = ResumeDecision(
                    task: nodes[index].name, action: .skip, reason: "current, and nothing that runs reads it",
                    fromRun: entry?.lineage.fromRun ?? entry?.runID)
            } else {
                decisions[index] = ResumeDecision(task: nodes[index].name, action: .run, reason: reasons[index])
            }
        }
        return (decisions.map { $0! }, tokens)
    }

    /// Task indices, every task after those it depends on (data and ordering).
    func topologicalOrder() -> [Int] {
        var waiting = nodes.map { $0.dependencies.count }
        var dependents = [[Int]](repeating: [], count: nodes.count)
        for (index, node) in nodes.enumerated() { for dependency in node.dependencies { dependents[dependency].append(index) } }
        var order = nodes.indices.filter { waiting[$0] == 0 }
        var position = 0
        while position < order.count {
            for dependent in dependents[order[position]] {
                waiting[dependent] -= 1
                if waiting[dependent] == 0 { order.append(dependent) }
            }
            position += 1
        }
        return order
    }
}

/// A task a resumed run does not run: its decision, its lineage (as the earlier run recorded
/// it, with the run it came from), the token its consumers compare, and its restored value when
/// something reads it.
struct _ResumedTask: @unchecked Sendable {  // the handle is handed from `run` to the scheduler once
    var decision: ResumeDecision
    var lineage: TaskLineage
    var token: UInt64
    var handle: ObjectHandle?
}

extension Workflow {
    /// What a run with `RunOptions.resume` would do with each task, and why, from the run logs
    /// of earlier runs of this workflow in `options.workdir` (what `--dry-run --resume` prints).
    /// Kept files are checked for existence and a readable header here; a run also verifies
    /// their checksums as it restores them, and runs a task whose file fails.
    /// - Throws: `.unknownTask` for a requested result that is no task.
    public func resumePlan(_ options: RunOptions = RunOptions()) throws(DataflowError) -> [ResumeDecision] {
        let planner = resumePlanner(
            runID: options.runID ?? "", workdir: options.workdir, rerun: try checkedRerun(options.rerun),
            definitions: nodes.map(_TaskDefinition.init), isRequested: try requestedResults(options.results))
        var damaged: [Int: String] = [:]
        for (index, node) in nodes.enumerated() {
            guard let kept = planner.history.entries[node.name]?.lineage.keptFile, FileManager.default.fileExists(atPath: kept) else { continue }
            do { _ = try SpillFile.readHeader(at: kept) } catch { damaged[index] = error.message }
        }
        return planner.decide(damaged: damaged).decisions
    }

    /// `names`, each checked to be a task.
    /// - Throws: `.unknownTask` naming the first that is not.
    func checkedRerun(_ names: Set<String>) throws(DataflowError) -> Set<String> {
        for name in names.sorted() where index(of: name) == nil {
            throw DataflowError(.unknownTask, "rerun: \(_quoted(name)) is no task of workflow '\(self.name)'", task: name)
        }
        return names
    }

    /// The resume planner of a run: the lineage of earlier runs of this workflow in `workdir`
    /// (but `runID`), read once per run.
    func resumePlanner(runID: String, workdir: String, rerun: Set<String>, definitions: [_TaskDefinition], isRequested: [Bool]) -> _ResumePlanner {
        let history = _LineageHistory.load(workdir: workdir, workflow: name, excluding: runID, taskNames: Set(nodes.map(\.name)))
        var planner = _ResumePlanner(nodes: nodes, definitions: definitions, history: history, isRequested: isRequested)
        planner.forced = rerun
        return planner
    }

    /// For a resumed run that would run no task: the bytes of the values it restores (its
    /// requested results), each kept file verified in full here; nil when some task runs (or a
    /// kept file fails, which makes its task run).
    func bytesToRestoreIfNothingRuns(_ planner: _ResumePlanner) -> Int? {
        let decisions = planner.decide().decisions
        guard !decisions.contains(where: { $0.action == .run }) else { return nil }
        var bytes = 0
        for (index, decision) in decisions.enumerated() where planner.isRequested[index] {
            guard let kept = decision.keptFile, let value = try? SpillFile.read(at: kept) else { return nil }
            bytes += value.header.rawByteCount + 4096
        }
        return bytes
    }

    /// The tasks a resumed run does not run, by index (those it runs are not there), with the
    /// values something reads restored from their kept files into `store`. A kept file that
    /// fails to restore (its checksum, its header) makes its task run, and the plan is made again.
    func resumedTasks(_ planner: _ResumePlanner, runID: String, store: SharedObjectStore) -> [Int: _ResumedTask] {
        let history = planner.history, isRequested = planner.isRequested
        var damaged: [Int: String] = [:]
        while true {
            let (decisions, tokens) = planner.decide(damaged: damaged)
            var resumed: [Int: _ResumedTask] = [:]
            var readByARunningTask = isRequested
            for (index, node) in nodes.enumerated() where decisions[index].action == .run {
                for input in node.inputs { readByARunningTask[input] = true }
            }
            var failed = false
            for index in nodes.indices where decisions[index].action != .run {
                guard let entry = history.entries[nodes[index].name], let token = tokens[index] else { continue }
                var lineage = entry.lineage
                lineage.fromRun = decisions[index].fromRun
                var task = _ResumedTask(decision: decisions[index], lineage: lineage, token: token, handle: nil)
                if decisions[index].action == .reuse && readByARunningTask[index], let kept = decisions[index].keptFile {
                    do {
                        task.handle = try SpillFile.restore(from: kept, into: store, as: Workflow.outputID(runID: runID, task: nodes[index].name, attempt: 0))
                    } catch {
                        damaged[index] = error.message
                        failed = true
                        break
                    }
                }
                resumed[index] = task
            }
            if !failed { return resumed }
            // Drop what was restored, and plan again without the damaged file.
            for task in resumed.values { if let id = task.handle?.id { try? store.delete(id) } }
        }
    }
}
