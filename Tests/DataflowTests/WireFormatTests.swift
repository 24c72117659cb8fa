@testable import Dataflow
import ObjectStore
import Testing

/// The process executor's messages: they round-trip, and a cut or foreign message is an error.
struct WireFormatTests {
    func sampleRequest() -> _PoolRequest {
        let descriptor = ObjectDescriptor(storeName: "run-x", id: .random(), generation: 7, payloadOffset: 4096, byteCount: 1 << 20, typeTag: "tensor<float32>")
        var spec = WorkerSpec(
            runID: "r-1", taskName: "t\u{e9}st\ttask", attempt: 2, storeName: "run-x",
            inputs: [.object(descriptor), .file("/tmp/a b.dfspill")], runDirectory: "/tmp/runs/r-1", resultPath: "")
        spec.workflow = "wf"
        return _PoolRequest(spec: spec, spillRoot: "/tmp/spill", prefaultStore: true)
    }

    @Test func requestsAndRepliesRoundTrip() throws {
        let request = sampleRequest()
        var framer = _WireFramer()
        let bytes = request.wireMessage()
        framer.append(bytes.prefix(5))
        #expect(try framer.next() == nil, "half a message is not a message")
        framer.append(bytes.dropFirst(5))
        let decoded = try _PoolRequest(wire: try #require(try framer.next()))
        #expect(decoded.spec == request.spec && decoded.spillRoot == "/tmp/spill" && decoded.prefaultStore)

        let attach = _PoolAttachRequest(storeName: "run-é", spillRoot: "/tmp/s p", prefault: true)
        var attachFramer = _WireFramer()
        attachFramer.append(attach.wireMessage()[...])
        attachFramer.append(request.wireMessage()[...])
        let attachMessage = try #require(try attachFramer.next()), taskMessage = try #require(try attachFramer.next())
        #expect(try _PoolAttachRequest(wire: attachMessage) == attach)
        #expect(try _PoolAttachRequest(wire: taskMessage) == nil, "a task request is no attach request")
        #expect(try _PoolDetachRequest(wire: attachMessage) == nil)

        let descriptor = ObjectDescriptor(storeName: "s", id: .random(), generation: 1, payloadOffset: 64, byteCount: 8, typeTag: "int")
        for result in [
            WorkerResult(outcome: .succeeded, output: .object(descriptor), message: nil, bytesIn: 12),
            WorkerResult(outcome: .failed, output: nil, message: "boom\nline two", bytesIn: 0),
            WorkerResult(outcome: .succeeded, output: .file("/x.dfspill"), message: "m", bytesIn: -1, logWritten: true),
            WorkerResult(outcome: .error, output: nil, message: "lost", bytesIn: 0, lostInput: 3, logWritten: false),
        ] {
            let message = Array(result.wireMessage().dropFirst(4))
            #expect(try WorkerResult(wire: message) == result)
        }
    }

    /// A worker decodes the run's part of a request once and reuses it while the run's requests
    /// repeat it; a request of another run (another store, directory, workflow) is decoded anew.
    @Test func aWorkerDecodesARunsPartOnceAndNoticesAnotherRun() throws {
        var decoder = _PoolRequestDecoder()
        let first = sampleRequest()
        var second = first
        second.spec.taskName = "next"
        second.spec.attempt = 1
        second.spec.inputs = [.object(ObjectDescriptor(storeName: "run-x", id: .random(), generation: 1, payloadOffset: 64, byteCount: 8, typeTag: "int"))]
        var other = first
        other.spec.runID = "r-2"
        other.spec.storeName = "run-y"
        other.spec.runDirectory = "/tmp/runs/r-2"
        other.spec.workflow = nil
        other.spec.memoryWaitSeconds = 2.5
        other.spillRoot = "/tmp/spill-2"
        let cache = _RunPartCache()
        for request in [first, second, other, first] {
            let message = Array(request.wireMessage(runPart: cache.runPart(of: request)).dropFirst(4))
            let decoded = try decoder.decode(message)
            #expect(decoded.spec == request.spec && decoded.spillRoot == request.spillRoot, "\(decoded.spec) against \(request.spec)")
        }
        #expect(cache.runPart(of: second) == first.runPart(), "one run, one encoded part")
        cache.forget(runID: "r-1")
        #expect(cache.runPart(of: first) == first.runPart())
    }

    @Test func cutOrForeignMessagesAreErrors() {
        let message = Array(sampleRequest().wireMessage().dropFirst(4))
        for cut in [0, 1, 10, message.count / 2, message.count - 1] {
            #expect(throws: _WireError.self) { try _PoolRequest(wire: Array(message.prefix(cut))) }
        }
        var foreign = message
        foreign[0] = 99  // another format version
        #expect(throws: _WireError.self) { try _PoolRequest(wire: foreign) }
        var framer = _WireFramer()
        framer.append([0xff, 0xff, 0xff, 0x7f])
        #expect(throws: _WireError.self) { try framer.next() }
    }
}
