import Foundation
import Materialize
import ObjectStore

/// `spill/write`: `SpillFile.write` of a store object (pseudo-random float32, which the
/// adaptive codec stores raw) to a file, fsynced and renamed into place; per write.
struct SpillWrite: BenchCase {
    let name = "spill/write"
    let unit = BenchUnit.run

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let bench = try BenchStore(valueBytes: bytes, liveValues: 1)
        defer { bench.remove() }
        let handle = try Self.makeObject(in: bench.store, bytes: bytes, seed: 5)
        let path = "\(settings.scratchDirectory)/spill-write.dfspill"
        defer { BenchIO.remove(path) }
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            samples.append(try Stopwatch.time { try SpillFile.write(handle, to: path) })
            BenchIO.remove(path)
        }
        return samples
    }

    /// A sealed object of `bytes` pseudo-random bytes.
    static func makeObject(in store: SharedObjectStore, bytes: Int, seed: UInt64) throws -> ObjectHandle {
        var builder = try store.create(ObjectID.random(), byteCount: bytes)
        try builder.withUnsafeMutableBytes { raw in
            StageWork.fillRandom(raw.baseAddress!.assumingMemoryBound(to: Float.self), count: raw.count / 4, seed: seed)
        }
        return try builder.seal()
    }
}

/// `spill/restore`: `SpillFile.restore` of such a file (verified, read from the page cache)
/// into the store as a new object; per restore. The object is deleted after each (untimed).
struct SpillRestore: BenchCase {
    let name = "spill/restore"
    let unit = BenchUnit.run

    func measure(bytes: Int, _ settings: BenchSettings) async throws -> [Double] {
        let bench = try BenchStore(valueBytes: bytes, liveValues: 2)
        defer { bench.remove() }
        let path = "\(settings.scratchDirectory)/spill-restore.dfspill"
        defer { BenchIO.remove(path) }
        do {
            let handle = try SpillWrite.makeObject(in: bench.store, bytes: bytes, seed: 6)
            try SpillFile.write(handle, to: path)
            _ = try bench.store.delete(handle.id)
        }
        var samples: [Double] = []
        for _ in 0..<settings.runs {
            let id = ObjectID.random()
            samples.append(try Stopwatch.time { _ = try SpillFile.restore(from: path, into: bench.store, as: id) })
            _ = try bench.store.delete(id)
        }
        return samples
    }
}
