import ArgumentParser
import Foundation
import Testing
@testable import DataflowCommand

/// Option validation and the output of a tiny benchmark run, in process.
@Suite struct BenchCommandTests {
    /// The message ArgumentParser would print for parsing `arguments`, or nil if they parse.
    func parseError(_ arguments: [String]) -> String? {
        do {
            _ = try BenchCommand.parse(arguments)
            return nil
        } catch {
            return BenchCommand.message(for: error)
        }
    }

    @Test func badOptionsNameTheOptionAndValue() throws {
        #expect(parseError(["--sizes", "1MiB,huge"])?.contains("'huge'") == true)
        #expect(parseError(["--sizes", "1MiB,huge"])?.contains("--sizes") == true)
        #expect(parseError(["--sizes", "1KiB"])?.contains("--sizes") == true)
        #expect(parseError(["--stages", "0"])?.contains("--stages") == true)
        #expect(parseError(["--runs", "0"])?.contains("--runs") == true)
        #expect(parseError(["--policies", "auto,sometimes"])?.contains("'sometimes'") == true)
        #expect(parseError(["--cases", "pass/nothing"])?.contains("'pass/nothing'") == true)
        #expect(parseError(["--format", "yaml"])?.contains("yaml") == true)
        #expect(parseError(["--sizes", "512MiB", "--stages", "3"]) == nil)
    }

    @Test func defaultCasesHaveTheIssuesNames() throws {
        let plan = try BenchCommand.parse([]).makePlan(scratchDirectory: "/tmp")
        let names = plan.cases.map(\.name)
        for expected in [
            "baseline/memcpy", "baseline/file-write-fsync-read", "baseline/lz4-frame", "pass/disk", "pass/memory-local",
            "pass/memory-local[always]", "pass/disk-fanout", "pass/memory-local-fanout", "pass/memory-processes",
            "pass/memory-processes-fanout", "store/put-copy",
            "store/get-same-process", "store/get-cross-process", "task/overhead-fanout", "task/overhead-chain",
            "baseline/taskgroup", "baseline/task-chain",
            "spill/write", "spill/restore",
        ] {
            #expect(names.contains(expected), "missing case \(expected)")
        }
        #expect(plan.settings.sizes == [1 << 20, 16 << 20, 256 << 20, 1 << 30])
        #expect(plan.settings.stages == 3)
        let quick = try BenchCommand.parse(["--quick"]).makePlan(scratchDirectory: "/tmp")
        #expect(quick.settings.sizes.max()! <= 16 << 20)
        #expect(quick.settings.fanoutTasks < plan.settings.fanoutTasks)
    }

    @Test func tinyRunPrintsOneJSONDocumentAndWritesCSVAndSVG() async throws {
        // The process executor's workers are the `dataflow` program, built beside this test runner.
        let dataflow = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("dataflow").path
        let output = NSTemporaryDirectory() + "dataflow-bench-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let command = try BenchCommand.parse([
            "--sizes", "64KiB,256KiB", "--runs", "2", "--stages", "2", "--format", "json", "--output", output, "--worker-executable", dataflow,
            "--cases", "baseline/memcpy,baseline/lz4-frame,pass/,store/put-copy,store/get-same-process,spill/",
        ])
        let report = try await command.execute(progress: false)
        let json = try report.json()
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(Set(document.keys) == ["machine", "results", "notes"])
        let machine = try #require(document["machine"] as? [String: Any])
        for key in ["cpu_count", "memory_bytes", "os", "swift_version", "hostname", "date"] {
            #expect(machine[key] != nil, "machine lacks \(key)")
        }
        let results = try #require(document["results"] as? [[String: Any]])
        // 2 baselines, 8 pass cases (disk, disk-fanout, and per executor chain, [always], fanout),
        // 2 store cases, 2 spill cases; 2 sizes each.
        #expect(results.count == 14 * 2)
        for result in results {
            #expect(Set(result.keys) == ["case", "bytes", "median_seconds", "p90_seconds", "max_seconds", "runs"])
            #expect(result["runs"] as? Int == 2)
            let median = try #require(result["median_seconds"] as? Double), p90 = try #require(result["p90_seconds"] as? Double)
            #expect(median > 0 && p90 >= median)
            let slowest = try #require(result["max_seconds"] as? Double)
            #expect(slowest >= p90)
        }
        let names = Set(results.compactMap { $0["case"] as? String })
        #expect(names.isSuperset(of: [
            "pass/disk", "pass/memory-local", "pass/memory-local[always]", "pass/disk-fanout", "pass/memory-local-fanout",
            "pass/memory-processes", "pass/memory-processes-fanout",
        ]))

        let csv = try String(contentsOfFile: "\(output)/results.csv", encoding: .utf8)
        #expect(csv.hasPrefix("case,bytes,median_seconds,p90_seconds,max_seconds,runs\n"))
        #expect(csv.split(separator: "\n").count == 1 + results.count)
        let svg = try String(contentsOfFile: "\(output)/results.svg", encoding: .utf8)
        #expect(svg.contains("<svg") && svg.hasSuffix("</svg>\n"))
        #expect(svg.contains("pass/memory-local") && svg.contains("value size") && svg.contains("<polyline"))

        let table = report.table()
        #expect(table.contains("pass/memory-local vs pass/disk"))
        #expect(table.contains("256KiB"))
    }

    @Test func taskOverheadReportsSecondsPerTask() async throws {
        let command = try BenchCommand.parse(["--quick", "--runs", "1", "--cases", "task/,baseline/taskgroup,baseline/task-chain"])
        var report = try await command.execute(progress: false)
        report.results.sort { $0.benchCase < $1.benchCase }
        #expect(report.results.map(\.benchCase) == ["baseline/task-chain", "baseline/taskgroup", "task/overhead-chain", "task/overhead-fanout"])
        for result in report.results { #expect(result.medianSeconds > 0 && result.medianSeconds < 0.01) }
    }

    @Test(.enabled(if: ChildProcess.dataflowExecutable() != nil, "needs the built `dataflow` executable beside the tests"))
    func crossProcessGetRunsAChild() async throws {
        let command = try BenchCommand.parse(["--sizes", "64KiB", "--runs", "2", "--cases", "store/get-cross-process"])
        let report = try await command.execute(progress: false)
        let result = try #require(report.results.first)
        #expect(result.benchCase == "store/get-cross-process")
        #expect(result.runs == 2 && result.medianSeconds > 0 && result.medianSeconds < 0.001)
    }

    /// `--peers numpy` runs the chain through NumPy files in the same run (python/bench_peers.py):
    /// its results sit beside ours, with the ratio in the table. Without NumPy it is a note
    /// (under CI, where `.ci/run` installs Ray and with it NumPy, it must run).
    @Test func aPeerRunsInTheSameBenchRun() async throws {
        let command = try BenchCommand.parse(["--sizes", "64KiB", "--runs", "2", "--stages", "2", "--cases", "pass/disk", "--peers", "numpy"])
        let report = try await command.execute(progress: false)
        let peer = report.results.first { $0.benchCase == "peer/numpy-chain" }
        if let peer {
            #expect(peer.bytes == 64 << 10 && peer.runs == 2 && peer.medianSeconds > 0)
            #expect(report.table().contains("pass/disk ÷ peer/numpy-chain at 64 KiB"))
        } else {
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "no NumPy peer under CI: \(report.notes)")
            #expect(report.notes.contains { $0.contains("peer numpy: skipped") }, "\(report.notes)")
        }
        #expect(throws: (any Error).self) { try BenchCommand.parse(["--peers", "dask"]) }
    }
}
