// swift-tools-version:6.1
// The benchmarks of swift-dataflow, a separate package (as swift-nio does) so that the library
// does not depend on the benchmark framework. Run: `make bench` at the top, or
// `swift package --allow-writing-to-package-directory benchmark` here.
import PackageDescription

let package = Package(
    name: "swift-dataflow-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-dataflow", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ObjectStoreBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "ObjectStore", package: "swift-dataflow"),
            ],
            path: "Benchmarks/ObjectStoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "MaterializeBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "ObjectStore", package: "swift-dataflow"),
                .product(name: "Materialize", package: "swift-dataflow"),
                "BenchLZ4",
            ],
            path: "Benchmarks/MaterializeBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "DataflowBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Dataflow", package: "swift-dataflow"),
                .product(name: "ObjectStore", package: "swift-dataflow"),
            ],
            path: "Benchmarks/DataflowBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Issue 5's targets: warm worker processes (per hop; a 256 MiB tensor from one to another).
        .executableTarget(
            name: "ProcessBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Dataflow", package: "swift-dataflow"),
                .product(name: "ObjectStore", package: "swift-dataflow"),
                "BenchWorkflows", "DataflowBenchWorker",
            ],
            path: "Benchmarks/ProcessBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .target(
            name: "BenchWorkflows",
            dependencies: [.product(name: "Dataflow", package: "swift-dataflow"), .product(name: "ObjectStore", package: "swift-dataflow")],
            path: "Sources/BenchWorkflows"
        ),
        .executableTarget(name: "DataflowBenchWorker", dependencies: ["BenchWorkflows", .product(name: "Dataflow", package: "swift-dataflow")], path: "Sources/DataflowBenchWorker"),
        // liblz4 for the compression-speed baseline (the same system library the library uses).
        .systemLibrary(name: "BenchLZ4", path: "Sources/BenchLZ4", pkgConfig: "liblz4"),
        // The "other process" of the cross-process benchmark: attaches, creates objects, waits.
        .executableTarget(
            name: "StoreBenchChild",
            dependencies: [.product(name: "ObjectStore", package: "swift-dataflow")],
            path: "Sources/StoreBenchChild"
        ),
    ],
    swiftLanguageModes: [.v6]
)
