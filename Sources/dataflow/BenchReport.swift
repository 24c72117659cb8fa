import DataflowCLI
import Foundation

/// A finished benchmark: the machine, the settings and every result; rendered as a table,
/// one JSON document, or CSV (and two SVG figures, `BenchFigures`).
struct BenchReport: Sendable {
    var machine: MachineInfo
    var settings: BenchSettings
    var results: [BenchResult]
    /// Notes for people: peers that were skipped, and why.
    var notes: [String] = []

    /// The JSON document: `{"machine": {...}, "results": [{"case", "bytes", "median_seconds", "p90_seconds", "runs"}, ...]}`.
    func json() throws -> String {
        struct Document: Encodable {
            var machine: MachineInfo
            var results: [BenchResult]
            var notes: [String]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(Document(machine: machine, results: results, notes: notes)), as: UTF8.self)
    }

    /// `case,bytes,median_seconds,p90_seconds,max_seconds,runs`, one line per result.
    func csv() -> String {
        var out = "case,bytes,median_seconds,p90_seconds,max_seconds,runs\n"
        for result in results {
            let name = result.benchCase.contains(",") ? "\"\(result.benchCase)\"" : result.benchCase
            out += "\(name),\(result.bytes),\(result.medianSeconds),\(result.p90Seconds),\(result.maxSeconds),\(result.runs)\n"
        }
        return out
    }

    /// The plain-text table, then the memory-against-disk ratios.
    func table() -> String {
        var out = "dataflow bench: \(machine.cpuCount) cores (\(machine.cpuModel)), \(ByteSize.human(machine.memoryBytes)) memory, \(machine.os), Swift \(machine.swiftVersion), \(machine.date)\n"
        out += "stages \(settings.stages), \(settings.runs) runs per case and size\(settings.quick ? " (--quick)" : ""); times are medians, p90s and the slowest sample, per run of the case or per operation\n\n"
        var table = TextTable(["case", "size", "median", "p90", "slowest", "per", "value bytes/s", "runs"], rightAligned: [1, 2, 3, 4, 6, 7])
        for result in results {
            let fixedSize = BenchCases.measuresTaskOverhead(result.benchCase)
            table.append([
                result.benchCase, fixedSize ? "-" : ByteSize(result.bytes).description, Format.seconds(result.medianSeconds),
                Format.seconds(result.p90Seconds), Format.seconds(result.maxSeconds), Self.perLabel(result),
                fixedSize || result.benchCase.hasPrefix("store/get") || result.benchCase.hasPrefix("pass/") ? "-" : Format.throughput(bytes: result.bytes, seconds: result.medianSeconds),
                "\(result.runs)",
            ])
        }
        out += table.render()
        let ratios = ratioLines()
        if !ratios.isEmpty {
            out += "\nmemory passing against disk passing, end to end (disk median ÷ memory median; the issue's target is ≥ 10× for a 3-stage chain of 512MiB):\n" + ratios.joined()
        }
        let peers = peerLines()
        if !peers.isEmpty {
            out += "\nours beside the peers, in the same run (ours ÷ theirs; below 1 is faster):\n" + peers.joined()
        }
        if !notes.isEmpty {
            out += (peers.isEmpty ? "\nnotes:\n" : "") + notes.map { "  note: \($0)\n" }.joined()
        }
        let resume = resumeLines()
        if !resume.isEmpty {
            out += "\nre-runs with --resume against the first run, in the same bench run:\n" + resume.joined()
        }
        let slurm = slurmLines()
        if !slurm.isEmpty {
            out += "\nthe SLURM and Ray executors against raw submissions of the same count, observed to completion in the same run:\n" + slurm.joined()
        }
        let overheads = passingCostLines()
        if !overheads.isEmpty {
            out += "\nthe cost of passing alone (median less baseline/stage-work, the same stages' work without files or store):\n" + overheads.joined()
        }
        return out
    }

    private static func perLabel(_ result: BenchResult) -> String {
        switch result.benchCase {
        case "task/overhead-fanout", "baseline/taskgroup", "slurm/fanout-jobs", "slurm/fanout-array": return "task"
        case "slurm/raw-jobs", "slurm/raw-array", "ray/raw-jobs": return "job"
        case "ray/fanout", "ray/fanout[unaware]": return "task"
        case "peer/ray-put": return "put"
        case "task/overhead-chain", "baseline/task-chain", "task/overhead-chain-processes": return "hop"
        case "baseline/worker-pingpong": return "round trip"
        default: return result.unit == .operation ? (result.benchCase.hasPrefix("scale/") ? "task" : result.benchCase.hasPrefix("store/get") ? "get" : result.benchCase.hasPrefix("store/put") ? "put" : "copy") : "run"
        }
    }

    /// Our cases against the peers' at each size: put by copy against `ray.put`, the chain
    /// through the store against Ray's object store, and through files against NumPy's.
    func peerLines() -> [String] {
        var lines: [String] = []
        let pairs = [("store/put-copy", "peer/ray-put", " (goal ≤ 1)"), ("pass/memory-local", "peer/ray-chain", ""),
                     ("pass/memory-processes", "peer/ray-chain", ""), ("pass/disk", "peer/numpy-chain", "")]
        for (ours, theirs, goal) in pairs {
            for peer in results where peer.benchCase == theirs {
                guard let own = results.first(where: { $0.benchCase == ours && $0.bytes == peer.bytes }) else { continue }
                lines.append("  \(ours) ÷ \(theirs) at \(ByteSize.human(peer.bytes)): \(String(format: "%.2f", own.medianSeconds / peer.medianSeconds)) (\(Format.seconds(own.medianSeconds)) vs \(Format.seconds(peer.medianSeconds)))\(goal)\n")
            }
        }
        return lines
    }

    /// The resumed demo runs against the first run, at each size.
    func resumeLines() -> [String] {
        var lines: [String] = []
        for first in results where first.benchCase == "resume/demo-first" {
            for name in ["resume/demo-unchanged", "resume/demo-last-version"] {
                guard let rerun = results.first(where: { $0.benchCase == name && $0.bytes == first.bytes }) else { continue }
                let goal = name == "resume/demo-unchanged" ? " (goal < 5%)" : " (only 'evaluate' ran: checked)"
                lines.append("  \(name) ÷ resume/demo-first at \(ByteSize.human(first.bytes)): \(String(format: "%.1f", 100 * rerun.medianSeconds / first.medianSeconds))%\(goal)\n")
            }
        }
        return lines
    }

    /// Our fan-out against raw SLURM submissions: the array's ratio, the jobs' overhead per task.
    func slurmLines() -> [String] {
        func median(_ name: String) -> Double? { results.first { $0.benchCase == name }?.medianSeconds }
        var lines: [String] = []
        if let ours = median("slurm/fanout-array"), let raw = median("slurm/raw-array") {
            lines.append("  slurm/fanout-array ÷ slurm/raw-array: \(String(format: "%.2f", ours / raw))× (goal ≤ 1.2×)\n")
        }
        if let ours = median("slurm/fanout-jobs"), let raw = median("slurm/raw-jobs") {
            lines.append("  slurm/fanout-jobs − slurm/raw-jobs: \(String(format: "%+.1f", (ours - raw) * 1000)) ms per task (goal < 50 ms)\n")
        }
        for name in ["ray/fanout", "ray/fanout[unaware]"] {
            guard let ours = median(name), let raw = median("ray/raw-jobs") else { continue }
            lines.append("  \(name) ÷ ray/raw-jobs: \(String(format: "%.2f", ours / raw))× (goal ≤ 1.2×); \(name) − ray/raw-jobs: \(String(format: "%+.1f", (ours - raw) * 1000)) ms per task (goal < 100 ms)\n")
        }
        return lines
    }

    /// One line per (disk, memory) pair and size that both measured.
    func ratioLines() -> [String] {
        var lines: [String] = []
        for (disk, memory) in BenchCases.comparisons() {
            for result in results where result.benchCase == memory {
                guard let baseline = results.first(where: { $0.benchCase == disk && $0.bytes == result.bytes }), result.medianSeconds > 0 else { continue }
                let ratio = baseline.medianSeconds / result.medianSeconds
                let label = result.bytes == baseline.bytes ? ByteSize(result.bytes).description : ""
                let verdict = ratio >= 1 ? String(format: "%.1f× faster", ratio) : String(format: "%.1f× slower", 1 / ratio)
                lines.append("  \(label) \(memory) vs \(disk): \(verdict) (\(Format.seconds(result.medianSeconds)) vs \(Format.seconds(baseline.medianSeconds)), \(settings.stages) stages)\n")
            }
        }
        return lines
    }

    /// For the chains: each pass case's median less the stage work's, and their ratio.
    func passingCostLines() -> [String] {
        var lines: [String] = []
        for result in results where result.benchCase == "baseline/stage-work" {
            let work = result.medianSeconds
            guard let disk = results.first(where: { $0.benchCase == "pass/disk" && $0.bytes == result.bytes }) else { continue }
            for memory in results where memory.bytes == result.bytes && memory.benchCase.hasPrefix("pass/memory-") && !memory.benchCase.contains("-fanout") {
                let diskCost = disk.medianSeconds - work, memoryCost = memory.medianSeconds - work
                let memoryText = memoryCost > 0 ? Format.seconds(memoryCost) : "within noise of the stage work (\(Format.seconds(memoryCost)))"
                var line = "  \(ByteSize(result.bytes)) \(memory.benchCase): \(memoryText) against pass/disk \(Format.seconds(diskCost))"
                if memoryCost > 0 && diskCost > 0 {
                    let ratio = diskCost / memoryCost
                    line += ratio >= 1 ? String(format: " (%.1f× less)", ratio) : String(format: " (%.1f× more)", 1 / ratio)
                }
                lines.append(line + "; stage work \(Format.seconds(work))\n")
            }
        }
        return lines
    }

    /// The ratio of `disk` to `memory` medians at `bytes`, if both were measured.
    func ratio(disk: String, memory: String, bytes: Int) -> Double? {
        guard let d = results.first(where: { $0.benchCase == disk && $0.bytes == bytes }),
              let m = results.first(where: { $0.benchCase == memory && $0.bytes == bytes }), m.medianSeconds > 0 else { return nil }
        return d.medianSeconds / m.medianSeconds
    }
}
