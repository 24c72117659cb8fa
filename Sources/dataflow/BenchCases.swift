import Materialize

/// The benchmark cases, in the order they run and print.
enum BenchCases {
    /// Executors whose memory passing is measured. Each runner adds `pass/memory-<name>` (the
    /// chain, once per `--policies` policy) and `pass/memory-<name>-fanout`.
    ///
    /// Extension point: `pass/memory-processes` is a `WorkflowRunner` named "processes" that runs
    /// the workflow on the process executor, appended here once that executor exists.
    static let memoryRunners: [any WorkflowRunner] = [LocalRunner(), ProcessesRunner()]

    /// Every case for these settings.
    static func all(_ settings: BenchSettings) -> [any BenchCase] {
        var cases: [any BenchCase] = [MemcpyBaseline(), ParallelMemcpyBaseline(), FileWriteFsyncReadBaseline(), LZ4FrameBaseline(), StageWorkBaseline()]
        cases.append(DiskChain())
        for runner in memoryRunners {
            for policy in settings.policies { cases.append(MemoryChain(runner: runner, policy: policy)) }
        }
        cases.append(DiskFanout())
        for runner in memoryRunners { cases.append(MemoryFanout(runner: runner)) }
        cases += [
            StorePutCopy(), StoreGetSameProcess(), StoreGetCrossProcess(),
            TaskGroupBaseline(), TaskOverheadFanout(), TaskChainBaseline(), TaskOverheadChain(),
            WorkerPingPongBaseline(), TaskOverheadChainProcesses(),
            SpillWrite(), SpillRestore(),
        ]
        return cases + SlurmCases.all() + RayCases.all() + ResumeCases.all() + ScaleMapGather.taskCounts.map { ScaleMapGather(tasks: $0) }
    }

    /// Cases measured with trivial tasks (8-byte values) whatever `--sizes` says: task overhead
    /// and its floors. They print no size or throughput.
    static func measuresTaskOverhead(_ name: String) -> Bool {
        name.hasPrefix("task/") || name.hasPrefix("slurm/") || name.hasPrefix("ray/") || name.hasPrefix("scale/") || name == "baseline/taskgroup" || name == "baseline/task-chain"
            || name == "baseline/worker-pingpong"
    }

    /// The cases whose names match one of `patterns`: an exact name, a prefix ending in `/`
    /// (`pass/`), or a prefix ending in `*` (`pass/memory*`). Without patterns, every case but
    /// the `slurm/` and `ray/` ones (they need a cluster: `--cases slurm/`, `--cases ray/`) and
    /// the `resume/` ones (whole demo runs: `--cases resume/`).
    static func select(_ cases: [any BenchCase], matching patterns: [String]) -> [any BenchCase] {
        guard !patterns.isEmpty else {
            return cases.filter { !$0.name.hasPrefix("slurm/") && !$0.name.hasPrefix("ray/") && !$0.name.hasPrefix("resume/") && !$0.name.hasPrefix("scale/") }
        }
        return cases.filter { benchCase in patterns.contains { matches(benchCase.name, $0) } }
    }

    static func matches(_ name: String, _ pattern: String) -> Bool {
        if pattern.hasSuffix("*") { return name.hasPrefix(String(pattern.dropLast())) }
        if pattern.hasSuffix("/") { return name.hasPrefix(pattern) }
        return name == pattern
    }

    /// Pairs of (disk case, memory case) whose ratio the table prints.
    static func comparisons() -> [(disk: String, memory: String)] {
        var pairs: [(String, String)] = []
        for runner in memoryRunners {
            pairs.append(("pass/disk", "pass/memory-\(runner.name)"))
            pairs.append(("pass/disk", "pass/memory-\(runner.name)[always]"))
            pairs.append(("pass/disk-fanout", "pass/memory-\(runner.name)-fanout"))
        }
        return pairs
    }
}
