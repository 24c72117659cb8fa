import Foundation
import Materialize
import ObjectStore
import Testing

/// The Python reader (python/dataflow_spill.py, numpy + lz4 + xxhash) reads files this library
/// wrote, from the path alone.
@Suite struct PythonReaderTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("python/dataflow_spill.py").path

    /// Runs the reader on `path`; returns its JSON summary, or its stderr as the error.
    func readWithPython(_ path: String) throws -> (status: Int32, summary: [String: Any], stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script, path]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let summary = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return (process.terminationStatus, summary, errorText)
    }

    @Test(arguments: [SpillFile.Compression.lz4, .raw])
    func pythonReadsATensorFile(_ compression: SpillFile.Compression) throws {
        try withStore { store in
            try withTemporaryDirectory { directory in
                let scalars = quantisedFloats(6 * 5000)
                let handle = try store.put(try Tensor(shape: [6, 5000], scalars: scalars), id: ObjectID(deriving: "t"))
                let path = "\(directory)/t.dfspill"
                let header = try SpillFile.write(handle, to: path, compression: compression)
                let result = try readWithPython(path)
                #expect(result.status == 0, "python reader failed: \(result.stderr)")
                #expect(result.summary["id"] as? String == handle.id.description)
                #expect(result.summary["type_tag"] as? String == "tensor<float32>")
                #expect(result.summary["codec"] as? String == header.codec.description)
                #expect(result.summary["shape"] as? [Int] == [6, 5000])
                #expect(result.summary["dtype"] as? String == "float32")
                #expect(result.summary["first"] as? [Double] == scalars.prefix(4).map(Double.init))
                let sum = scalars.reduce(0.0) { $0 + Double($1) }
                #expect(abs((result.summary["sum"] as? Double ?? 0) - sum) < 1e-6 * max(1, sum))
            }
        }
    }

    @Test func pythonReadsStringsAndJSONAndRejectsDamage() throws {
        struct Settings: Codable, Sendable, StoreValue { var rate: Double; var name: String }
        try withStore { store in
            try withTemporaryDirectory { directory in
                try SpillFile.write(try store.put("héllo", id: .random()), to: "\(directory)/s")
                #expect(try readWithPython("\(directory)/s").summary["value"] as? String == "héllo")
                try SpillFile.write(try store.put(Settings(rate: 0.5, name: "x"), id: .random()), to: "\(directory)/j")
                let json = try readWithPython("\(directory)/j").summary["value"] as? [String: Any]
                #expect(json?["rate"] as? Double == 0.5 && json?["name"] as? String == "x")
                // A flipped payload byte: the Python reader refuses it too, naming the file.
                var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(directory)/s")))
                bytes[bytes.count - 1] ^= 1
                try Data(bytes).write(to: URL(fileURLWithPath: "\(directory)/bad"))
                let bad = try readWithPython("\(directory)/bad")
                #expect(bad.status == 1 && bad.stderr.contains("\(directory)/bad") && bad.stderr.contains("corrupted payload"))
            }
        }
    }
}
