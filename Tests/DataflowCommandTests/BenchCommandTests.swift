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
        let passing = try String(contentsOfFile: "\(output)/passing.svg", encoding: .utf8)
        #expect(passing.contains("<svg") && passing.hasSuffix("</svg>\n"))
        #expect(passing.contains("256 KiB per value") || passing.contains("256KiB per value"), "one group per size")
        #expect(passing.contains("pass/memory-local") && passing.contains("faster than pass/disk") || passing.contains("slower than pass/disk"))
        #expect(FileManager.default.fileExists(atPath: "\(output)/overheads.svg"))
        try BenchFiguresRenderingTests.render("\(output)/passing.svg")

        let table = report.table()
        #expect(table.contains("pass/memory-local vs pass/disk"))
        #expect(table.contains("256KiB"))
    }

    @Test func taskOverheadReportsSecondsPerTask() async throws {
        // The process executor's workers are the `dataflow` program, built beside this test runner.
        let dataflow = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("dataflow").path
        let command = try BenchCommand.parse([
            "--quick", "--runs", "1", "--worker-executable", dataflow, "--cases", "task/,baseline/taskgroup,baseline/task-chain,baseline/worker-pingpong",
        ])
        var report = try await command.execute(progress: false)
        report.results.sort { $0.benchCase < $1.benchCase }
        #expect(report.results.map(\.benchCase) == [
            "baseline/task-chain", "baseline/taskgroup", "baseline/worker-pingpong", "task/overhead-chain", "task/overhead-chain-processes",
            "task/overhead-fanout",
        ])
        // Seconds per task or hop, not per run (a run of these cases has thousands). The cases
        // between processes get a wider bound: beside the other suites' tests, the workers wait
        // for a core.
        for result in report.results {
            let bound = result.benchCase.hasSuffix("-processes") || result.benchCase == "baseline/worker-pingpong" ? 0.1 : 0.01
            #expect(result.medianSeconds > 0 && result.medianSeconds < bound, "\(result.benchCase): \(result.medianSeconds) s")
        }
    }

    /// `scale/map-gather-10k`: the whole program as a child, seconds per task, and a note with
    /// its peak memory, run-log bytes per task and the inspection commands' times.
    @Test(.enabled(if: ChildProcess.dataflowExecutable() != nil, "needs the built `dataflow` executable beside the tests"))
    func theScaleCaseRunsTheWholeProgramAndNotesItsMemory() async throws {
        let command = try BenchCommand.parse(["--quick", "--runs", "1", "--cases", "scale/map-gather-10k"])
        let report = try await command.execute(progress: false)
        #expect(report.results.map(\.benchCase) == ["scale/map-gather-10k"])
        #expect(report.results.allSatisfy { $0.medianSeconds > 0 && $0.medianSeconds < 0.01 }, "\(report.results)")
        let note = report.notes.first { $0.hasPrefix("scale/map-gather-10k:") } ?? ""
        #expect(note.contains("peak resident memory") && note.contains("B per task") && note.contains("`runs list`"), "\(report.notes)")
        // Not among the default cases (a million tasks take seconds a run).
        #expect(!(try BenchCommand.parse([]).makePlan(scratchDirectory: NSTemporaryDirectory())).cases.contains { $0.name.hasPrefix("scale/") })
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

/// The figures render: `rsvg-convert` (Debian's librsvg2-bin, installed by `make test`) turns
/// each into a PNG, so a broken SVG fails here. Without `rsvg-convert` the check is skipped with
/// a note (under CI it must run).
@Suite struct BenchFiguresRenderingTests {
    static let converter = ["/usr/bin/rsvg-convert", "/usr/local/bin/rsvg-convert"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Renders `svg` to a PNG next to it and checks the PNG.
    static func render(_ svg: String) throws {
        guard let converter else {
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "rsvg-convert is missing under CI (apt-get install librsvg2-bin)")
            print("note: rsvg-convert is not installed (apt-get install librsvg2-bin); \(svg) was not rendered")
            return
        }
        let png = svg + ".png"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: converter)
        process.arguments = ["--format", "png", "--output", png, svg]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "rsvg-convert \(svg): \(message)")
        let bytes = try #require(FileManager.default.contents(atPath: png))
        #expect(bytes.count > 1000 && Array(bytes.prefix(4)) == [0x89, 0x50, 0x4E, 0x47], "not a PNG: \(svg)")
    }

    @Test func bothFiguresRenderWithEveryCaseTheyDraw() throws {
        var results: [BenchResult] = []
        for (bytes, scale) in [(64 << 20, 1.0), (512 << 20, 8.0)] {
            for (name, seconds) in [
                ("pass/disk", 0.30), ("peer/numpy-chain", 0.26), ("pass/memory-local[always]", 0.12), ("pass/memory-processes[always]", 0.14),
                ("pass/memory-local", 0.017), ("pass/memory-processes", 0.016), ("peer/ray-chain", 0.23),
            ] {
                results.append(BenchResult(benchCase: name, bytes: bytes, samples: [seconds * scale], unit: .run))
            }
        }
        for (name, seconds) in [("task/overhead-fanout", 3.4e-6), ("baseline/taskgroup", 1.5e-6), ("task/overhead-chain", 6.7e-6), ("baseline/task-chain", 0.8e-6)] {
            results.append(BenchResult(benchCase: name, bytes: 8, samples: [seconds], unit: .operation))
        }
        let figures = BenchFigures(results: results, title: "2 cores, <test> & \"quotes\"")
        let directory = NSTemporaryDirectory() + "dataflow-figures-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let passing = figures.passing(), overheads = figures.overheads()
        #expect(passing.contains("17.6× faster than pass/disk"), "the speed-up is written on the figure")
        #expect(passing.contains("&lt;test&gt; &amp; &quot;quotes&quot;"))
        for name in BenchFigures.passingCases.map(\.name) { #expect(passing.contains(">\(name)<"), "\(name) is drawn") }
        #expect(overheads.contains("2.3× the floor") && overheads.contains("8.4× the floor"), "\(overheads)")
        for (name, svg) in [("passing", passing), ("overheads", overheads)] {
            try svg.write(toFile: "\(directory)/\(name).svg", atomically: true, encoding: .utf8)
            try Self.render("\(directory)/\(name).svg")
        }
    }
}
