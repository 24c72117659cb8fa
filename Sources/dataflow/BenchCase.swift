import Foundation
import Materialize

/// One benchmark case: a name (`pass/disk`), and how to take its samples at one size.
///
/// `measure` returns one sample per repetition, in seconds. What a sample means is the case's
/// `unit`: a whole run (`.run`), or one operation of many timed together (`.operation`, e.g. one
/// `get`, one task, one hop of a chain).
protocol BenchCase: Sendable {
    /// The case's name as it appears in every output, e.g. `pass/memory-local[always]`.
    var name: String { get }
    var unit: BenchUnit { get }
    /// The sizes it is measured at: `--sizes`, or a fixed value size for cases that do not
    /// depend on it (task overhead passes 8-byte integers).
    func sizes(_ settings: BenchSettings) -> [Int]
    /// `settings.runs` samples at `bytes`, in seconds (per run or per operation).
    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double]
}

extension BenchCase {
    func sizes(_ settings: BenchSettings) -> [Int] { settings.sizes }
}

/// What one sample of a case measures.
enum BenchUnit: String, Codable, Sendable {
    /// One whole run of the case (e.g. a 3-stage chain, one copy of the value).
    case run = "per run"
    /// One operation among many timed together (a get, a task, a hop).
    case operation = "per op"
}

/// The options every case sees.
struct BenchSettings: Sendable {
    var sizes: [Int]
    var stages: Int
    var runs: Int
    var quick: Bool
    var policies: [MaterializationPolicy]
    /// Scratch space for files (removed at the end).
    var scratchDirectory: String
    /// Trivial tasks of `task/overhead-fanout` and hops of `task/overhead-chain`.
    var fanoutTasks: Int
    var chainTasks: Int
    /// Gets timed together per sample in the get cases.
    var getsPerSample: Int
    /// The `dataflow` executable that `store/get-cross-process` starts as its child.
    var childExecutable: String?
}

/// The median, 90th percentile and slowest sample of one case at one size (the slowest, so
/// that a single outlier among few runs cannot hide behind the p90).
struct BenchResult: Codable, Sendable, Equatable {
    var benchCase: String
    var bytes: Int
    var medianSeconds: Double
    var p90Seconds: Double
    var maxSeconds: Double
    var runs: Int
    var unit: BenchUnit

    enum CodingKeys: String, CodingKey {
        case benchCase = "case", bytes, medianSeconds = "median_seconds", p90Seconds = "p90_seconds", maxSeconds = "max_seconds", runs
        case unit
    }

    init(benchCase: String, bytes: Int, samples: [Double], unit: BenchUnit) {
        self.benchCase = benchCase
        self.bytes = bytes
        self.medianSeconds = Statistics.median(samples)
        self.p90Seconds = Statistics.percentile(samples, 0.9)
        self.maxSeconds = samples.max() ?? .nan
        self.runs = samples.count
        self.unit = unit
    }

    /// The JSON object of one result: exactly `case, bytes, median_seconds, p90_seconds, max_seconds, runs`.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(benchCase, forKey: .benchCase)
        try container.encode(bytes, forKey: .bytes)
        try container.encode(medianSeconds, forKey: .medianSeconds)
        try container.encode(p90Seconds, forKey: .p90Seconds)
        try container.encode(maxSeconds, forKey: .maxSeconds)
        try container.encode(runs, forKey: .runs)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        benchCase = try container.decode(String.self, forKey: .benchCase)
        bytes = try container.decode(Int.self, forKey: .bytes)
        medianSeconds = try container.decode(Double.self, forKey: .medianSeconds)
        p90Seconds = try container.decode(Double.self, forKey: .p90Seconds)
        maxSeconds = try container.decodeIfPresent(Double.self, forKey: .maxSeconds) ?? p90Seconds
        runs = try container.decode(Int.self, forKey: .runs)
        unit = try container.decodeIfPresent(BenchUnit.self, forKey: .unit) ?? .run
    }
}

/// Median and percentiles of samples.
enum Statistics {
    /// The middle sample (mean of the two middle ones for an even count).
    static func median(_ samples: [Double]) -> Double {
        guard !samples.isEmpty else { return .nan }
        let sorted = samples.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// The nearest-rank percentile: the smallest sample with at least `fraction` of them at or below it.
    static func percentile(_ samples: [Double], _ fraction: Double) -> Double {
        guard !samples.isEmpty else { return .nan }
        let sorted = samples.sorted()
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}

/// Monotonic timing.
enum Stopwatch {
    /// Seconds `body` took.
    static func time(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        return (ContinuousClock.now - start).seconds
    }

    /// Seconds `body` took (async).
    static func time(_ body: () async throws -> Void) async rethrows -> Double {
        let start = ContinuousClock.now
        try await body()
        return (ContinuousClock.now - start).seconds
    }

    /// Repetitions of a fast operation that make one sample last about 20 ms or more (1 ... 1000).
    static func repetitions(forBytes bytes: Int, bytesPerSecond: Double = 5e9) -> Int {
        let seconds = Double(bytes) / bytesPerSecond
        return max(1, min(1000, Int((0.02 / max(seconds, 1e-9)).rounded(.up))))
    }
}
