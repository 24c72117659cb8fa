/// The message of a run whose tasks failed for good, short whatever their number: how many
/// failed, the first causes — tasks with the same outcome and message together, at most
/// `groupLimit` causes and `namesPerGroup` task names each — and where every failure is (the run
/// log, `dataflow runs show`). `DataflowError.failures` keeps them all.
///
/// - Note: Stateless; thread-safe.
enum _FailureSummary {
    static let groupLimit = 3
    static let namesPerGroup = 3
    /// A cause longer than this is cut (the run log has it whole).
    static let messageCharacters = 400

    static func message(runID: String, failures: [DataflowError.TaskFailure], logPath: String) -> String {
        var groups: [(key: String, failures: [DataflowError.TaskFailure])] = []
        var position: [String: Int] = [:]
        for failure in failures {
            let key = "\(failure.outcome)\u{0}\(failure.message)"
            if let index = position[key] {
                groups[index].failures.append(failure)
            } else {
                position[key] = groups.count
                groups.append((key, [failure]))
            }
        }
        var parts: [String] = []
        for group in groups.prefix(groupLimit) {
            let first = group.failures[0]
            let names = group.failures.prefix(namesPerGroup).map { "'\($0.task)'" }.joined(separator: ", ")
                + (group.failures.count > namesPerGroup ? " and \(group.failures.count - namesPerGroup) more" : "")
            let cause = first.message.count > messageCharacters ? String(first.message.prefix(messageCharacters)) + "…" : first.message
            parts.append(
                group.failures.count == 1
                    ? "task \(names) \(first.outcome) after \(first.attempts) attempt(s): \(cause)"
                    : "tasks \(names) (\(first.outcome)): \(cause)")
        }
        var text = "run '\(runID)': \(failures.count) task(s) failed: " + parts.joined(separator: "; ")
        if groups.count > groupLimit {
            let rest = groups.dropFirst(groupLimit).reduce(0) { $0 + $1.failures.count }
            text += "; and \(rest) more task(s) with \(groups.count - groupLimit) other cause(s)"
        }
        if failures.count > 1 {
            text += " (every failure: `dataflow runs show \(runID)`, or the run log \(logPath))"
        }
        return text
    }
}
