import Dataflow
import Foundation

/// One `sbatch` call: a single job, or a job array of the ready tasks of one `map`. Builds the
/// batch script (written into the run directory) and the command line; nothing here talks to
/// SLURM.
///
/// The script `exec`s the worker program with the attempt's spec, so SLURM's signals
/// (`--signal=B:USR2@…`, SIGTERM at preemption, time limit and `scancel`) reach the worker
/// itself. An array's script picks its spec and log by `SLURM_ARRAY_TASK_ID` from bash arrays:
/// index i is the i-th attempt of `attempts`.
///
/// - Note: A value type; thread-safe.
struct SlurmSubmission: Sendable {
    /// One attempt in it.
    struct Member: Sendable {
        var taskName: String
        var attempt: Int
        var specPath: String
        var logPath: String
    }

    var members: [Member]
    /// `sbatch` arguments that decide how the jobs run (resources, partition, limits): members
    /// of one array have the same.
    var placement: [String]
    /// The run's job name (one status query by name covers the run).
    var jobName: String
    var runID: String
    var runDirectory: RunDirectory
    var throttle: Int?

    var isArray: Bool { members.count > 1 }

    /// The key a status query reports member `index` under, once SLURM gave the job `jobID`.
    func key(of index: Int, jobID: String) -> String { isArray ? "\(jobID)_\(index)" : jobID }

    /// Where the script goes: `<run>/slurm/<first task>.<attempt>[.array<n>].sh`.
    var scriptPath: String {
        let first = members[0]
        let stem = RunDirectory.fileName(for: "\(first.taskName).\(first.attempt)") + (isArray ? ".array\(members.count)" : "")
        return "\(runDirectory.path)/slurm/\(stem).sh"
    }

    /// Where SLURM's own output of an array task goes (its messages, e.g. `CANCELLED AT`).
    var arrayOutputPattern: String { (scriptPath as NSString).deletingPathExtension + ".%a.out" }

    /// The batch script.
    func script(workerCommand: [String]) -> String {
        let command = workerCommand.map(Self.quote).joined(separator: " ")
        var lines = ["#!/bin/bash", "# swift-dataflow run \(Self.comment(runID)): \(members.count) attempt(s)"]
        if isArray {
            lines.append("specs=(" + members.map { Self.quote($0.specPath) }.joined(separator: " ") + ")")
            lines.append("logs=(" + members.map { Self.quote($0.logPath) }.joined(separator: " ") + ")")
            lines.append("i=${SLURM_ARRAY_TASK_ID:?not an array task}")
            lines.append("exec >>\"${logs[$i]}\" 2>&1")
            lines.append("exec \(command) --dataflow-worker \"${specs[$i]}\"")
        } else {
            lines.append("exec \(command) --dataflow-worker \(Self.quote(members[0].specPath))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `sbatch` arguments, the script path last.
    func arguments(warningSignalSeconds: Int) -> [String] {
        var arguments = ["--parsable", "--job-name=\(jobName)", "--chdir=\(runDirectory.path)", "--export=ALL", "--no-requeue"]
        if warningSignalSeconds > 0 { arguments.append("--signal=B:USR2@\(warningSignalSeconds)") }
        if isArray {
            let last = members.count - 1
            arguments.append("--array=0-\(last)" + (throttle.map { "%\($0)" } ?? ""))
            arguments.append("--output=\(arrayOutputPattern)")
            arguments.append("--open-mode=append")
            let stem = members[0].taskName.split(separator: "[").first.map(String.init) ?? members[0].taskName
            arguments.append("--comment=" + Self.comment("dataflow run=\(runID) map=\(stem) tasks=\(members.count) attempt=1"))
        } else {
            arguments.append("--output=\(members[0].logPath)")
            arguments.append("--open-mode=append")
            arguments.append("--comment=" + Self.comment("dataflow run=\(runID) task=\(members[0].taskName) attempt=\(members[0].attempt)"))
        }
        return arguments + placement + [scriptPath]
    }

    /// The placement arguments of an attempt: resources as SLURM asks for them, then the
    /// executor's settings, overridden by the task's.
    /// - cpu → `--cpus-per-task` (rounded up, at least 1); memory → `--mem` in MiB (rounded up);
    ///   gpu → `--gres=gpu:N` (rounded up: SLURM has no fractional GPUs); each custom amount →
    ///   a GRES of that name (rounded up).
    /// - time: the task's `time` setting, else the executor's, else the task's timeout in whole
    ///   minutes plus one (the worker enforces the timeout; SLURM's limit is the backstop).
    static func placement(
        resources: Resources, timeoutSeconds: Double?, settings: [String: String], options: SlurmExecutor.Options
    ) -> [String] {
        var arguments = ["--nodes=1", "--ntasks=1", "--cpus-per-task=\(max(1, Int(resources.cpu.rounded(.up))))"]
        if resources.memoryBytes > 0 {
            arguments.append("--mem=\((resources.memoryBytes + (1 << 20) - 1) >> 20)M")
        }
        var gres: [String] = []
        if resources.gpu > 0 { gres.append("gpu:\(Int(resources.gpu.rounded(.up)))") }
        for (name, amount) in resources.custom.sorted(by: { $0.key < $1.key }) where amount > 0 {
            gres.append("\(name):\(Int(amount.rounded(.up)))")
        }
        if !gres.isEmpty { arguments.append("--gres=" + gres.joined(separator: ",")) }
        if let partition = settings["partition"] ?? options.partition { arguments.append("--partition=\(partition)") }
        if let account = settings["account"] ?? options.account { arguments.append("--account=\(account)") }
        if let qos = settings["qos"] ?? options.qos { arguments.append("--qos=\(qos)") }
        if let time = settings["time"] ?? options.timeLimit {
            arguments.append("--time=\(time)")
        } else if let timeout = timeoutSeconds {
            arguments.append("--time=\(Int((timeout / 60).rounded(.up)) + 1)")
        }
        arguments += options.sbatchArguments
        if let extra = settings["sbatch_args"] { arguments += extra.split(whereSeparator: \.isWhitespace).map(String.init) }
        return arguments
    }

    /// `text` in single quotes for bash.
    static func quote(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// `text` without characters that would break a `--comment` or a script comment.
    static func comment(_ text: String) -> String {
        String(text.map { $0.isNewline || $0 == "\"" || $0 == "'" ? " " : $0 }.prefix(200))
    }

    /// The job name of every job of run `runID`: `df-<run id>`, so that `squeue --name` and
    /// `sacct --name` find a run's jobs by its id. A run id longer than 200 characters, or with
    /// characters other than `[A-Za-z0-9._-]`, gives `df-`, its file-name-safe first 200
    /// characters, `-` and a hash of the whole id (SLURM itself takes long names: a 233-character
    /// name works with `squeue --name` and `sacct --name` here).
    static func jobName(runID: String) -> String {
        let isSafe = runID.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        if isSafe && !runID.isEmpty && runID.count <= 200 { return "df-\(runID)" }
        let safe = String(runID.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "_" }.prefix(200))
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in runID.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "df-\(safe)-" + String(hash & 0xffff_ffff, radix: 16)
    }
}
