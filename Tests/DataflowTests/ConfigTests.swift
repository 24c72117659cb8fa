import Dataflow
import DataflowCLI
import Foundation
import Materialize
import DataflowRay
import DataflowSlurm
import Testing

/// `dataflow.toml`: every table parsed and checked; errors name the file, the key and the line;
/// the environment overrides the file and flags override both.
@Suite struct ConfigTests {
    static let complete = """
        [run]
        workdir = "/tmp/dataflow-config-test"
        policy = "final"
        concurrency = 3
        keep_going = true
        executor = "pool"
        store_capacity = "256MiB"
        memory_wait = "90s"

        [executor.pool]
        type = "processes"
        workers = 2
        prefault_store = false

        [executor.hpc]
        type = "slurm"
        partition = "batch"
        account = "lab"
        qos = "normal"
        time = "1-02:00:00"
        sbatch_args = ["--exclusive", "--constraint=avx2"]

        [executor.gpu]
        type = "ray"
        dashboard_address = "http://127.0.0.1:8265"
        working_dir = "/shared/ray"
        poll_interval_min = "500ms"
        poll_interval_max = "30s"
        max_submit = 200
        autoscaler_aware = true

        [task."train"]
        executor = "gpu"
        resources = { cpu = 4, memory = "8GiB", gpu = 1, custom = { license = 1 } }

        [label.small]
        executor = "pool"
        """

    @Test func aCompleteFileParsesIntoItsSettings() throws {
        let config = try DataflowConfig.parse(Self.complete, path: "dataflow.toml")
        #expect(config.run.workdir == "/tmp/dataflow-config-test" && config.run.policy == .final && config.run.concurrency == 3)
        #expect(config.run.keepGoing == true && config.run.executor == "pool" && config.run.storeCapacityBytes == 256 << 20)
        #expect(config.run.memoryWaitSeconds == 90)
        guard case .processes(let pool)? = config.executors["pool"]?.settings, case .slurm(let slurm)? = config.executors["hpc"]?.settings,
            case .ray(let ray)? = config.executors["gpu"]?.settings
        else {
            Issue.record("executor tables: \(config.executors)")
            return
        }
        #expect(pool.workers == 2 && pool.prefaultStore == false)
        #expect(slurm.partition == "batch" && slurm.account == "lab" && slurm.qos == "normal" && slurm.time == "1-02:00:00")
        #expect(slurm.sbatchArguments == ["--exclusive", "--constraint=avx2"])
        #expect(ray.dashboardAddress == "http://127.0.0.1:8265" && ray.workingDirectory == "/shared/ray" && ray.maxSubmit == 200)
        #expect(ray.pollIntervalMinSeconds == 0.5 && ray.pollIntervalMaxSeconds == 30 && ray.autoscalerAware == true)
        #expect(config.tasks["train"] == .init(executor: "gpu", resources: Resources(cpu: 4, memoryBytes: 8 << 30, gpu: 1, custom: ["license": 1])))
        #expect(config.labels["small"]?.executor == "pool")
    }

    @Test(arguments: [
        ("[run]\nconcurency = 3\n", "run.concurency", 2, "unknown key"),
        ("[run]\nconcurrency = \"three\"\n", "run.concurrency", 2, "expected a whole number, found a string"),
        ("[run]\nconcurrency = 0\n", "run.concurrency", 2, "below the least value"),
        ("[run]\nmemory_wait = \"soon\"\n", "run.memory_wait", 2, "invalid duration 'soon'"),
        ("[run]\nstore_capacity = \"12parsecs\"\n", "run.store_capacity", 2, "invalid size '12parsecs'"),
        ("[run]\npolicy = \"sometimes\"\n", "run.policy", 2, "'sometimes' is no policy"),
        ("[run]\nexecutor = \"nowhere\"\n", "run.executor", 2, "no executor named 'nowhere'"),
        ("\n[executor.x]\ntype = \"kubernetes\"\n", "executor.x.type", 3, "unknown executor type 'kubernetes'"),
        ("[executor.x]\ntype = \"slurm\"\ntime = \"forever\"\n", "executor.x.time", 3, "invalid SLURM time 'forever'"),
        ("[executor.x]\ntype = \"slurm\"\npartiton = \"a\"\n", "executor.x.partiton", 3, "unknown key"),
        ("[executor.x]\ntype = \"ray\"\npoll_interval_min = \"10s\"\npoll_interval_max = \"1s\"\n", "executor.x.poll_interval_max", 4, "below poll_interval_min"),
        ("[executor.x]\ntype = \"processes\"\nworkers = 2.5\n", "executor.x.workers", 3, "expected a whole number"),
        ("[task.\"t\"]\nresources = { cpu = -1 }\n", "task.t.resources.cpu", nil, "cannot be negative"),
        ("[task.\"t\"]\nresources = { memory = \"lots\" }\n", "task.t.resources.memory", nil, "invalid size 'lots'"),
    ] as [(String, String, Int?, String)])
    func aBadValueIsAnErrorNamingTheFileTheKeyAndTheLine(text: String, key: String, line: Int?, message: String) throws {
        do {
            _ = try DataflowConfig.parse(text, path: "/etc/flow/dataflow.toml")
            Issue.record("parsed: \(text)")
        } catch {
            #expect(error.file == "/etc/flow/dataflow.toml" && error.key == key && error.message.contains(message), "\(error)")
            if let line { #expect(error.line == line, "\(error)") }
            #expect(error.description.hasPrefix("/etc/flow/dataflow.toml"))
        }
    }

    @Test func aSyntaxErrorNamesTheLine() throws {
        do {
            _ = try DataflowConfig.parse("[run]\nconcurrency = 2\nworkdir = \n", path: "f.toml")
            Issue.record("parsed")
        } catch {
            #expect(error.line == 3 && error.message.contains("not valid TOML"), "\(error)")
        }
    }

    /// Flags over environment variables over the file.
    @Test func flagsOverrideTheEnvironmentWhichOverridesTheFile() async throws {
        try await withWorkdir { directory in
            let path = "\(directory)/dataflow.toml"
            try "[run]\nconcurrency = 3\nworkdir = \"\(directory)/from-file\"\npolicy = \"final\"\n".write(toFile: path, atomically: true, encoding: .utf8)
            let workflow = Workflow("precedence")
            workflow.task("t") { 1 }
            let fileOnly = try WorkflowRunArguments.parse(["--config", path]).runOptions(for: workflow, environment: [:])
            #expect(fileOnly.concurrency == 3 && fileOnly.workdir == "\(directory)/from-file" && workflow.defaultPolicy == .final)
            let environment = ["DATAFLOW_CONCURRENCY": "5", "DATAFLOW_WORKDIR": "\(directory)/from-env", "DATAFLOW_POLICY": "always"]
            let withEnvironment = try WorkflowRunArguments.parse(["--config", path]).runOptions(for: workflow, environment: environment)
            #expect(withEnvironment.concurrency == 5 && withEnvironment.workdir == "\(directory)/from-env" && workflow.defaultPolicy == .always)
            let withFlags = try WorkflowRunArguments.parse(["--config", path, "-j", "7", "--workdir", "\(directory)/from-flag", "--policy", "never"])
                .runOptions(for: workflow, environment: environment)
            #expect(withFlags.concurrency == 7 && withFlags.workdir == "\(directory)/from-flag" && workflow.defaultPolicy == .never)
            // $DATAFLOW_CONFIG names the file when --config does not.
            let fromVariable = try WorkflowRunArguments.parse([]).runOptions(for: workflow, environment: ["DATAFLOW_CONFIG": path])
            #expect(fromVariable.concurrency == 3)
            #expect(throws: ConfigError.self) {
                try WorkflowRunArguments.parse([]).runOptions(for: workflow, environment: ["DATAFLOW_CONCURRENCY": "many"])
            }
        }
    }

    /// Per-task and per-label executors and resources reach the plan; a custom type registered
    /// by the program is made from its table; a declared `slurm` table is checked but not made
    /// while no task may run on it.
    @Test func tasksAndLabelsGetTheirExecutorsAndResourcesFromTheFile() async throws {
        let registry = ExecutorRegistry()
        registry.register(type: "threads", keys: ["note"]) { _ in LocalExecutor() }
        let text = """
            [executor.mine]
            type = "threads"
            note = "made by the program's registration"

            [executor.hpc]
            type = "slurm"
            partition = "batch"
            values = "files"
            status = "squeue"
            poll_interval_min = "250ms"
            poll_interval_max = "20s"
            array_throttle = 8
            max_jobs = 200
            environment = { OMP_NUM_THREADS = 4 }

            [executor.gpu]
            type = "ray"

            [task."b"]
            executor = "mine"
            resources = { cpu = 2, memory = "1MiB" }
            settings = { time = "10", partition = "long" }

            [label.tiny]
            resources = { cpu = 0.5 }
            settings = { qos = "short" }
            """
        let config = try DataflowConfig.parse(text, path: "x.toml", registry: registry)
        let workflow = Workflow("per-task")
        let a = workflow.task("a", options: TaskOptions(labels: ["tiny"])) { 1 }
        workflow.task("b", a) { $0 + 1 }
        var options = RunOptions(workdir: NSTemporaryDirectory())
        try config.apply(to: workflow, options: &options, registry: registry)
        let plan = try workflow.plan(options)
        let byName = Dictionary(uniqueKeysWithValues: plan.tasks.map { ($0.name, $0) })
        #expect(byName["a"]?.executor == "local" && byName["a"]?.resources.cpu == 0.5)
        #expect(byName["b"]?.executor == "mine" && byName["b"]?.resources == Resources(cpu: 2, memoryBytes: 1 << 20))
        #expect(byName["a"]?.executorSettings == ["qos": "short"] && byName["b"]?.executorSettings == ["time": "10", "partition": "long"])
        #expect(options.executors["hpc"] == nil)
        // Selecting the slurm executor makes it from its table (nothing is asked of SLURM yet).
        var selecting = config
        selecting.run.executor = "hpc"
        try selecting.apply(to: workflow, options: &options, registry: registry)
        let slurm = try #require(options.executor as? SlurmExecutor)
        #expect(slurm.options.partition == "batch" && slurm.options.values == .files && slurm.options.statusSource == .squeue)
        #expect(slurm.options.pollIntervalMinSeconds == 0.25 && slurm.options.pollIntervalMaxSeconds == 20)
        #expect(slurm.options.arrayThrottle == 8 && slurm.options.maxJobs == 200 && slurm.options.environment == ["OMP_NUM_THREADS": "4"])
        #expect(!slurm.capabilities.reachesStore && slurm.capabilities.schedulesResources)
        // The ray executor is made from its table too (nothing is asked of Ray yet).
        selecting.run.executor = "gpu"
        try selecting.apply(to: workflow, options: &options, registry: registry)
        let ray = try #require(options.executor as? RayExecutor)
        #expect(ray.options.dashboardAddress == "http://127.0.0.1:8265" && ray.options.maxSubmit == 8)
    }
}
