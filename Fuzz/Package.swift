// swift-tools-version:6.1
// libFuzzer targets of swift-dataflow. Built and run by Scripts/fuzz-spill-reader.sh:
//   swift build -c release --package-path Fuzz --sanitize fuzzer --sanitize address
import PackageDescription

let package = Package(
    name: "swift-dataflow-fuzz",
    dependencies: [.package(name: "swift-dataflow", path: "..")],
    targets: [
        // Feeds arbitrary bytes to the spill-file reader: it must throw typed errors, never crash.
        .executableTarget(
            name: "SpillFileFuzzer",
            dependencies: [.product(name: "Materialize", package: "swift-dataflow")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        // Writes valid spill files (raw and LZ4) as the fuzzer's seed corpus.
        .executableTarget(
            name: "SpillFileSeeds",
            dependencies: [
                .product(name: "Materialize", package: "swift-dataflow"),
                .product(name: "ObjectStore", package: "swift-dataflow"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
