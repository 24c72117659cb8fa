import Dataflow
import Foundation

/// The re-run cases (`dataflow bench --cases resume/`; only when asked for): the demo pipeline
/// (`dataflow demo`, every value kept: `always`) at each size, run once from scratch, then again
/// with `RunOptions.resume` unchanged, and again after only its last task ("evaluate") got a new
/// version. Each sample is one whole run in a fresh work directory; the re-runs' first run is
/// not timed. The last case checks that only "evaluate" ran (the bench fails otherwise).
enum ResumeCases {
    static func all() -> [any BenchCase] { [ResumeDemo(mode: .first), ResumeDemo(mode: .unchanged), ResumeDemo(mode: .lastVersionBumped)] }
}

struct ResumeDemo: BenchCase {
    enum Mode: String, Sendable {
        case first = "resume/demo-first"
        case unchanged = "resume/demo-unchanged"
        case lastVersionBumped = "resume/demo-last-version"
    }

    let mode: Mode
    var name: String { mode.rawValue }
    let unit = BenchUnit.run

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        var samples: [Double] = []
        for sample in 0..<settings.runs {
            let workdir = "\(settings.scratchDirectory)/resume-\(mode.rawValue.split(separator: "/").last!)-\(sample)"
            defer { try? FileManager.default.removeItem(atPath: workdir) }
            let demo = DemoPipeline.Settings(rows: DemoPipeline.Settings.rows(forBytes: bytes, features: 64), features: 64, epochs: 1, seed: 42)
            func options(_ runID: String, resume: Bool) -> RunOptions {
                var options = RunOptions(workdir: workdir, runID: runID, storeCapacityBytes: 3 * bytes + (64 << 20))
                options.progress = .never
                options.resume = resume
                return options
            }
            func workflow(evaluateVersion: String = "") throws -> Workflow {
                let (workflow, _) = DemoPipeline.makeWorkflow(demo)
                workflow.defaultPolicy = .always
                if !evaluateVersion.isEmpty { try workflow.overrideOptions(ofTask: "evaluate", version: evaluateVersion) }
                return workflow
            }
            if mode == .first {
                samples.append(try await Stopwatch.time { _ = try await workflow().run(options("first", resume: false)) })
                continue
            }
            _ = try await workflow().run(options("first", resume: false))
            let version = mode == .lastVersionBumped ? "2" : ""
            let seconds = try await Stopwatch.time { _ = try await workflow(evaluateVersion: version).run(options("again", resume: true)) }
            let events = try RunLog.read(at: "\(workdir)/runs/again/run.jsonl")
            let ran = events.filter { $0.kind == .attempt }.compactMap(\.task)
            let expected = mode == .lastVersionBumped ? ["evaluate"] : []
            guard ran == expected else {
                throw CommandError.benchFailed(benchCase: name, bytes: bytes, reason: "the re-run ran \(ran) instead of \(expected)")
            }
            samples.append(seconds)
        }
        return samples
    }
}
