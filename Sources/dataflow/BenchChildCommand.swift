import ArgumentParser
import Foundation
import ObjectStore

/// `dataflow bench-child` (hidden): the child process of `store/get-cross-process`. Attaches to
/// the parent's store and prints, as a JSON array, the seconds per `get` of each sample.
struct BenchChildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-child",
        abstract: "Time get of another process's object (started by `dataflow bench`).",
        shouldDisplay: false)

    @Option(help: "The store to attach to.") var store: String
    @Option(help: "The object id (32 hex digits).") var object: String
    @Option(help: "The object's expected size in bytes.") var bytes: Int
    @Option(help: "Gets per sample.") var gets: Int = 10_000
    @Option(help: "Samples.") var runs: Int = 5

    func run() throws {
        guard let id = ObjectID(object) else {
            throw CommandError.invalidOption(option: "--object", value: object, reason: "not an object id (32 hex digits)")
        }
        let attached: SharedObjectStore
        do { attached = try SharedObjectStore.attach(named: store) } catch {
            throw error.code == .storeNotFound ? CommandError.storeNotFound(name: store) : CommandError.storeUnreadable(name: store, reason: error.message)
        }
        var samples: [Double] = []
        for _ in 0..<runs {
            var checksum = 0
            let seconds = try Stopwatch.time { for _ in 0..<gets { checksum &+= try attached.get(id).byteCount } }
            guard checksum == bytes &* gets else {
                throw CommandError.storeUnreadable(name: store, reason: "object \(id) is not \(bytes) bytes")
            }
            samples.append(seconds / Double(max(gets, 1)))
        }
        print(String(decoding: try JSONEncoder().encode(samples), as: UTF8.self))
    }
}
