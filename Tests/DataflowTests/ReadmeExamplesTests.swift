import Foundation
import Testing

/// The README's Swift examples compile (they are the `ReadmeExamples` and `WorkerProgram`
/// targets), and the README's worker program runs as the README says.
@Suite struct ReadmeExamplesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let binaries = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path

    /// The lines of `text`, trimmed, without blank lines and imports.
    func codeLines(_ text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("import ") }
    }

    @Test func everySwiftBlockOfTheReadmeIsCompiledByAnExampleTarget() throws {
        let readme = try String(contentsOfFile: "\(Self.root)/README.md", encoding: .utf8)
        var blocks: [String] = []
        var current: [Substring]?
        for line in readme.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```swift" { current = [] } else if current != nil, line == "```" {
                blocks.append(current!.joined(separator: "\n"))
                current = nil
            } else if current != nil { current!.append(line) }
        }
        #expect(blocks.count >= 5, "found \(blocks.count) swift blocks")
        var sources: [[String]] = []
        for directory in ["Examples/ReadmeExamples", "Examples/WorkerProgram", "Examples/CommandLineProgram"] {
            for file in try FileManager.default.contentsOfDirectory(atPath: "\(Self.root)/\(directory)") where file.hasSuffix(".swift") {
                sources.append(codeLines(try String(contentsOfFile: "\(Self.root)/\(directory)/\(file)", encoding: .utf8)))
            }
        }
        for block in blocks {
            let lines = codeLines(block)
            let found = sources.contains { source in
                source.count >= lines.count && (0...(source.count - lines.count)).contains { Array(source[$0..<$0 + lines.count]) == lines }
            }
            #expect(found, "this README block is in no example target, so nothing compiles it:\n\(block)")
        }
    }

    /// The README's complete worker program, run as a user would: its parent runs the workflow on
    /// two warm workers, which are the same binary entering the worker entry first.
    @Test func theReadmeWorkerProgramRunsOnWarmWorkers() async throws {
        try await withWorkdir { workdir in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "\(Self.binaries)/WorkerProgram")
            process.arguments = ["5"]
            process.environment = ProcessInfo.processInfo.environment.merging(["DATAFLOW_WORKDIR": workdir]) { $1 }
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            // 5 × Σ (i mod 10) over 2^20 scalars.
            #expect(text == "sum: \(5.0 * Double((0..<(1 << 20)).reduce(0) { $0 + $1 % 10 }))\n", "\(text)")
            #expect(FileManager.default.fileExists(atPath: "\(workdir)/runs"), "the run went to $DATAFLOW_WORKDIR")
        }
    }
}
