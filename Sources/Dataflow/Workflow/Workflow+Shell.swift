import Foundation
import Materialize
import ObjectStore
import Synchronization

/// A value a shell task can produce from the bytes its command wrote to `$DATAFLOW_OUTPUT`.
public protocol ShellOutput: StoreValue {
    /// The value from the output file's bytes; throw if they are not one.
    static func fromShellOutput(_ bytes: [UInt8]) throws -> Self
}

extension Array: ShellOutput where Element == UInt8 {
    public static func fromShellOutput(_ bytes: [UInt8]) throws -> [UInt8] { bytes }
}

extension String: ShellOutput {
    public static func fromShellOutput(_ bytes: [UInt8]) throws -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ShellCommandFailed(message: "its output file is not valid UTF-8 text")
        }
        return text
    }
}

/// A shell task's command failed: a non-zero exit status, a signal, or no output file.
public struct ShellCommandFailed: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension Workflow {
    /// Adds a task that runs `command` with `/bin/bash -c`.
    ///
    /// Each input is materialized as a plain file (its value's bytes: UTF-8 for strings, the
    /// bytes for `[UInt8]`, see `RawValueFile`) whose path is in the environment variable
    /// `DATAFLOW_INPUT_<NAME>` (the name upper-cased, other characters as `_`). The command
    /// writes its result to the file named by `DATAFLOW_OUTPUT`; those bytes become the task's
    /// output. It runs in its own directory (`<run>/shell/<task>.<attempt>/`), its standard
    /// output and error go to the attempt's log file, and a non-zero exit status fails the
    /// attempt. It runs in a process group of its own; on timeout or cancellation the whole
    /// group is sent SIGTERM, then SIGKILL after 2 seconds.
    ///
    ///     let sorted = workflow.shell("sort", "sort \"$DATAFLOW_INPUT_LINES\" > \"$DATAFLOW_OUTPUT\"",
    ///                                 inputs: ("lines", lines), output: String.self)
    @discardableResult
    public func shell<each Input: StoreValue, Output: ShellOutput>(
        _ name: String, _ command: String, inputs: repeat (String, TaskRef<each Input>),
        output: Output.Type = [UInt8].self, options: TaskOptions = TaskOptions()
    ) -> TaskRef<Output> {
        var indices: [Int] = []
        var names: [String] = []
        var foreign: [String] = []
        for (inputName, input) in repeat each inputs {
            indices.append(input.index)
            names.append(inputName)
            if input.workflowID != id { foreign.append(input.name) }
        }
        let variableNames = names.map { "DATAFLOW_INPUT_" + String($0.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }) }
        let run: _TaskNode.Run = { _, context in
            let bytes = try await _ShellRunner.run(command: command, inputs: Array(zip(variableNames, context.inputFiles)), context: context)
            return _TaskOutput(try Output.fromShellOutput(bytes))
        }
        return appendNode(_TaskNode(
            name: name, inputs: indices, foreignInputs: foreign, options: options, outputTypeTag: Output.typeTag, isShell: true,
            command: command + "\n" + variableNames.joined(separator: ","), run: run))
    }
}

/// Runs shell commands for shell tasks, as `ChildProcess`es (never `Foundation.Process`, whose
/// children inherit the blocked signals of the thread that starts them on Linux).
enum _ShellRunner {
    static func run(command: String, inputs: [(variable: String, path: String)], context: TaskContext) async throws -> [UInt8] {
        let directory = context.attemptDirectory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let outputPath = "\(directory)/output"
        try? FileManager.default.removeItem(atPath: outputPath)
        var environment = ProcessInfo.processInfo.environment
        for (variable, path) in inputs { environment[variable] = path }
        environment["DATAFLOW_OUTPUT"] = outputPath
        environment["DATAFLOW_TASK"] = context.taskName
        environment["DATAFLOW_RUN_ID"] = context.runID
        environment["DATAFLOW_ATTEMPT"] = String(context.attempt)
        // A session of its own: on timeout or cancellation its whole process group is
        // signalled, children of bash included.
        let child = try ChildProcess.spawn(
            executable: "/bin/bash", arguments: ["-c", command], environment: environment, workingDirectory: directory,
            outputFile: context.logPath)
        // The timeout is enforced on a thread of its own: the Swift-concurrency pool that runs
        // `_withTimeout`, and Dispatch's pool, can be busy (blocking task bodies, a loaded
        // machine), and the command must still stop on time.
        let timedOut = Atomic<Bool>(false)
        if let timeout = context.timeoutSeconds {
            let watchdog = Thread {
                let deadline = Date().addingTimeInterval(timeout)
                while child.exitIfEnded == nil, case let left = deadline.timeIntervalSinceNow, left > 0 {
                    Thread.sleep(forTimeInterval: min(0.02, left))  // a thread of its own: no pool is blocked
                }
                guard child.exitIfEnded == nil else { return }
                timedOut.store(true, ordering: .relaxed)
                child.signal(SIGTERM)
                let killAt = Date().addingTimeInterval(2)
                while child.exitIfEnded == nil && Date() < killAt { Thread.sleep(forTimeInterval: 0.02) }
                child.signal(SIGKILL)  // anything of its group that lingers
            }
            watchdog.name = "dataflow-shell-timeout"
            watchdog.start()
        }
        let exit = await withTaskCancellationHandler {
            await child.exit()
        } onCancel: {
            terminate(child)
        }
        if timedOut.load(ordering: .relaxed) { throw _TimedOut() }
        try Task.checkCancellation()
        switch exit {
        case .signalled(let signal):
            throw ShellCommandFailed(message: "command was killed by signal \(signal) (\(_signalName(signal))) (see \(context.logPath))")
        case .exited(let status) where status != 0:
            throw ShellCommandFailed(message: "command exited with status \(status) (see \(context.logPath))")
        case .exited:
            break
        }
        guard let data = FileManager.default.contents(atPath: outputPath) else {
            throw ShellCommandFailed(message: "command succeeded but wrote no output file ($DATAFLOW_OUTPUT = \(outputPath))")
        }
        return [UInt8](data)
    }

    /// SIGTERM to the command's process group, then SIGKILL after 2 seconds if anything lingers.
    private static func terminate(_ child: ChildProcess) {
        child.signal(SIGTERM)
        DispatchQueue.global().asyncAfter(deadline: .now() + 2) { child.signal(SIGKILL) }
    }
}
