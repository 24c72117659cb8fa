import Foundation
import ObjectStore
import Testing

/// A fresh store name for one test, unique across concurrently running tests and processes.
func uniqueStoreName(_ label: String = #function) -> String {
    let clean = label.filter { $0.isLetter || $0.isNumber }.prefix(24)
    return "test-\(clean)-\(getpid())-\(ObjectID.random().description.prefix(8))"
}

/// Runs `body` with a new store, then checks its integrity and removes it.
@discardableResult
func withStore<R>(
    capacity: Int = 4 << 20, options: StoreOptions = StoreOptions(), label: String = #function,
    _ body: (SharedObjectStore) throws -> R
) throws -> R {
    let name = uniqueStoreName(label)
    let store = try SharedObjectStore.create(named: name, capacityBytes: capacity, options: options)
    defer { try? SharedObjectStore.remove(named: name) }
    let result = try body(store)
    try store.verifyIntegrity()
    return result
}

/// Expects `body` to throw an `ObjectStoreError` with `code`; returns it for further checks.
@discardableResult
func expectStoreError<R: ~Copyable>(
    _ code: ObjectStoreError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> R
) -> ObjectStoreError? {
    do {
        _ = try body()
        Issue.record("expected ObjectStoreError.\(code), got success", sourceLocation: sourceLocation)
    } catch let error as ObjectStoreError {
        #expect(error.code == code, "expected .\(code), got \(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected ObjectStoreError.\(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A real child process running `ObjectStoreTestChild` (built beside the test bundle).
final class ChildProcess {
    let process = Process()
    private let output = Pipe()
    private var buffered = Data()

    static var executableURL: URL {
        let tests = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return tests.deletingLastPathComponent().appendingPathComponent("ObjectStoreTestChild")
    }

    init(_ arguments: [String]) throws {
        process.executableURL = Self.executableURL
        process.arguments = arguments
        process.standardOutput = output
        try process.run()
    }

    /// Waits (up to `timeout` seconds) for the child's "ready" line; returns its words after "ready".
    func waitUntilReady(timeout: Double = 60) throws -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffered[buffered.startIndex..<newline], as: UTF8.self)
                buffered = Data(buffered[(newline + 1)...])
                let words = line.split(separator: " ").map(String.init)
                if words.first == "ready" { return Array(words.dropFirst()) }
                throw ChildFailure(message: "child said: \(line)")
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty {
                throw ChildFailure(message: "child exited before it was ready (status \(waitForExit()))")
            }
            buffered.append(chunk)
        }
        throw ChildFailure(message: "child not ready after \(timeout) s")
    }

    /// Sends SIGKILL and reaps the child.
    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    @discardableResult
    func waitForExit() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    var pid: Int32 { process.processIdentifier }
}

struct ChildFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Bytes 0, 1, 2, ... (mod 251) for `count` bytes.
func patternBytes(_ count: Int, seed: Int = 0) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: ($0 &+ seed) % 251) }
}
