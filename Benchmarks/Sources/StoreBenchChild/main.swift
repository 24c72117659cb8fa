// StoreBenchChild STORE COUNT SIZE: attach to STORE, create and seal COUNT objects of SIZE bytes
// with ids ObjectID(deriving: "bench-child-<i>"), print "ready", then stay attached until
// standard input closes (so the objects belong to a live, attached process).
import Foundation
import ObjectStore

let arguments = CommandLine.arguments
let store = try SharedObjectStore.attach(named: arguments[1])
let count = Int(arguments[2])!, size = Int(arguments[3])!
for index in 0..<count {
    var builder = try store.create(ObjectID(deriving: "bench-child-\(index)"), byteCount: size)
    try builder.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: index)) }
    try builder.seal()
}
// Unbuffered: stdout is a pipe, where print would hold the line back until exit.
FileHandle.standardOutput.write(Data("ready\n".utf8))
while readLine() != nil {}
