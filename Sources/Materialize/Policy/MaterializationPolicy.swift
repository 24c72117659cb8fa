/// When a value, besides living in the store, also goes to a file. Chosen per value (default
/// `auto`, overridable for a workflow and per task).
///
/// | policy   | in memory                       | written to a file                                   | freed from memory |
/// |----------|---------------------------------|-----------------------------------------------------|-------------------|
/// | `always` | yes, while consumers remain     | write-through after seal, to the run directory      | after the last consumer; the file stays |
/// | `auto`   | yes                             | only when a consumer needs a file, or under pressure (spill, restored on demand) | after the last consumer, spill/exchange file removed too, unless it is a requested result |
/// | `never`  | yes, only there (pinned)        | never; under pressure the producer waits for room, then fails | right after the last consumer, unless it is a requested result |
/// | `final`  | yes                             | only if the value is a leaf of the graph, to the run directory | like `auto` |
public enum MaterializationPolicy: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case always
    case auto
    case never
    case final
    public var description: String { rawValue }
}

/// What the graph knows about one value; the planner supplies these.
///
/// - Note: A value type; thread-safe.
public struct ValueFacts: Sendable, Hashable {
    /// The value has no consumer in the graph (a final result).
    public var isLeaf: Bool
    /// Some consumer reads it from a file (a shell task).
    public var consumerNeedsFile: Bool
    /// Every consumer runs where it can attach to this store (false for a remote executor).
    public var everyConsumerReachesStore: Bool
    /// Consumers that have not finished with it yet.
    public var remainingConsumers: Int
    /// The caller asked for this value as a result of the run.
    public var isRequestedResult: Bool

    public init(isLeaf: Bool = false, consumerNeedsFile: Bool = false, everyConsumerReachesStore: Bool = true, remainingConsumers: Int = 1, isRequestedResult: Bool = false) {
        self.isLeaf = isLeaf
        self.consumerNeedsFile = consumerNeedsFile
        self.everyConsumerReachesStore = everyConsumerReachesStore
        self.remainingConsumers = remainingConsumers
        self.isRequestedResult = isRequestedResult
    }

    /// A consumer must read the value from a file.
    var needsFile: Bool { consumerNeedsFile || !everyConsumerReachesStore }
}

/// What to do with one value, decided from its policy and facts by `MaterializationPlan.make`.
///
/// - Note: A value type; thread-safe.
public struct MaterializationPlan: Sendable, Equatable {
    /// Where a file goes.
    public enum FileDestination: String, Sendable, Equatable, Codable {
        /// `<run directory>/values/`: kept after the run (results, `always`).
        case runDirectory = "run-directory"
        /// `<run directory>/exchange/`: for consumers that read files; removed with the value.
        case exchange
    }

    /// A file to write right after the value is sealed (nil: none now).
    public var fileAfterSeal: FileDestination?
    /// The value may be spilled to the spill directory and freed under memory pressure.
    public var spillableUnderPressure: Bool
    /// The value is pinned in memory; its producer waits for room under pressure, then fails.
    public var pinnedInMemory: Bool
    /// Free the value from memory once its last consumer is done.
    public var freeAfterLastConsumer: Bool
    /// Keep the files written for it (run-directory file, exchange file) after that.
    public var keepFilesAfterLastConsumer: Bool
    /// Why, in words (for the run log).
    public var reason: String

    /// The plan for a value under `policy` with `facts`: the policy table as code.
    /// - Throws: `.policyConflict` for `never` when a consumer needs a file.
    public static func make(policy: MaterializationPolicy, facts: ValueFacts, valueName: @autoclosure () -> String = "value") throws(MaterializeError) -> MaterializationPlan {
        switch policy {
        case .always:
            return MaterializationPlan(
                fileAfterSeal: .runDirectory, spillableUnderPressure: true, pinnedInMemory: false,
                freeAfterLastConsumer: !facts.isRequestedResult, keepFilesAfterLastConsumer: true,
                reason: "always: written through to the run directory after seal; the file stays")
        case .auto:
            return MaterializationPlan(
                fileAfterSeal: facts.needsFile ? .exchange : nil, spillableUnderPressure: true, pinnedInMemory: false,
                freeAfterLastConsumer: !facts.isRequestedResult, keepFilesAfterLastConsumer: facts.isRequestedResult,
                reason: facts.needsFile
                    ? "auto: a consumer needs a file (\(facts.consumerNeedsFile ? "it reads files" : "it cannot reach the store"))"
                    : "auto: in memory only; spilled under pressure")
        case .never:
            guard !facts.needsFile else {
                throw MaterializeError(
                    .policyConflict,
                    "\(valueName()) has policy 'never' but a consumer \(facts.consumerNeedsFile ? "reads it from a file" : "cannot reach the store"); use 'auto'")
            }
            return MaterializationPlan(
                fileAfterSeal: nil, spillableUnderPressure: false, pinnedInMemory: true,
                freeAfterLastConsumer: !facts.isRequestedResult, keepFilesAfterLastConsumer: false,
                reason: facts.isRequestedResult
                    ? "never: memory only, pinned; a requested result, kept in memory while the run's results live"
                    : "never: memory only, pinned; freed right after its last consumer")
        case .final:
            let file: FileDestination? = facts.isLeaf ? .runDirectory : (facts.needsFile ? .exchange : nil)
            return MaterializationPlan(
                fileAfterSeal: file, spillableUnderPressure: true, pinnedInMemory: false,
                freeAfterLastConsumer: !facts.isRequestedResult, keepFilesAfterLastConsumer: facts.isLeaf || facts.isRequestedResult,
                reason: facts.isLeaf ? "final: a leaf of the graph, written to the run directory" : "final: not a leaf; like auto")
        }
    }
}
