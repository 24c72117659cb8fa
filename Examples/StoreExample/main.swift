// The README's main job until the `dataflow` command exists: a producer process and a consumer
// process sharing a tensor through the object store, zero-copy.
//
//   swift run -c release store-example            # creates a store, runs both halves, removes it
//   store-example consume STORE ID                # the consumer half (started by the producer)
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ObjectStore

/// Prints a line at once (stdout may be a pipe, which would hold lines back until exit).
func say(_ line: String) {
    print(line)
    fflush(nil)
}

func milliseconds(since start: UInt64) -> String {
    String(format: "%.2f ms", Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
}

let arguments = CommandLine.arguments
if arguments.count == 4 && arguments[1] == "consume" {
    // Consumer: attach, get the tensor as a view of the producer's bytes, reduce it.
    func consume() throws {
        var start = DispatchTime.now().uptimeNanoseconds
        let store = try SharedObjectStore.attach(named: arguments[2])
        let attached = milliseconds(since: start)
        start = DispatchTime.now().uptimeNanoseconds
        let features = try store.get(ObjectID(arguments[3])!, as: Tensor<Float>.self)
        let got = milliseconds(since: start)
        start = DispatchTime.now().uptimeNanoseconds
        let sum = features.withSpan { span in
            var total: Double = 0
            for index in span.indices { total += Double(span[index]) }
            return total
        }
        say("consumer (pid \(getpid())): attached in \(attached), got \(features) in \(got) (a view, no copy), "
            + "summed its \(features.count) scalars in \(milliseconds(since: start)); mean = \(sum / Double(features.count))")
    }  // the handle is released here, before the process exits
    try consume()
    exit(0)
}

let name = "example-\(getpid())"
let rows = 4096, columns = 4096  // 64 MiB of float32
let store = try SharedObjectStore.create(named: name, capacityBytes: 256 << 20, options: StoreOptions(prefault: true))
defer { try? SharedObjectStore.remove(named: name) }
say("created store '\(name)': \(try store.statistics())")

let id = ObjectID(deriving: "example/features")
var start = DispatchTime.now().uptimeNanoseconds
let features = try store.makeTensor(id, shape: [rows, columns], of: Float.self) { scalars in
    for index in scalars.indices { scalars[index] = Float(index % 1000) / 1000 }
}
say("producer (pid \(getpid())): wrote \(features) in place in \(milliseconds(since: start)) (\(features.scalarByteCount >> 20) MiB, no staging copy)")

start = DispatchTime.now().uptimeNanoseconds
let consumer = Process()
consumer.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
consumer.arguments = ["consume", name, id.description]
try consumer.run()
consumer.waitUntilExit()
say("consumer process finished in \(milliseconds(since: start)) (including its start-up), status \(consumer.terminationStatus)")

let report = try store.reclaimDeadProcesses()
say("after the consumer exited: \(report)")
say("store: \(try store.statistics())")
