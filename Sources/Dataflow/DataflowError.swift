import Materialize
import ObjectStore

/// The one error type of the Dataflow module. Every error names the task (and run) at fault.
///
/// - Note: A value type; thread-safe.
public struct DataflowError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure. A struct over a private enum, so that codes can be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: String, Hashable, Sendable {
            case duplicateTaskName, foreignInput, cycle, resourcesExceedExecutor, invalidOption
            case taskFailed, runCancelled, unknownTask, notARequestedResult, runDirectory, store, executor
            case unknownExecutor, policyConflict
        }
        private let wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }
        public var description: String { wrapped.rawValue }

        /// Two tasks of one workflow have the same name.
        public static let duplicateTaskName = Code(.duplicateTaskName)
        /// A task takes an input from another workflow.
        public static let foreignInput = Code(.foreignInput)
        /// The tasks' dependencies form a cycle (`message` lists it).
        public static let cycle = Code(.cycle)
        /// A task declares more of a resource than the executor has.
        public static let resourcesExceedExecutor = Code(.resourcesExceedExecutor)
        /// A run or task option is out of range.
        public static let invalidOption = Code(.invalidOption)
        /// An executor could not do its part (e.g. a worker process could not be started).
        public static let executor = Code(.executor)
        /// A task names an executor the run does not declare.
        public static let unknownExecutor = Code(.unknownExecutor)
        /// A value's policy cannot hold on an edge of the plan (e.g. `never` across executors
        /// that do not share the run's store).
        public static let policyConflict = Code(.policyConflict)
        /// One or more tasks failed for good (`failures` lists every one).
        public static let taskFailed = Code(.taskFailed)
        /// The run was cancelled.
        public static let runCancelled = Code(.runCancelled)
        /// A name or reference that is no task of this workflow or run.
        public static let unknownTask = Code(.unknownTask)
        /// A result was asked of a task that did not succeed or was not kept.
        public static let notARequestedResult = Code(.notARequestedResult)
        /// The run directory could not be written.
        public static let runDirectory = Code(.runDirectory)
        /// The object store or materialization failed (`underlying` has its error).
        public static let store = Code(.store)
    }

    /// One task that failed for good, and why.
    public struct TaskFailure: Sendable, CustomStringConvertible {
        public var task: String
        public var attempts: Int
        public var outcome: AttemptOutcome
        public var message: String
        public var description: String { "task '\(task)' \(outcome) after \(attempts) attempt(s): \(message)" }
    }

    public var code: Code
    public var message: String
    /// The task at fault, when there is one.
    public var task: String?
    /// For `.taskFailed`: every task that failed for good.
    public var failures: [TaskFailure] = []
    /// The error underneath (a store or materialization error), if any.
    public var underlying: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, task: String? = nil) {
        self.code = code
        self.message = message
        self.task = task
    }

    public var description: String { "DataflowError.\(code): \(message)" }
}

/// `text` in single quotes for a message, with control characters, quotes and backslashes
/// escaped (`\n`, `\u{1B}`), so that a name cannot forge or garble the lines it appears in.
func _quoted(_ text: String) -> String { DataflowError.quote(text) }

extension DataflowError {
    /// `text` in single quotes for a message, with control characters, quotes and backslashes
    /// escaped (`\n`, `\u{1B}`), so that a name cannot forge or garble the lines it appears in.
    public static func quote(_ text: String) -> String {
        var out = "'"
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "'": out += "\\'"
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value):
                out += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "'"
    }
}
