import Foundation
import Materialize
import ObjectStore
import Testing

/// A fresh temporary directory, removed after `body`.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let path = NSTemporaryDirectory() + "dataflow-test-\(getpid())-\(ObjectID.random().description.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// A fresh store, removed after `body`.
func withStore<R>(capacity: Int = 16 << 20, label: String = #function, _ body: (SharedObjectStore) throws -> R) throws -> R {
    let clean = label.filter { $0.isLetter || $0.isNumber }.prefix(20)
    let name = "test-m-\(clean)-\(getpid())-\(ObjectID.random().description.prefix(6))"
    let store = try SharedObjectStore.create(named: name, capacityBytes: capacity)
    defer { try? SharedObjectStore.remove(named: name) }
    let result = try body(store)
    try store.verifyIntegrity()
    return result
}

@discardableResult
func expectMaterializeError<R: ~Copyable>(_ code: MaterializeError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> R) -> MaterializeError? {
    do {
        _ = try body()
        Issue.record("expected MaterializeError.\(code), got success", sourceLocation: sourceLocation)
    } catch let error as MaterializeError {
        #expect(error.code == code, "expected .\(code), got \(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected MaterializeError.\(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Deterministic pseudo-random floats in [0, 1): incompressible for LZ4.
func randomFloats(_ count: Int, seed: UInt64 = 1) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 24)
    }
}

/// Floats quantised to 16 levels: compress well.
func quantisedFloats(_ count: Int) -> [Float] {
    (0..<count).map { Float(($0 / 64) % 16) / 16 }
}
