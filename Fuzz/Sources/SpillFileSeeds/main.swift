// SpillFileSeeds DIR: writes a few valid spill files (raw, LZ4, several types) into DIR.
import Foundation
import Materialize
import ObjectStore

let directory = CommandLine.arguments[1]
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
let name = "fuzz-seeds-\(getpid())"
let store = try SharedObjectStore.create(named: name, capacityBytes: 4 << 20)
defer { try? SharedObjectStore.remove(named: name) }
let values: [(String, ObjectHandle, SpillFile.Compression)] = [
    ("string-raw", try store.put("hello, spill file", id: .random()), .raw),
    ("bytes-lz4", try store.put([UInt8](repeating: 7, count: 3000), id: .random()), .lz4),
    ("tensor-lz4", try store.put(Tensor<Float>((0..<2048).map { Float($0 % 16) }), id: .random()), .lz4),
    ("tensor-raw", try store.put(Tensor<Int32>((0..<100).map { Int32($0) }), id: .random()), .raw),
]
for (label, handle, compression) in values {
    try SpillFile.write(handle, to: "\(directory)/\(label).dfspill", compression: compression)
}
print("wrote \(values.count) seeds to \(directory)")
