import DataflowCLI
import ArgumentParser
import Foundation
import Materialize

/// `dataflow bench`: disk passing against memory passing, with baselines, store, task-overhead
/// and spill cases. Prints a table (with the memory-vs-disk ratios), or one JSON document;
/// `--output DIR` also writes results.csv and the figures passing.svg and overheads.svg.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Compare passing values through files with passing them through the store.",
        discussion: """
            Cases: baseline/memcpy, baseline/file-write-fsync-read, baseline/lz4-frame; pass/disk \
            (a chain of --stages stages, each writing its value to a file with write+fsync and the \
            next reading it) against pass/memory-local (the same chain as a workflow through the \
            store, once per --policies policy: pass/memory-local[always], ...); pass/disk-fanout \
            and pass/memory-local-fanout (source, --stages branches, gather); store/put-copy, \
            store/get-same-process, store/get-cross-process (a child process); \
            task/overhead-fanout and task/overhead-chain (seconds per task or hop); spill/write \
            and spill/restore. Per-get, per-put and per-task cases report seconds per operation. \
            `dataflow bench --sizes 512MiB --stages 3` measures the issue's target: memory \
            passing at least 10× faster than disk passing.
            """)

    @Option(parsing: .unconditional, help: ArgumentHelp("Value sizes, comma-separated (e.g. 1MiB,16MiB,256MiB,1GiB).", valueName: "sizes"))
    var sizes: String?

    @Option(parsing: .unconditional, help: "Stages of the chains, and branches of the fan-out graphs.")
    var stages: Int = 3

    @Option(parsing: .unconditional, help: "Repetitions per case and size (default 5; 3 with --quick).")
    var runs: Int?

    @Flag(help: "Small sizes (64KiB,1MiB,16MiB), 3 runs, fewer tasks: finishes in well under two minutes.")
    var quick = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Materialization policies of the memory chain, comma-separated (auto, always, final, never).", valueName: "policies"))
    var policies: String = "auto,always"

    @Option(parsing: .unconditional, help: ArgumentHelp("Only these cases: names, `prefix/` or `prefix*`, comma-separated (default: all).", valueName: "cases"))
    var cases: String?

    @Option(parsing: .unconditional, help: "Output format: text (a table) or json (one document on standard output).")
    var format: OutputFormat = .text

    @Option(parsing: .unconditional, help: ArgumentHelp("Also write results.csv and the figures passing.svg (files against the store, by size) and overheads.svg (task costs against bare Swift) to this directory.", valueName: "dir"))
    var output: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Scratch directory for the disk cases' files (default: a new directory under the system's temporary directory).", valueName: "dir"))
    var scratch: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Also run the chain (and ray.put) through peers in the same run: ray, numpy (python/bench_peers.py; a peer that is missing is skipped with a note).", valueName: "peers"))
    var peers: String?

    @Option(parsing: .unconditional, help: .hidden)
    var workerExecutable: String?

    /// Parsed and checked options.
    struct Plan {
        var settings: BenchSettings
        var cases: [any BenchCase]
        var peers: [String]
    }

    func validate() throws {
        _ = try makePlan(scratchDirectory: "/tmp")
    }

    /// Checks every option and builds the settings and the case list.
    /// - Throws: `CommandError` naming the bad option and value.
    func makePlan(scratchDirectory: String) throws(CommandError) -> Plan {
        let parsedSizes = try sizes.map { text throws(CommandError) in try ByteSize.parseList(text, option: "--sizes") }
            ?? (quick ? ["64KiB", "1MiB", "16MiB"] : ["1MiB", "16MiB", "256MiB", "1GiB"]).map { ByteSize(try! ByteSize(parsing: $0).bytes) }
        for size in parsedSizes where size.bytes < 4096 || size.bytes > (64 << 30) {
            throw .invalidSize(value: size.description, option: "--sizes", reason: "sizes must be 4KiB ... 64GiB")
        }
        guard (1...64).contains(stages) else { throw .invalidOption(option: "--stages", value: "\(stages)", reason: "must be 1 ... 64") }
        let repetitions = runs ?? (quick ? 3 : 5)
        guard (1...1000).contains(repetitions) else { throw .invalidOption(option: "--runs", value: "\(repetitions)", reason: "must be 1 ... 1000") }
        var parsedPolicies: [MaterializationPolicy] = []
        for name in policies.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let policy = MaterializationPolicy(rawValue: name) else {
                throw .invalidOption(option: "--policies", value: name, reason: "not a policy (auto, always, final, never)")
            }
            if !parsedPolicies.contains(policy) { parsedPolicies.append(policy) }
        }
        let settings = BenchSettings(
            sizes: Array(Set(parsedSizes.map(\.bytes))).sorted(), stages: stages, runs: repetitions, quick: quick, policies: parsedPolicies,
            scratchDirectory: scratchDirectory, fanoutTasks: quick ? 10_000 : 100_000, chainTasks: quick ? 1_000 : 10_000,
            getsPerSample: quick ? 2_000 : 20_000, childExecutable: ChildProcess.dataflowExecutable())
        let all = BenchCases.all(settings)
        let patterns = cases.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
        for pattern in patterns where BenchCases.select(all, matching: [pattern]).isEmpty {
            throw .invalidOption(option: "--cases", value: pattern, reason: "matches no case (cases: \(all.map(\.name).joined(separator: ", ")))")
        }
        let peerNames = peers.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
        for peer in peerNames where !BenchPeers.known.contains(peer) {
            throw .invalidOption(option: "--peers", value: peer, reason: "not a peer (\(BenchPeers.known.joined(separator: ", ")))")
        }
        return Plan(settings: settings, cases: BenchCases.select(all, matching: patterns), peers: peerNames)
    }

    func run() async throws {
        let report = try await execute(progress: format == .text)
        switch format {
        case .text: print(report.table(), terminator: "")
        case .json: print(try report.json())
        }
    }

    /// Runs the selected cases and returns the report (writing --output files if asked).
    /// - Parameter progress: print a line per case and size to standard error.
    func execute(progress: Bool) async throws -> BenchReport {
        let scratchDirectory = scratch ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("dataflow-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let plan = try makePlan(scratchDirectory: scratchDirectory)
        if let workerExecutable { ProcessesRunner.useWorkerExecutable(workerExecutable) }
        try createDirectory(scratchDirectory, option: "--scratch")
        defer { if scratch == nil { try? FileManager.default.removeItem(atPath: scratchDirectory) } }
        var results: [BenchResult] = []
        for benchCase in plan.cases {
            for bytes in benchCase.sizes(plan.settings) {
                if progress { FileHandle.standardError.write(Data("bench: \(benchCase.name) \(BenchCases.measuresTaskOverhead(benchCase.name) ? "" : ByteSize(bytes).description)...\n".utf8)) }
                let samples: [Double]
                do { samples = try await benchCase.measure(bytes: bytes, plan.settings) } catch let error as CommandError {
                    throw error
                } catch {
                    throw CommandError.benchFailed(benchCase: benchCase.name, bytes: bytes, reason: "\(error)")
                }
                results.append(BenchResult(benchCase: benchCase.name, bytes: bytes, samples: samples, unit: benchCase.unit))
            }
        }
        var notes: [String] = BenchNotes.take()
        for peer in plan.peers {
            if progress { FileHandle.standardError.write(Data("bench: peer \(peer)...\n".utf8)) }
            let (peerResults, peerNotes) = await BenchPeers.run(peer, settings: plan.settings)
            results += peerResults
            notes += peerNotes
        }
        let report = BenchReport(machine: .current(), settings: plan.settings, results: results, notes: notes)
        if let output {
            try createDirectory(output, option: "--output")
            try write(report.csv(), to: "\(output)/results.csv")
            let title = "\(report.machine.cpuCount) cores, \(report.machine.date), \(plan.settings.stages) stages"
            let figures = BenchFigures(results: results, title: title)
            try write(figures.passing(), to: "\(output)/passing.svg")
            try write(figures.overheads(), to: "\(output)/overheads.svg")
            if progress { FileHandle.standardError.write(Data("bench: wrote \(output)/results.csv, passing.svg and overheads.svg\n".utf8)) }
        }
        return report
    }

    private func createDirectory(_ path: String, option: String) throws(CommandError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw .invalidOption(option: option, value: path, reason: "cannot create the directory: \(error.localizedDescription)")
        }
    }

    private func write(_ text: String, to path: String) throws(CommandError) {
        do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch {
            throw .io(path: path, operation: "writing", reason: error.localizedDescription)
        }
    }
}
