import Dataflow
import DataflowCLI
import ArgumentParser
import Foundation

/// `dataflow runs list|show`: the runs under `<workdir>/runs/`, read from their run logs.
struct RunsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List the runs in the work directory, or show one run's tasks.",
        subcommands: [List.self, Show.self])

    /// `dataflow runs list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List runs under <workdir>/runs/, newest first: id, start time, tasks, outcome.")

        @OptionGroup var workdirOptions: WorkdirOptions
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text

        func run() async throws {
            print(try Self.render(workdir: workdirOptions.resolved, format: format), terminator: "")
        }

        /// What `runs list` prints.
        static func render(workdir: String, format: OutputFormat) throws -> String {
            let runs = RunCatalog(workdir: workdir).summaries()
            if format == .json { return try JSONOutput.encode(runs.map(ListedRun.init)) + "\n" }
            guard !runs.isEmpty else { return "no runs under \(workdir)/runs\n" }
            var table = TextTable(["run", "started", "tasks", "outcome", "took"], rightAligned: [2, 4])
            for run in runs {
                let tasks = run.taskCount.map { count in
                    run.failed.map { $0 > 0 ? "\(count) (\($0) failed)" : "\(count)" } ?? "\(count)"
                } ?? "\(run.tasks.count)"
                table.append([
                    run.runID, run.started.map(Format.date) ?? "-", tasks, run.outcome, run.durationSeconds.map(Format.seconds) ?? "-",
                ])
            }
            return table.render()
        }
    }

    /// `dataflow runs show RUN`.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one run: each task's attempts, outcome, times, bytes in and out, and where its value went and why.")

        @OptionGroup var workdirOptions: WorkdirOptions
        @Argument(help: "The run id (or a unique prefix of it), as `dataflow runs list` prints it.") var run: String
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text
        @Flag(help: "Every task, however many (by default a run of more than \(Show.firstScreenTasks) tasks shows its first \(Show.firstScreenTasks)).")
        var all = false

        /// The tasks the first screen of a large run shows.
        static let firstScreenTasks = 100

        func run() async throws {
            print(try Self.render(run: run, workdir: workdirOptions.resolved, format: format, all: all), terminator: "")
        }

        /// What `runs show` prints: every task of a run of up to `firstScreenTasks` tasks (or
        /// with `all`); otherwise the run's summary and its first tasks, read from the log's
        /// first and last lines and its beginning, so that it answers at once for a run of a
        /// million tasks.
        static func render(run: String, workdir: String, format: OutputFormat, all: Bool = false) throws -> String {
            let directory = try RunCatalog(workdir: workdir).directory(of: run)
            let ends = try RunSummary(endsOf: directory)
            let summary = all || (ends.taskCount ?? 0) <= firstScreenTasks
                ? try RunSummary(directory: directory) : try RunSummary(directory: directory, firstTasks: firstScreenTasks, ends: ends)
            if format == .json { return try JSONOutput.encode(summary) + "\n" }
            var out = "run \(summary.runID): \(summary.outcome)"
            if let succeeded = summary.succeeded { out += " (\(succeeded) succeeded, \(summary.failed ?? 0) failed, \(summary.skipped ?? 0) skipped)" }
            out += "\n"
            if let detail = summary.detail { out += "  \(detail)\n" }
            if let started = summary.started {
                out += "  started \(Format.date(started))"
                if let duration = summary.durationSeconds { out += ", took \(Format.seconds(duration))" }
                out += "\n"
            }
            out += "  directory \(summary.directory)\n\n"
            var table = TextTable(["task", "attempts", "outcome", "start", "end", "took", "in", "out", "value", "why"], rightAligned: [1, 5, 6, 7])
            for task in summary.tasks {
                table.append([
                    task.name, "\(task.attempts)", task.outcome, task.start.map(Format.time) ?? "-", task.end.map(Format.time) ?? "-",
                    task.durationSeconds.map(Format.seconds) ?? "-", ByteSize.human(task.bytesIn), task.bytesOut.map(ByteSize.human) ?? "-",
                    RunSummary.placement(of: task), task.value?.reason ?? task.message ?? "",
                ])
            }
            out += table.render()
            let files = summary.tasks.flatMap { $0.value?.files ?? [] }
            if !files.isEmpty {
                out += "\nfiles:\n" + files.map { "  \($0)\n" }.joined()
            }
            if summary.tasksLeftOut > 0 {
                out += "... and \(summary.tasksLeftOut) more task(s): `dataflow runs show \(summary.runID) --all` lists every task\n"
            }
            let failures = summary.tasks.filter { $0.outcome != "succeeded" && $0.message != nil }
            if !failures.isEmpty {
                out += "\nmessages:\n" + failures.map { "  \($0.name): \($0.message!)\n" }.joined()
            }
            let shown = Set(failures.map(\.name))
            let otherFailures = summary.failures.filter { !shown.contains($0.task) }
            if summary.tasksLeftOut > 0 && !otherFailures.isEmpty {
                out += "\nfailed (from the run's summary):\n" + otherFailures.map { "  \($0.task): \($0.outcome) after \($0.attempts) attempt(s): \($0.message)\n" }.joined()
            }
            return out
        }
    }
}

/// One line of `runs list --format json`.
struct ListedRun: Codable {
    var runID: String
    var started: Date?
    var taskCount: Int?
    var outcome: String
    var durationSeconds: Double?
    init(_ summary: RunSummary) {
        runID = summary.runID
        started = summary.started
        taskCount = summary.taskCount ?? summary.tasks.count
        outcome = summary.outcome
        durationSeconds = summary.durationSeconds
    }
}

/// The run directories under `<workdir>/runs/`.
struct RunCatalog {
    let workdir: String
    var runsDirectory: String { RunDirectory.runsDirectory(workdir: workdir) }

    /// Ids of the directories that hold a run log.
    func runIDs() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: runsDirectory)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: RunDirectory(workdir: workdir, runID: $0).logPath) }.sorted()
    }

    /// Every readable run, newest first (runs whose log does not parse are left out).
    func summaries() -> [RunSummary] {
        runIDs().compactMap { try? RunSummary(endsOf: RunDirectory(workdir: workdir, runID: $0).path) }
            .sorted { ($0.started ?? .distantPast, $0.runID) > ($1.started ?? .distantPast, $1.runID) }
    }

    /// The directory of run `run`: an exact id, else a unique prefix of one.
    /// - Throws: `CommandError.runNotFound` naming the run and the work directory; `.ambiguousRun`.
    func directory(of run: String) throws(CommandError) -> String {
        let ids = runIDs()
        if ids.contains(run) { return "\(runsDirectory)/\(run)" }
        let matches = run.isEmpty ? [] : ids.filter { $0.hasPrefix(run) }
        if matches.count == 1 { return "\(runsDirectory)/\(matches[0])" }
        if matches.count > 1 { throw .ambiguousRun(run: run, matches: matches) }
        throw .runNotFound(run: run, workdir: workdir, known: ids)
    }
}

/// Pretty, key-sorted JSON with ISO 8601 dates.
enum JSONOutput {
    static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
