import Foundation
import ObjectStore

/// `store/put-copy`: `put` of a value in ordinary memory into a prefaulted store (one copy),
/// per put; each object is deleted before the next put (untimed).
struct StorePutCopy: BenchCase {
    let name = "store/put-copy"
    let unit = BenchUnit.operation

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let bench = try BenchStore(valueBytes: bytes, liveValues: 1)
        defer { bench.remove() }
        var value = [UInt8](repeating: 0, count: bytes)
        value.withUnsafeMutableBytes { StageWork.fillRandom($0.baseAddress!.assumingMemoryBound(to: Float.self), count: bytes / 4, seed: 4) }
        let repetitions = Stopwatch.repetitions(forBytes: bytes, bytesPerSecond: 10e9)
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            var total = 0.0
            for _ in 0..<repetitions {
                let id = ObjectID.random()
                total += try Stopwatch.time { try bench.store.put(value, id: id) }
                try bench.store.delete(id)
            }
            samples.append(total / Double(repetitions))
        }
        return samples
    }
}

/// `store/get-same-process`: `get` of an object this process made (a view: no copy, at any
/// size), per get, handles dropped at once.
struct StoreGetSameProcess: BenchCase {
    let name = "store/get-same-process"
    let unit = BenchUnit.operation

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let bench = try BenchStore(valueBytes: bytes, liveValues: 1)
        defer { bench.remove() }
        let id = ObjectID(deriving: "bench/get")
        var builder = try bench.store.create(id, byteCount: bytes)
        try builder.withUnsafeMutableBytes { _ = memset($0.baseAddress!, 7, $0.count) }
        _ = try builder.seal()
        let gets = settings.getsPerSample
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            var checksum = 0
            let seconds = try Stopwatch.time {
                for _ in 0..<gets { checksum &+= try bench.store.get(id).byteCount }
            }
            precondition(checksum == bytes &* gets)
            samples.append(seconds / Double(gets))
        }
        return samples
    }
}

/// `store/get-cross-process`: a child `dataflow` process (the hidden `bench-child` subcommand)
/// attaches to the store and times `get` of an object this process made, per get.
struct StoreGetCrossProcess: BenchCase {
    let name = "store/get-cross-process"
    let unit = BenchUnit.operation

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        guard let executable = settings.childExecutable else {
            throw CommandError.benchFailed(benchCase: name, bytes: bytes, reason: "cannot find the `dataflow` executable to start as the child (set $DATAFLOW_EXECUTABLE)")
        }
        let bench = try BenchStore(valueBytes: bytes, liveValues: 1)
        defer { bench.remove() }
        let id = ObjectID(deriving: "bench/get-cross")
        var builder = try bench.store.create(id, byteCount: bytes)
        try builder.withUnsafeMutableBytes { _ = memset($0.baseAddress!, 9, $0.count) }
        let handle = try builder.seal()  // held by this process while the child reads it
        defer { withExtendedLifetime(handle) {} }
        let arguments = [
            "bench-child", "--store", bench.store.name, "--object", id.description, "--bytes", "\(bytes)",
            "--gets", "\(settings.getsPerSample)", "--runs", "\(settings.runs)",
        ]
        let output = try ChildProcess.run(executable, arguments)
        guard output.status == 0 else {
            throw CommandError.benchFailed(benchCase: name, bytes: bytes, reason: "child exited with status \(output.status): \(output.standardError)")
        }
        guard let samples = try? JSONDecoder().decode([Double].self, from: Data(output.standardOutput.utf8)), samples.count == settings.runs else {
            throw CommandError.benchFailed(benchCase: name, bytes: bytes, reason: "child printed no samples: \(output.standardOutput.prefix(200))")
        }
        return samples
    }
}

/// Starting a child process and collecting its output.
enum ChildProcess {
    struct Output {
        var status: Int32
        var standardOutput: String
        var standardError: String
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes to the end before waiting, so a chatty child never blocks on a full pipe.
        let errorData = ErrorReader(err.fileHandleForReading)
        let outputData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus, standardOutput: String(decoding: outputData, as: UTF8.self),
            standardError: String(decoding: errorData.wait(), as: UTF8.self))
    }

    /// Reads a pipe to its end on a thread of its own.
    final class ErrorReader: @unchecked Sendable {  // `data` is written once before `done` signals
        private var data = Data()
        private let done = DispatchSemaphore(value: 0)
        init(_ handle: FileHandle) {
            Thread.detachNewThread { [self] in
                data = handle.readDataToEndOfFile()
                done.signal()
            }
        }
        func wait() -> Data {
            done.wait()
            return data
        }
    }

    /// The `dataflow` executable: `$DATAFLOW_EXECUTABLE`, this process if it is `dataflow`, or
    /// a `dataflow` beside this process's executable (as in a build directory, under tests).
    static func dataflowExecutable() -> String? {
        if let explicit = ProcessInfo.processInfo.environment["DATAFLOW_EXECUTABLE"], !explicit.isEmpty { return explicit }
        let own = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        if (own as NSString).lastPathComponent == "dataflow" { return own }
        let sibling = ((own as NSString).deletingLastPathComponent as NSString).appendingPathComponent("dataflow")
        return FileManager.default.isExecutableFile(atPath: sibling) ? sibling : nil
    }
}
