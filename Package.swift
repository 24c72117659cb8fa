// swift-tools-version:6.1
// swift-dataflow: graphs of Swift functions and shell commands passing typed values through a
// shared-memory object store. See README.md and Sources/*/README-style doc comments.
import PackageDescription

/// Invariant checks (`_checkInvariants()`) are live in debug and test builds only.
let internalChecks: [SwiftSetting] = [
    .define("DATAFLOW_INTERNAL_CHECKS", .when(configuration: .debug))
]

let package = Package(
    name: "swift-dataflow",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ObjectStore", targets: ["ObjectStore"]),
        .library(name: "Materialize", targets: ["Materialize"]),
        .library(name: "Dataflow", targets: ["Dataflow"]),
        .library(name: "DataflowCLI", targets: ["DataflowCLI"]),
        .library(name: "DataflowSlurm", targets: ["DataflowSlurm"]),
        .library(name: "DataflowRay", targets: ["DataflowRay"]),
        .executable(name: "store-example", targets: ["StoreExample"]),
        .executable(name: "dataflow", targets: ["DataflowCommand"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // dataflow.toml: a complete TOML parser (toml++) whose syntax errors carry line and column.
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
    ],
    targets: [
        // Shared-memory segments, allocator, object table, handles, typed encoding.
        // The only module with unsafe pointer code and the only one that calls libc directly.
        .target(
            name: "ObjectStore",
            dependencies: ["CStoreLock", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: internalChecks
        ),
        // The store mutex's lock with a short spin first (a C atomic load and the CPU's pause).
        .target(name: "CStoreLock"),
        // What Dataflow's Internals/Syscalls.swift needs from C: posix_spawn's and memfd_create's glibc
        // extensions, and atomic words in memory shared with worker processes.
        .target(name: "CDataflowSystem"),
        // The system's liblz4 and libxxhash (installed by `make deps` / .ci/run).
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash", providers: [.apt(["libxxhash-dev"])]),
        // Spill files and materialization policies (built on ObjectStore).
        .target(
            name: "Materialize",
            dependencies: ["ObjectStore", "CLZ4", "CXXHash", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: internalChecks
        ),
        // Workflow graph, planner, scheduler, executors (built on ObjectStore and Materialize).
        .target(
            name: "Dataflow",
            dependencies: ["ObjectStore", "Materialize", "CDataflowSystem", .product(name: "Logging", package: "swift-log")],
            swiftSettings: internalChecks
        ),

        // The SLURM executor: each attempt a batch job (sbatch, sacct/squeue, scancel).
        .target(name: "DataflowSlurm", dependencies: ["Dataflow", .product(name: "Logging", package: "swift-log")]),

        // The Ray executor: each attempt a Ray job through the Jobs REST API (URLSession).
        .target(name: "DataflowRay", dependencies: ["Dataflow"]),

        // What any workflow program's `main` needs: the `dataflow.toml` configuration and the
        // `--executor`/`--config`/`--jobs`/`--dry-run` command line (WorkflowCommandLine).
        .target(
            name: "DataflowCLI",
            dependencies: [
                "Dataflow", "Materialize", "ObjectStore", "DataflowSlurm", "DataflowRay",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),

        // The `dataflow` command: demo, bench, store and run inspection; also its own worker.
        .executableTarget(
            name: "DataflowCommand",
            dependencies: [
                "Dataflow", "DataflowCLI", "DataflowSlurm", "DataflowRay", "Materialize", "ObjectStore", "CLZ4",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/dataflow"
        ),

        // A custom executor written only against the public API (one fresh process per attempt).
        .target(name: "FreshProcessExecutor", dependencies: ["Dataflow"], path: "Examples/FreshProcessExecutor"),
        // A workflow program with the `dataflow`-style command line (WorkflowCommandLine.main).
        .executableTarget(name: "CommandLineProgram", dependencies: ["Dataflow", "DataflowCLI", "ObjectStore"], path: "Examples/CommandLineProgram"),
        // The README's complete worker program: a workflow on warm worker processes.
        .executableTarget(name: "WorkerProgram", dependencies: ["Dataflow", "ObjectStore"], path: "Examples/WorkerProgram"),
        // The README's Swift examples, compiled (a test checks that they match the README).
        .executableTarget(name: "ReadmeExamples", dependencies: ["Dataflow", "DataflowSlurm", "DataflowRay", "ObjectStore"], path: "Examples/ReadmeExamples"),
        // A small store example (producer and consumer processes sharing a tensor).
        .executableTarget(name: "StoreExample", dependencies: ["ObjectStore"], path: "Examples/StoreExample"),

        // A child process the object-store tests start, attach, kill and inspect.
        .executableTarget(
            name: "ObjectStoreTestChild",
            dependencies: ["ObjectStore"],
            path: "Tests/ObjectStoreTestChild"
        ),
        // Workflows that the Dataflow tests build both in the test process and in worker
        // processes (the worker executable builds the very same graphs).
        .target(
            name: "DataflowTestWorkflows",
            dependencies: ["Dataflow", "ObjectStore", "Materialize"],
            path: "Tests/DataflowTestWorkflows"
        ),
        // A program with workflows, started as a worker by the worker-mode and process-executor tests.
        .executableTarget(
            name: "DataflowTestWorker",
            dependencies: ["Dataflow", "DataflowRay", "DataflowCLI", "ObjectStore", "DataflowTestWorkflows"],
            path: "Tests/DataflowTestWorker"
        ),
        .testTarget(
            name: "DataflowTests",
            dependencies: [
                "Dataflow", "Materialize", "ObjectStore", "DataflowTestWorkflows", "DataflowTestWorker", "WorkerProgram", "ReadmeExamples",
                "FreshProcessExecutor", "DataflowCLI", "CommandLineProgram", "DataflowSlurm", "DataflowRay",
            ],
            swiftSettings: internalChecks
        ),
        .testTarget(
            name: "DataflowCommandTests",
            dependencies: ["DataflowCommand", "DataflowCLI"]
        ),
        .testTarget(
            name: "MaterializeTests",
            dependencies: ["Materialize", "ObjectStore"],
            swiftSettings: internalChecks
        ),
        .testTarget(
            name: "ObjectStoreTests",
            dependencies: ["ObjectStore", "ObjectStoreTestChild"],
            swiftSettings: internalChecks
        ),
    ],
    swiftLanguageModes: [.v6]
)
