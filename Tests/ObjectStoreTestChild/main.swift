// A child process for the object-store tests: it attaches to a store, does one thing, reports
// on stdout ("ready ..." when it reached the moment the test waits for), and then either exits
// or waits to be killed.
//
// Usage: ObjectStoreTestChild COMMAND STORE [ARGS...]
//   read STORE ID                 get ID, print "ready <payloadOffset> <byteCount> <sum of bytes>", exit
//   create-seal STORE ID SIZE B   create ID of SIZE bytes all equal to B, seal, print "ready <payloadOffset>", exit
//   create-hang STORE ID SIZE     create ID, write half of it, print "ready", wait to be killed
//   get-hang STORE ID             get ID, print "ready", wait to be killed
//   lock-hang STORE [BYTES]       take the store lock (after a partial allocation of BYTES), print "ready", wait
//   get-loop STORE ID N           time N gets of ID, print "ready <median ns>", exit
#if canImport(Glibc)
import Glibc
#endif
import ObjectStore

func say(_ line: String) {
    print(line)
    fflush(nil)  // all streams; stdout is not concurrency-safe to name
}

func waitToBeKilled() -> Never {
    while true { sleep(1000) }
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    say("usage: ObjectStoreTestChild COMMAND STORE [ARGS...]")
    exit(2)
}
let command = arguments[1]
do {
    let store = try SharedObjectStore.attach(named: arguments[2])
    switch command {
    case "read":
        let handle = try store.get(ObjectID(arguments[3])!)
        let sum = handle.withUnsafeBytes { $0.reduce(0) { $0 &+ Int($1) } }
        say("ready \(handle.descriptor.payloadOffset) \(handle.byteCount) \(sum)")
    case "create-seal":
        var builder = try store.create(ObjectID(arguments[3])!, byteCount: Int(arguments[4])!)
        let byte = UInt8(arguments[5])!
        try builder.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: byte) }
        let handle = try builder.seal()
        say("ready \(handle.descriptor.payloadOffset)")
    case "create-hang":
        let builder = try store.create(ObjectID(arguments[3])!, byteCount: Int(arguments[4])!)
        // Wait inside the builder's use: a builder whose last use has passed is destroyed (and
        // its object aborted) at once, not at the end of the scope.
        try builder.withUnsafeMutableBytes { bytes in
            bytes.baseAddress!.initializeMemory(as: UInt8.self, repeating: 7, count: bytes.count / 2)
            say("ready")
            waitToBeKilled()
        }
    case "get-hang":
        let handle = try store.get(ObjectID(arguments[3])!)
        say("ready \(handle.byteCount)")
        waitToBeKilled()
    case "lock-hang":
        let bytes = arguments.count > 3 ? Int(arguments[3]) : nil
        say("ready")
        store._testingHoldLockForever(partialAllocationBytes: bytes)
    case "get-loop":
        let id = ObjectID(arguments[3])!
        let count = Int(arguments[4])!
        var samples: [UInt64] = []
        samples.reserveCapacity(count)
        for _ in 0..<count {
            var start = timespec(), end = timespec()
            clock_gettime(CLOCK_MONOTONIC, &start)
            let handle = try store.get(id)
            _ = handle.byteCount
            clock_gettime(CLOCK_MONOTONIC, &end)
            samples.append(UInt64((end.tv_sec - start.tv_sec) * 1_000_000_000 + (end.tv_nsec - start.tv_nsec)))
        }
        samples.sort()
        say("ready \(samples[samples.count / 2])")
    default:
        say("unknown command \(command)")
        exit(2)
    }
} catch {
    say("error \(error)")
    exit(1)
}
