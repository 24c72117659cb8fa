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
            WorkerResult(outcome: .succeeded, output: .file("/x.dfspill"), message: "m", bytesIn: -1),
        ] {
            let message = Array(result.wireMessage().dropFirst(4))
            #expect(try WorkerResult(wire: message) == result)
        }
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
